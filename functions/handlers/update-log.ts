// Update-log entries of the committed rounds among from..to (at most 100): enough to replay w_from -> w_to+1
// without downloading weights.
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
  // A round's entry is written when its aggregation begins; only a round that committed (DONE) moved the model.
  const [logged, rounds] = await Promise.all([
    svc.table.getLogEntries(runId, from, to),
    svc.table.listRounds(runId, from, to),
  ]);
  const committed = new Set(rounds.filter((r) => r.state === "DONE").map((r) => r.round));
  const entries = logged.filter((entry) => committed.has(entry.round));
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
