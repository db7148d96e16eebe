// SGD steps whose weights stay where the device keeps them. onnxruntime-node feeds and returns host memory: on
// a GPU a training step would otherwise move every weight to the device and every gradient back (on the lent
// H200, 71 MB each way took 105 ms of a 243 ms step). Here the step graph updates the weights itself
// (buildSgdStepGraph), its next.<name> outputs stay in GPU memory and feed the next step, and the host sees
// the weights again once, when the steps are done.
import ort from "onnxruntime-node";
import type { ModelConfig } from "../models/index.ts";
import { buildSgdStepGraph, EngineInputError, nextParamName } from "./build.ts";
import { Graph } from "./graph.ts";
import { toOnnxModel } from "./onnx.ts";
import {
  type Batch,
  createSession,
  EngineSession,
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

  static async create(
    config: ModelConfig,
    opts: SessionOptions,
    clipNorm?: number,
  ): Promise<ResidentSgdSession> {
    const graph = buildSgdStepGraph(config, graphShape(opts), clipNorm);
    const next = graph.tensors.map((t) => nextParamName(t.name));
    return new ResidentSgdSession(await createSession(graph.onnx, opts, next), config, graph.tensors, opts);
  }

  /** Takes `params` (host arrays, left unchanged until `finish`) as the weights of the first step. */
  begin(params: Params): void {
    this.dropCurrent();
    this.start = params;
  }

  /** One step: loss and global gradient norm before the update, computed at the current weights. */
  async step(batch: Batch, learningRate: number): Promise<{ loss: number; gradNorm: number }> {
    if (!this.start) throw new EngineInputError("begin() must come before step()");
    const feeds = { ...this.lossFeeds(this.start, batch), ...this.current };
    feeds.learning_rate = this.floatScalar(learningRate);
    const out = await this.session.run(feeds);
    this.dropCurrent();
    this.current = Object.fromEntries(
      this.tensors.map((t) => [t.name, out[nextParamName(t.name)] as ort.Tensor]),
    );
    return { loss: Number(out.loss?.data[0]), gradNorm: Number(out.grad_norm?.data[0]) };
  }

  /** Writes the current weights into the arrays of the `params` given to `begin`. */
  async finish(): Promise<void> {
    if (!this.start) throw new EngineInputError("begin() must come before finish()");
    const onDevice = Object.values(this.current).some((t) => t.location === "gpu-buffer");
    const host = onDevice ? await (await this.downloadSession()).run(this.current) : undefined;
    for (const [name, { data }] of this.start) {
      const values = (host ? host[hostName(name)] : this.current[name])?.data;
      if (values) data.set(values as typeof data);
    }
    this.dropCurrent();
    this.start = undefined;
  }

  override async release(): Promise<void> {
    this.dropCurrent();
    await (await this.download)?.release();
    await super.release();
  }

  private floatScalar(value: number): ort.Tensor {
    return this.options.floatType === "float64"
      ? new ort.Tensor("float64", Float64Array.of(value), [])
      : new ort.Tensor("float32", Float32Array.of(value), []);
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

  /** Frees the device memory of the previous step's weights (host tensors need nothing). */
  private dropCurrent(): void {
    for (const t of Object.values(this.current)) if (t.location === "gpu-buffer") t.dispose();
    this.current = {};
  }
}
