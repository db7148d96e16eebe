// S3 multipart part sizes, for the client's checkpoint upload and the server's exports alike.

const MIB = 1024 * 1024;
/** S3's smallest part (except the last). */
export const MIN_PART_BYTES = 5 * MIB;
/** Parts of one object at most: S3 allows 10,000, and each costs a request (and for clients a presigned URL). */
export const MOST_PARTS = 1000;

/** 5 MiB, or whole MiB more where an object of `totalBytes` would otherwise be more than MOST_PARTS parts. */
export function partBytesFor(totalBytes: number): number {
  return Math.max(MIN_PART_BYTES, Math.ceil(totalBytes / MOST_PARTS / MIB) * MIB);
}
