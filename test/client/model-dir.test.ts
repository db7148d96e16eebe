// Model directories as Hugging Face ships them: one model.safetensors, or shards listed by
// model.safetensors.index.json (larger models). Both must give the same weights in the model's own order.
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gpt2Config, writeSeededModel } from "../../client/demo/base-model.ts";
import { loadModelDir, loadModelWeights, openModelWeights } from "../../client/participant/model-dir.ts";
import { type NamedTensor, readSafetensors, writeSafetensors } from "../../core/formats/safetensors.ts";

let root: string;
let single: string;
let tensors: NamedTensor[];
let count = 0;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "ferret-model-dir-"));
  single = join(root, "single");
  await writeSeededModel(single, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
  tensors = (await readSafetensors(join(single, "model.safetensors"))).tensors;
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A copy of the single-file model split into two shards (tensors in reverse order, as shards need not follow
 * the model's order), with an index written from `weightMap` (default: where each tensor really is). */
async function sharded(
  options: { weightMap?: (real: Record<string, string>) => unknown; extra?: NamedTensor } = {},
) {
  const dir = join(root, `sharded-${count++}`);
  await writeSeededModel(dir, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
  await rm(join(dir, "model.safetensors"));
  const reversed = [...tensors].reverse();
  const half = Math.ceil(reversed.length / 2);
  const shards = [reversed.slice(0, half), reversed.slice(half)];
  const real: Record<string, string> = {};
  for (const [i, part] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(join(dir, file), i === 1 && options.extra ? [...part, options.extra] : part);
    for (const t of part) real[t.name] = file;
  }
  const weightMap = options.weightMap ? options.weightMap(real) : real;
  await writeFile(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  return dir;
}

const load = async (dir: string) => loadModelWeights(await loadModelDir(dir));

describe("model weights", () => {
  it("from shards listed by model.safetensors.index.json equal the single file's, in the model's order", async () => {
    const fromSingle = await load(single);
    const fromShards = await load(await sharded());
    expect(fromShards.tensors.map((t) => t.name)).toEqual(fromSingle.tensors.map((t) => t.name));
    expect(fromShards.tensors).toEqual(fromSingle.tensors);
    expect(fromShards.ignored).toEqual([]);
  });

  it("open lazily: any run of elements read from a shard equals the same run of the loaded tensor", async () => {
    const dir = await sharded();
    const loaded = await load(dir);
    const opened = await openModelWeights(await loadModelDir(dir));
    try {
      expect(opened.tensors.map((t) => [t.name, t.shape])).toEqual(
        loaded.tensors.map((t) => [t.name, t.shape]),
      );
      for (const [i, tensor] of opened.tensors.entries()) {
        const data = loaded.tensors[i]?.data as Float32Array;
        const start = Math.floor(data.length / 3);
        expect(await tensor.read(start, data.length - start)).toEqual(data.subarray(start));
      }
    } finally {
      await opened.close();
    }
  });

  it("report a shard's tensor that the index does not list as ignored", async () => {
    const extra = { name: "attn.masked_bias", shape: [1], data: Float32Array.of(-1e4) };
    const { ignored } = await load(await sharded({ extra }));
    expect(ignored).toEqual(["attn.masked_bias (in model-00002-of-00002.safetensors, not in the index)"]);
  });

  it("refuse an index naming a missing shard, or placing a tensor in a shard that lacks it", async () => {
    const missing = await sharded({
      weightMap: (real) => ({ ...real, "wte.weight": "model-00003-of-00003.safetensors" }),
    });
    await expect(load(missing)).rejects.toThrow(/names model-00003-of-00003\.safetensors, which is missing/);
    const misplaced = await sharded({
      weightMap: (real) => {
        const other = real["wte.weight"]?.includes("00001") ? "00002" : "00001";
        return { ...real, "wte.weight": `model-${other}-of-00002.safetensors` };
      },
    });
    await expect(load(misplaced)).rejects.toThrow(
      /places tensor wte\.weight in model-0000\d-of-00002\.safetensors, which lacks it/,
    );
  });

  it("refuse an index that would read outside the model directory, or that has no weight_map", async () => {
    const escaping = await sharded({
      weightMap: (real) => ({ ...real, "wte.weight": "../single/model.safetensors" }),
    });
    await expect(load(escaping)).rejects.toThrow(
      /tensor wte\.weight maps to "\.\.\/single\/model\.safetensors"; expected a \.safetensors file name/,
    );
    const noMap = await sharded({ weightMap: () => ["not", "a", "map"] });
    await expect(load(noMap)).rejects.toThrow(/has no "weight_map" object/);
  });

  it("refuse a directory with neither model.safetensors nor an index", async () => {
    const dir = join(root, "no-weights");
    await writeSeededModel(dir, gpt2Config({ layers: 2, width: 16, heads: 2, context: 8 }), 5);
    await rm(join(dir, "model.safetensors"));
    await expect(load(dir)).rejects.toThrow(
      /holds neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
    await copyFile(join(single, "model.safetensors"), join(dir, "model.safetensors"));
    await expect(load(dir)).resolves.toMatchObject({ ignored: [] });
  });
});
