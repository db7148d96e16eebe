// How the table's items are laid out: their keys (one partition per run, rounds' uploads in their own), and
// float32 arrays stored as binary attributes.

const pad = (round: number) => String(round).padStart(8, "0");
export const keys = {
  run: (runId: string) => ({ pk: `RUN#${runId}`, sk: "RUN" }),
  client: (runId: string, clientId: string) => ({ pk: `RUN#${runId}`, sk: `CLIENT#${clientId}` }),
  /** A client's name within its run, held while the client is not revoked. */
  clientName: (runId: string, name: string) => ({ pk: `RUN#${runId}`, sk: `NAME#${name}` }),
  token: (tokenHash: string) => ({ pk: `TOKEN#${tokenHash}`, sk: "TOKEN" }),
  round: (runId: string, round: number) => ({ pk: `RUN#${runId}`, sk: `ROUND#${pad(round)}` }),
  upload: (runId: string, round: number, clientId: string) => ({
    pk: `RUN#${runId}#ROUND#${pad(round)}`,
    sk: `UPLOAD#${clientId}`,
  }),
  updateClaim: (runId: string, round: number, clientId: string) => ({
    pk: `RUN#${runId}#ROUND#${pad(round)}`,
    sk: `UPDATE#${clientId}`,
  }),
  log: (runId: string, round: number) => ({ pk: `RUN#${runId}`, sk: `LOG#${pad(round)}` }),
  exportClaim: (runId: string, checkpoint: number) => ({
    pk: `RUN#${runId}`,
    sk: `EXPORT#${pad(checkpoint)}`,
  }),
};

export const bytesOf = (values: Float32Array) =>
  new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
/** Copies, because DynamoDB's binary may sit at an offset that is not a multiple of 4. */
export const floatsOf = (bytes: Uint8Array) => new Float32Array(Uint8Array.from(bytes).buffer);

/** An item without its keys: the record it stores. */
export function strip<T>(item: Record<string, unknown> | undefined): T | undefined {
  if (!item) return undefined;
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}
