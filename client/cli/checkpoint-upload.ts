// Checkpoint 0 from the operator's model directory to the server (`run create`, `run upload`): a presigned
// multipart upload whose parts are read from the model's own files as it goes, and the wait for the server's import.
import { forEachLimited } from "../../core/concurrency.ts";
import type { SafetensorsImage } from "../../core/formats/safetensors-image.ts";
import { partBytesFor } from "../../core/multipart.ts";
import { sleep } from "../api/backoff.ts";
import { ApiError, OutcomeUnknownError, UnreachableError } from "../api/errors.ts";
import type { Http } from "../api/http.ts";
import type { OperatorApi } from "../api/routes.ts";
import type { Output } from "./output.ts";

/**
 * Parts uploaded at once: enough to keep the link busy while each PUT waits on S3's round trip, few enough that
 * the part buffers stay PARTS_IN_FLIGHT part sizes (20 MiB for models up to 1.3B parameters, 128 MiB at 8B;
 * fetch copies each body once more) whatever the model's size.
 */
const PARTS_IN_FLIGHT = 4;

// The parts are read from the model's own files as the upload goes: the operator never holds the model.
export async function openWeights(modelDir: string) {
  // The weights alone: the operator needs no tokenizer (clients bring their own copy of the model's).
  const { loadModelConfig, openModelWeights } = await import("../participant/model-dir.ts");
  return openModelWeights(await loadModelConfig(modelDir));
}

type ModelWeights = Awaited<ReturnType<typeof openWeights>>;

/** Uploads the model's weights as checkpoint 0 and returns the import's result once the server has it. */
export async function uploadCheckpoint0(
  api: OperatorApi,
  out: Output,
  runId: string,
  tensors: ModelWeights["tensors"],
) {
  const { safetensorsImage } = await import("../../core/formats/safetensors-image.ts");
  const file = safetensorsImage(tensors);
  const progress = out.progress("uploading checkpoint 0", file.byteLength, "B");
  const { uploadId, etags } = await uploadParts(api, runId, file, progress);
  try {
    return await api.completeCheckpointUpload(runId, uploadId, etags);
  } catch (error) {
    // A large model's import outlasts the HTTP API's 30 s: the gateway answers 503 while the import goes on, and
    // the run's status shows when it is done. So may a reply lost on the way; a 500 is the import's own failure.
    const cause = error instanceof OutcomeUnknownError ? error.cause : undefined;
    const mayBeRunning =
      cause instanceof UnreachableError || (cause instanceof ApiError && [503, 504].includes(cause.status));
    if (!mayBeRunning) throw error;
    out.info(`the server may still be importing checkpoint 0 (${(cause as Error).message}); waiting for it`);
    return awaitImport(api, out, runId, uploadId);
  }
}

/** Lambda's 15 minutes for the import, and a minute more. */
const IMPORT_WAIT_MS = 16 * 60_000;

/**
 * Waits until the run has checkpoint 0, asking its status every `pollMs`, for at most `waitMs`. An import of
 * `uploadId` that failed meanwhile is thrown as the server's refusal.
 */
export async function awaitImport(
  api: Pick<OperatorApi, "status">,
  out: Pick<Output, "info">,
  runId: string,
  uploadId: string,
  { waitMs = IMPORT_WAIT_MS, pollMs = 10_000 } = {},
): Promise<{ checkpoint: number; totalParams: number; shards?: number }> {
  const started = Date.now();
  for (;;) {
    const status = await api.status(runId);
    if (status.initialCheckpointReady) return { checkpoint: 0, totalParams: status.config.plan.totalParams };
    const failure = status.importFailure;
    if (failure?.uploadId === uploadId) throw new ApiError(failure.status, failure.error, failure.message);
    const waited = Date.now() - started;
    if (waited >= waitMs) {
      throw new OutcomeUnknownError(
        `run ${runId} has no checkpoint 0 ${Math.round(waited / 1000)} s after its upload: the import is still ` +
          "running, or it died (the checkpoint-import function's logs say why). `ferret run status` shows when it " +
          "is in; `ferret run upload` sends it again",
      );
    }
    out.info(`waiting for the server to import checkpoint 0 (${Math.round(waited / 1000)} s)`);
    await sleep(pollMs);
  }
}

/**
 * Sends `file` as the parts of checkpoint 0's multipart upload and returns their ETags. The server hands out part
 * URLs a page at a time, each page asked for once the one before is sent; a URL that expired while earlier parts
 * went (403) is asked for again, once.
 */
export async function uploadParts(
  api: Pick<OperatorApi, "startCheckpointUpload" | "checkpointPartUrls"> & { http: Pick<Http, "upload"> },
  runId: string,
  file: Pick<SafetensorsImage, "byteLength" | "readInto">,
  onProgress: (sent: number) => void,
): Promise<{ uploadId: string; etags: { partNumber: number; etag: string }[] }> {
  const partBytes = partBytesFor(file.byteLength);
  const parts = Math.max(1, Math.ceil(file.byteLength / partBytes));
  const { uploadId, partUrls } = await api.startCheckpointUpload(runId, parts);
  const etags: { partNumber: number; etag: string }[] = [];
  let sent = 0;
  // Part buffers are reused, so no more than PARTS_IN_FLIGHT are ever allocated, however large the model.
  const free: Uint8Array[] = [];
  const send = async (i: number, url: string) => {
    const buffer = free.pop() ?? new Uint8Array(Math.min(partBytes, file.byteLength));
    try {
      const part = buffer.subarray(0, Math.min(partBytes, file.byteLength - i * partBytes));
      await file.readInto(i * partBytes, part);
      const etag = await api.http.upload(url, part).catch(async (error: unknown) => {
        if (!(error instanceof ApiError && error.status === 403)) throw error;
        const [fresh] = await api.checkpointPartUrls(runId, uploadId, i + 1, 1);
        return api.http.upload(fresh as string, part);
      });
      etags[i] = { partNumber: i + 1, etag };
      sent += part.byteLength;
      onProgress(sent);
    } finally {
      free.push(buffer);
    }
  };
  const page = partUrls.length;
  for (let first = 0; first < parts; first += page) {
    const count = Math.min(page, parts - first);
    const urls = first === 0 ? partUrls : await api.checkpointPartUrls(runId, uploadId, first + 1, count);
    await forEachLimited(count, PARTS_IN_FLIGHT, (j) => send(first + j, urls[j] as string));
  }
  return { uploadId, etags };
}
