// Update-log entries for rounds from..to (at most 100): enough to replay w_from -> w_to+1 without downloading weights.
import { BadRequest } from "../errors.ts";
import { clientOf, httpHandler, numberParam } from "../http.ts";

const MAX_ENTRIES = 100;

export const handler = httpHandler(async (event, svc) => {
  const { runId } = clientOf(event);
  const from = numberParam(event.queryStringParameters?.from, "from");
  const to = numberParam(event.queryStringParameters?.to ?? String(from + MAX_ENTRIES - 1), "to");
  if (to < from || to - from >= MAX_ENTRIES) {
    throw new BadRequest(
      "invalid_range",
      `rounds ${from}..${to}: need from <= to and at most ${MAX_ENTRIES} rounds`,
    );
  }
  const entries = await svc.table.getLogEntries(runId, from, to);
  return {
    status: 200,
    body: {
      entries: entries.map(({ coefficients, ...entry }) => ({
        ...entry,
        coefficients: Buffer.from(
          coefficients.buffer,
          coefficients.byteOffset,
          coefficients.byteLength,
        ).toString("base64"),
      })),
    },
  };
});
