// Aggregation step failures that no retry can mend, since every step is deterministic: the state machine records
// the round FAILED at once instead of repeating a shard's work with backoff.

/** A round's update would leave weights that are not finite (see reconstructShard). */
export class NonFiniteUpdate extends Error {
  override name = "NonFiniteUpdate";
}

/** The error names (Lambda's errorType) the state machine does not retry. */
export const PERMANENT_STEP_ERRORS = [new NonFiniteUpdate().name];
