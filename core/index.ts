// The public surface of core/: what the client, the Lambda handlers and the local stack import.
export {
  aggregate,
  type ClientUpload,
  type ClientWeight,
  clientWeights,
  type Weighting,
} from "./aggregate.ts";
export { forEachLimited } from "./concurrency.ts";
export * from "./errors.ts";
export {
  assertPlanMatches,
  buildPlan,
  type Plan,
  type PlanBlock,
  type PlanOptions,
  parsePlan,
  type TensorSpec,
} from "./plan.ts";
export { CorePool, sharedFloat32Array } from "./pool.ts";
export { assertFamily, type Family, project, reconstruct, reconstructRange } from "./projection.ts";
export { PROTOCOL_HEADER, PROTOCOL_VERSION, protocolMismatch } from "./protocol.ts";
export { FAMILIES } from "./reference.ts";
export { deriveRoundSeed, seedFromHex, seedToHex } from "./seed.ts";
export {
  decodeSeedPairs,
  encodeSeedPairs,
  SEED_PAIR_BYTES,
  type SeedPair,
  seedPoolPlan,
} from "./seed-pool.ts";
