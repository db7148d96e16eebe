// SGD steps whose weights stay where the device keeps them. onnxruntime-node feeds and returns host memory: on
// a GPU a training step would otherwise move every weight to the device and every gradient back (on the lent
// H200, 71 MB each way took 105 ms of a 243 ms step). Here the step graph updates the weights itself
// (buildSgdStepGraph), its next.<name> outputs stay in GPU memory and feed the next step, and the host sees
// the weights again once, when the steps are done.
import type ort from "onnxruntime-node";
import type { ModelConfig, TensorSpec } from "../models/index.ts";
import { buildSgdStepGraph, EngineInputError, type LookedUpRows, type RowBlock } from "./build.ts";
import { keepsOutputsOnDevice } from "./devices.ts";
import { collectGarbage, freeArrays } from "./freeing.ts";
import { Graph } from "./graph.ts";
import { toOnnxModel } from "./onnx.ts";
import {
  type Batch,
  createSession,
  EngineSession,
  type FloatData,
  floatArrayType,
  floatTensor,
  graphShape,
  type Params,
  type SessionOptions,
} from "./session.ts";

const hostName = (param: string): string => `host.${param}`;

export class ResidentSgdSession extends EngineSession {
  private start?: Params;
  /** The weights the next step starts from, by parameter name: the previous step's outputs. */
  private current: Record<string, ort.Tensor> = {};
  private download?: Promise<ort.InferenceSession>;

  private constructor(
    session: ort.InferenceSession,
    config: ModelConfig,
    tensors: TensorSpec[],
    options: SessionOptions,
    /** Each parameter's next-weight outputs: one, or row blocks when they come back to the host. */
    private readonly nextBlocks: Map<string, RowBlock[]>,
    /** Lookup tables whose next weights come back to the host as the rows the step changed. */
    private readonly lookedUp: Map<string, LookedUpRows>,
  ) {
    super(session, config, tensors, options);
  }

  static async create(
    config: ModelConfig,
    opts: SessionOptions,
    clipNorm?: number,
  ): Promise<ResidentSgdSession> {
    const graph = buildSgdStepGraph(config, graphShape(opts), clipNorm, !keepsOutputsOnDevice(opts.device));
    const names = graph.blocks.map((b) => b.name);
    const session = await createSession(graph.onnx, opts, names);
    const byParam = new Map<string, RowBlock[]>();
    for (const block of graph.blocks) byParam.set(block.param, [...(byParam.get(block.param) ?? []), block]);
    const lookedUp = new Map((graph.lookedUp ?? []).map((l) => [l.param, l]));
    return new ResidentSgdSession(session, config, graph.tensors, opts, byParam, lookedUp);
  }

  /** Takes `params` (host arrays, left unchanged until `finish`) as the weights of the first step. */
  begin(params: Params): void {
    this.dropCurrent(true);
    // The steps allocate little on V8's heap, so V8 would keep what came before them (graph building, a
    // checkpoint's decoding) committed for many steps: 10 MB of peak RSS at the benchmark's reference config.
    collectGarbage();
    this.start = params;
  }

  /** One step: loss and global gradient norm before the update, computed at the current weights. */
  async step(batch: Batch, learningRate: number): Promise<{ loss: number; gradNorm: number }> {
    if (!this.start) throw new EngineInputError("begin() must come before step()");
    const feeds = { ...this.lossFeeds(this.start, batch), ...this.current };
    feeds.learning_rate = floatTensor(floatArrayType(this.options.floatType).of(learningRate), []);
    const out = await this.session.run(feeds);
    const firstStep = Object.keys(this.current).length === 0;
    this.dropCurrent();
    for (const { name, shape } of this.tensors) {
      const lookup = this.lookedUp.get(name);
      if (lookup) {
        this.current[name] = this.writeLookedUpRows(name, shape, lookup, out, firstStep);
        continue;
      }
      const blocks = this.nextBlocks.get(name) ?? [];
      const whole = blocks.length === 1 ? out[(blocks[0] as RowBlock).name] : undefined;
      this.current[name] = whole ?? this.assemble(name, shape, blocks, out);
    }
    return { loss: Number(out.loss?.data[0]), gradNorm: Number(out.grad_norm?.data[0]) };
  }

  /** Writes the current weights into the arrays of the `params` given to `begin`. */
  async finish(): Promise<void> {
    if (!this.start) throw new EngineInputError("begin() must come before finish()");
    const onGpu = Object.values(this.current).some((t) => t.location === "gpu-buffer");
    const host = onGpu ? await (await this.downloadSession()).run(this.current) : undefined;
    for (const [name, { data }] of this.start) {
      const values = (host ? host[hostName(name)] : this.current[name])?.data;
      if (values) data.set(values as typeof data);
    }
    this.dropCurrent(true);
    this.start = undefined;
  }

  override async release(): Promise<void> {
    this.dropCurrent();
    await (await this.download)?.release();
    await super.release();
  }

  /** One host array per parameter whose next weights this session puts together itself (from row blocks, or a
   * lookup table's changed rows), reused from step to step. */
  private readonly owned = new Map<string, FloatData>();

  private ownedArray(name: string, shape: number[]): FloatData {
    let array = this.owned.get(name);
    if (!array) {
      array = new (floatArrayType(this.options.floatType))(shape.reduce((a, b) => a * b, 1));
      this.owned.set(name, array);
    }
    return array;
  }

  /** A parameter's row blocks copied into its reused array: no fresh large allocation each step. */
  private assemble(name: string, shape: number[], blocks: RowBlock[], out: ort.InferenceSession.ReturnType) {
    const into = this.ownedArray(name, shape);
    const parts: FloatData[] = [];
    for (const block of blocks) {
      const part = out[block.name]?.data as FloatData;
      into.set(part, block.offset);
      parts.push(part);
    }
    freeArrays(parts);
    return floatTensor(into, shape);
  }

  /** A lookup table's reused array (`begin`'s weights on a round's first step) with the rows the step changed
   * written over it: the step's output is the batch's rows, not the whole table. */
  private writeLookedUpRows(
    name: string,
    shape: number[],
    lookup: LookedUpRows,
    out: ort.InferenceSession.ReturnType,
    firstStep: boolean,
  ) {
    const into = this.ownedArray(name, shape);
    if (firstStep) into.set(this.start?.get(name)?.data as FloatData);
    const rows = out[lookup.rows]?.data as FloatData;
    const ids = out[lookup.ids]?.data as BigInt64Array;
    const width = rows.length / ids.length;
    ids.forEach((id, p) => {
      into.set(rows.subarray(p * width, (p + 1) * width), Number(id) * width);
    });
    freeArrays([rows, ids]);
    return floatTensor(into, shape);
  }

  /** Identity outputs on the host for every weight: the one copy back from the device. */
  private downloadSession(): Promise<ort.InferenceSession> {
    this.download ??= (() => {
      const graph = new Graph(this.options.floatType ?? "float32");
      const outputs = this.tensors.map(({ name, shape }) => ({
        name: hostName(name),
        tensor: graph.apply(
          { type: "Identity" },
          [graph.input(name, shape, graph.floatType)],
          {},
          shape,
          graph.floatType,
        ),
      }));
      return createSession(toOnnxModel(graph, outputs), this.options);
    })();
    return this.download;
  }

  /** Host buffers of weights dropped between rounds, freed after the next run. */
  private retired: FloatData[] = [];

  /**
   * Drops the current weights: frees them on the device, and on the host (freeing.ts) all but the arrays the
   * session reuses. Between rounds (`later`), host buffers wait for the next run instead: freed once it has taken
   * its output buffers, they never leave the top of glibc's heap free, which glibc would hand back to the kernel.
   * Freed at `finish`, they made the next round's first two steps fault 17k and 5k pages (1.38–1.40 s and 1.14 s
   * at the reference config, against 1.0 s).
   */
  private dropCurrent(later = false): void {
    const onHost: FloatData[] = [];
    for (const [name, t] of Object.entries(this.current)) {
      if (t.location === "gpu-buffer") t.dispose();
      else if (t.data !== this.owned.get(name)) onHost.push(t.data as FloatData);
    }
    this.current = {};
    this.retired.push(...onHost);
    if (later) return;
    freeArrays(this.retired);
    this.retired = [];
  }
}
