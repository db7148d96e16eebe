// Update-log entries of the committed rounds among from..to (at most 100): enough to replay w_from -> w_to+1
// without downloading weights. A reply stops before Lambda's 6 MB response limit: at K = 65,536 an entry is 350 KB
// of base64, and 100 of them were 35 MB. It then says where the next request starts (`next`).
import { BadRequest } from "../errors.ts";
import { clientOf, httpHandler, numberParam } from "../http.ts";
import type { LogEntry } from "../storage/records.ts";

const MAX_ENTRIES = 100;
/** Base64 coefficients in one reply, leaving the rest of the 6 MB for the entries' other fields. */
export const MAX_LOG_REPLY_COEFFICIENT_BYTES = 4 * 1024 * 1024;

const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);

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
  // At least one entry, so that every request moves the client on.
  let fitting = 1;
  let size = base64Length(entries[0]?.coefficients.byteLength ?? 0);
  for (; fitting < entries.length; fitting++) {
    size += base64Length((entries[fitting] as LogEntry).coefficients.byteLength);
    if (size > MAX_LOG_REPLY_COEFFICIENT_BYTES) break;
  }
  const sent = entries.slice(0, fitting);
  const next = entries[fitting]?.round;
  return {
    status: 200,
    body: {
      // Without who took part and with how much data (a fedavg round's client ids and weights, the example
      // total): a client needs neither to replay, and the other clients' are theirs to keep.
      entries: sent.map(({ coefficients, updates: _updates, examples: _examples, ...entry }) => ({
        ...entry,
        coefficients: Buffer.from(
          coefficients.buffer,
          coefficients.byteOffset,
          coefficients.byteLength,
        ).toString("base64"),
      })),
      ...(next === undefined ? {} : { next }),
    },
  };
});
