// State machine step 2, one Distributed Map item per shard: input {runId, round, shard}. Writes the shard, then its
// digest (<shard>.json), and returns a small outcome. Memory is one shard's buffer, whatever the model size.

import { observed } from "../observability.ts";
import { reconstructShard, type ShardTask } from "../rounds/aggregation.ts";
import { services } from "../services.ts";

export const handler = observed((event: ShardTask) => reconstructShard(services(), event));
