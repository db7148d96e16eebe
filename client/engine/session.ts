// Runs the engine's graphs in onnxruntime-node: a training step (loss + gradients) and a forward pass (logits).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import ort from "onnxruntime-node";
import type { ModelConfig, TensorSpec } from "../models/index.ts";
import {
  buildForwardGraph,
  buildLossGraph,
  buildTrainingGraph,
  EngineInputError,
  type GraphShape,
  type LossHead,
  type RowBlock,
} from "./build.ts";
import { DEVICES, type Device, isDevice, keepsOutputsOnDevice } from "./devices.ts";
import { type FloatType, Graph } from "./graph.ts";
import type { LogSoftmaxForm } from "./head.ts";
import { toOnnxModel } from "./onnx.ts";
import { add } from "./ops.ts";
import { availableCores } from "./threads.ts";

export type FloatData = Float32Array | Float64Array;

export interface SessionOptions {
  batchSize: number;
  seqLen: number;
  device?: Device;
  /** onnxruntime intra-op threads (default: one per physical core this process may use; see threads.ts). */
  threads?: number;
  /** float64 only for gradient checks; parameters and batches must then be Float64Array. */
  floatType?: FloatType;
  /** Largest gradient output in bytes; larger gradients leave the graph in row blocks (see build.ts). */
  maxOutputBytes?: number;
  /** Bytes of one block of logits in the loss and training graphs (see build.ts). */
  headBlockBytes?: number;
  /** The head's log-softmax (see head.ts); default composed on webgpu, which has no LogSoftmax kernel, else fused. */
  logSoftmax?: LogSoftmaxForm;
  /** The head of loss graphs without gradients (see build.ts); default vocabulary chunks on the CPU, where they
   * were measured, and row blocks on GPUs. */
  lossHead?: LossHead;
  /** Write onnxruntime's per-kernel profile to a JSON file with this path prefix (see bench/profile-engine.ts). */
  profilePrefix?: string;
}

/** Parameters by Hugging Face name; shapes must match the model config. */
export type Params = ReadonlyMap<string, { shape: readonly number[]; data: FloatData }>;

export interface Batch {
  inputIds: BigInt64Array;
  targets: BigInt64Array;
  lossMask: FloatData;
}

export interface StepResult {
  loss: number;
  grads: Map<string, FloatData>;
}

/** The device asked for has no working execution provider in this onnxruntime-node install or on this machine. */
export class DeviceUnavailableError extends Error {
  override name = "DeviceUnavailableError";
}

const CUDA_HELP =
  "onnxruntime-node was installed without its CUDA execution provider. Reinstall it with " +
  "`npm install --onnxruntime-node-install=cuda12` (needs CUDA 12 and cuDNN 9), or use device cpu.";

// onnxruntime-node ships its WebGPU provider (Dawn) on Linux x64, Windows and macOS; on Linux Dawn reaches the
// GPU through Vulkan, which the package does not bring.
const WEBGPU_HELP =
  "onnxruntime's WebGPU provider found no GPU adapter. On Linux it reaches the GPU through Vulkan, and needs the " +
  "Vulkan loader and GLVND beside the GPU driver: `apt install libvulkan1 libglx0` on Debian or Ubuntu (NVIDIA's " +
  "Vulkan driver is its GLX library, which needs GLVND even without a display; in a container " +
  "NVIDIA_DRIVER_CAPABILITIES must include graphics). Or use device cpu.";

/** True when onnxruntime-node's native folder is where we expect and lacks the CUDA provider library. */
function cudaProviderMissing(): boolean {
  const pkg = dirname(createRequire(import.meta.url).resolve("onnxruntime-node"));
  const libDir = join(pkg, "..", "bin", "napi-v6", process.platform, process.arch);
  if (!existsSync(join(libDir, "onnxruntime_binding.node"))) return false; // unknown layout: let onnxruntime decide
  return !["libonnxruntime_providers_cuda.so", "onnxruntime_providers_cuda.dll"].some((f) =>
    existsSync(join(libDir, f)),
  );
}

/** Why `device` cannot start here, or undefined when it may: this platform's onnxruntime-node has no provider for
 * it at all (CUDA is for Linux x64, WebGPU not on Linux arm64; no install flag adds one), or its CUDA provider is
 * one the install did not download. */
export function deviceUnavailableHelp(
  device: Device,
  backends: readonly { name: string; bundled: boolean }[] = ort.listSupportedBackends(),
): string | undefined {
  const backend = backends.find((b) => b.name === device);
  if (!backend) {
    const there = DEVICES.filter((d) => backends.some((b) => b.name === d));
    return (
      `onnxruntime-node has no ${device} execution provider on ${process.platform}/${process.arch}; ` +
      `use device ${there.join(" or ")}.`
    );
  }
  return device === "cuda" && !backend.bundled && cudaProviderMissing() ? CUDA_HELP : undefined;
}

/** availableCores(), read from the kernel's files once per process: sessions are made several times a run. */
let cores: { count: number | undefined } | undefined;
function machineCores(): number | undefined {
  cores ??= { count: availableCores() };
  return cores.count;
}

/** The help for a failure to start `device`'s provider, or undefined when `err` is some other failure (a bad
 * graph, say), which must surface unchanged. */
function providerFailureHelp(device: Device, err: unknown): string | undefined {
  if (device === "cuda" && /cuda|provider/i.test(String(err))) return CUDA_HELP;
  if (device === "webgpu" && /webgpu adapter|webgpu device|dawn|vulkan/i.test(String(err)))
    return WEBGPU_HELP;
  return undefined;
}

/** The graph options a session on `opts.device` builds with. */
export const graphShape = (opts: SessionOptions): GraphShape => ({
  ...opts,
  logSoftmax: opts.logSoftmax ?? (opts.device === "webgpu" ? "composed" : "fused"),
  lossHead: opts.lossHead ?? ((opts.device ?? "cpu") === "cpu" ? "vocabChunks" : "rowBlocks"),
});

/** A session for `opts.device`. `deviceOutputs` name outputs to leave in the device's memory where it can keep
 * them (keepsOutputsOnDevice; see resident.ts). */
export async function createSession(
  onnx: Uint8Array,
  opts: SessionOptions,
  deviceOutputs: string[] = [],
): Promise<ort.InferenceSession> {
  const device = opts.device ?? "cpu";
  if (!isDevice(device)) {
    throw new EngineInputError(`device must be one of ${DEVICES.join(", ")}, got ${device}`);
  }
  if (opts.threads !== undefined && (!Number.isInteger(opts.threads) || opts.threads <= 0)) {
    throw new EngineInputError(`threads must be a positive integer, got ${opts.threads}`);
  }
  const unavailable = deviceUnavailableHelp(device);
  if (unavailable) throw new DeviceUnavailableError(unavailable);
  const threads = opts.threads ?? machineCores();
  const sessionOptions: ort.InferenceSession.SessionOptions = {
    executionProviders: [device],
    // onnxruntime's extended fusions (e.g. x·sigmoid(x) → QuickGelu) have float kernels only.
    graphOptimizationLevel: opts.floatType === "float64" ? "basic" : "all",
    executionMode: "sequential",
    // With memory patterns onnxruntime allocates the planned pattern as one block on the second run while the
    // arena still holds the first run's buffers: at the reference config that is 2.2 GB peak RSS instead of
    // 1.35 GB, for no measurable speed-up.
    enableMemPattern: false,
    ...(threads ? { intraOpNumThreads: threads, interOpNumThreads: 1 } : {}),
    ...(opts.profilePrefix ? { enableProfiling: true, profileFilePrefix: opts.profilePrefix } : {}),
    ...(keepsOutputsOnDevice(device) && deviceOutputs.length > 0
      ? {
          preferredOutputLocation: Object.fromEntries(
            deviceOutputs.map((name) => [name, "gpu-buffer" as const]),
          ),
        }
      : {}),
  };
  try {
    return await ort.InferenceSession.create(onnx, sessionOptions);
  } catch (err) {
    const help = providerFailureHelp(device, err);
    if (help) throw new DeviceUnavailableError(`${help} (${String(err)})`, { cause: err });
    throw err;
  }
}

/**
 * Rejects with the DeviceUnavailableError a training session on `device` would meet, by starting its provider
 * on a one-node graph: a client checks before it waits for rounds, not once a round has selected it.
 */
export async function ensureDeviceAvailable(device: Device): Promise<void> {
  if (device === "cpu") return;
  const graph = new Graph("float32");
  const onnx = toOnnxModel(graph, [{ name: "y", tensor: add(graph.input("x", [1], "float32"), 0) }]);
  const session = await createSession(onnx, { batchSize: 1, seqLen: 1, device });
  await session.release();
}

/** The typed array of a float type: every host array a session feeds or fills is one of these. */
export const floatArrayType = (
  floatType: FloatType = "float32",
): { new (length: number): FloatData; of(...values: number[]): FloatData } =>
  floatType === "float64" ? Float64Array : Float32Array;

export const floatTensor = (data: FloatData, dims: readonly number[]): ort.Tensor =>
  new ort.Tensor(data instanceof Float64Array ? "float64" : "float32", data, dims);

export abstract class EngineSession {
  protected constructor(
    protected readonly session: ort.InferenceSession,
    readonly config: ModelConfig,
    readonly tensors: TensorSpec[],
    readonly options: SessionOptions,
  ) {}

  protected feeds(params: Params, inputIds: BigInt64Array): Record<string, ort.Tensor> {
    const floatType = this.options.floatType ?? "float32";
    const feeds: Record<string, ort.Tensor> = {};
    for (const spec of this.tensors) {
      const p = params.get(spec.name);
      if (!p) throw new EngineInputError(`missing parameter ${spec.name} (expected shape [${spec.shape}])`);
      const expectedSize = spec.shape.reduce((a, b) => a * b, 1);
      if (p.shape.join() !== spec.shape.join() || p.data.length !== expectedSize) {
        throw new EngineInputError(
          `parameter ${spec.name} has shape [${p.shape}] with ${p.data.length} values; the config expects [${spec.shape}]`,
        );
      }
      if ((p.data instanceof Float64Array ? "float64" : "float32") !== floatType) {
        throw new EngineInputError(`parameter ${spec.name} must be a ${floatType} array`);
      }
      feeds[spec.name] = floatTensor(p.data, spec.shape);
    }
    const known = new Set(this.tensors.map((t) => t.name));
    const extra = [...params.keys()].filter((name) => !known.has(name));
    if (extra.length > 0)
      throw new EngineInputError(`unexpected parameters for this config: ${extra.join(", ")}`);
    feeds.input_ids = new ort.Tensor("int64", this.tokens("input_ids", inputIds), this.batchDims);
    return feeds;
  }

  protected get batchDims(): number[] {
    return [this.options.batchSize, this.options.seqLen];
  }

  protected tokens(what: string, ids: BigInt64Array): BigInt64Array {
    const { batchSize, seqLen } = this.options;
    if (ids.length !== batchSize * seqLen) {
      throw new EngineInputError(`${what} has ${ids.length} tokens; expected batch ${batchSize} × ${seqLen}`);
    }
    const vocab = BigInt(this.config.vocabSize);
    const bad = ids.findIndex((id) => id < 0n || id >= vocab);
    if (bad >= 0)
      throw new EngineInputError(`${what}[${bad}] = ${ids[bad]} is outside the vocabulary [0, ${vocab})`);
    return ids;
  }

  /** Feeds for the loss graphs: parameters, input_ids, targets, loss_mask. */
  protected lossFeeds(params: Params, batch: Batch): Record<string, ort.Tensor> {
    const feeds = this.feeds(params, batch.inputIds);
    feeds.targets = new ort.Tensor("int64", this.tokens("targets", batch.targets), this.batchDims);
    if (batch.lossMask.length !== batch.inputIds.length) {
      throw new EngineInputError(
        `lossMask has ${batch.lossMask.length} values; expected ${batch.inputIds.length}`,
      );
    }
    if (!batch.lossMask.some((m) => m > 0) || batch.lossMask.some((m) => !(m >= 0))) {
      throw new EngineInputError(
        "lossMask must be ≥ 0 everywhere and positive somewhere (the loss averages over it)",
      );
    }
    feeds.loss_mask = floatTensor(batch.lossMask, this.batchDims);
    return feeds;
  }

  /** Stops profiling (`profilePrefix`) and flushes the profile file. */
  endProfiling(): void {
    this.session.endProfiling();
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

/** Forward + backward in one run: masked mean cross-entropy and its gradient for every parameter. */
export class TrainingSession extends EngineSession {
  private constructor(
    session: ort.InferenceSession,
    config: ModelConfig,
    tensors: TensorSpec[],
    options: SessionOptions,
    private readonly gradients: RowBlock[],
  ) {
    super(session, config, tensors, options);
  }

  static async create(config: ModelConfig, opts: SessionOptions): Promise<TrainingSession> {
    const graph = buildTrainingGraph(config, graphShape(opts));
    return new TrainingSession(
      await createSession(graph.onnx, opts),
      config,
      graph.tensors,
      opts,
      graph.blocks,
    );
  }

  /** Loss and gradients. onnxruntime writes the gradients straight into `into`'s arrays when given (one per
   * parameter, of the session's float type), else into new ones. A trainer that passes the same arrays every
   * step spares the process 4 bytes per parameter of freshly mapped memory per step, whose page faults cost
   * ~0.2 s of CPU a step at the reference config on the reference machine. (onnxruntime-node still copies each
   * output into a new JavaScript array, dropped here; build.ts keeps those copies small enough to reuse memory.) */
  async step(params: Params, batch: Batch, into?: ReadonlyMap<string, FloatData>): Promise<StepResult> {
    const grads = this.gradientArrays(into);
    const fetches: Record<string, ort.Tensor | null> = { loss: null };
    for (const { name, param, offset, shape } of this.gradients) {
      const size = shape.reduce((a, b) => a * b, 1);
      fetches[name] = floatTensor((grads.get(param) as FloatData).subarray(offset, offset + size), shape);
    }
    const out = await this.session.run(this.lossFeeds(params, batch), fetches);
    return { loss: Number((out.loss as ort.Tensor).data[0]), grads };
  }

  private gradientArrays(into: ReadonlyMap<string, FloatData> | undefined): Map<string, FloatData> {
    const floatType = this.options.floatType ?? "float32";
    const FloatArray = floatArrayType(floatType);
    const grads = new Map<string, FloatData>();
    for (const spec of this.tensors) {
      const size = spec.shape.reduce((a, b) => a * b, 1);
      const given = into?.get(spec.name);
      if (into && !(given?.length === size && given instanceof FloatArray)) {
        throw new EngineInputError(
          `gradient array for ${spec.name} must be a ${floatType} array of ${size} values`,
        );
      }
      grads.set(spec.name, given ?? new FloatArray(size));
    }
    return grads;
  }
}

/** Masked mean cross-entropy only (evaluation): the training graph without its backward half. */
export class LossSession extends EngineSession {
  static async create(config: ModelConfig, opts: SessionOptions): Promise<LossSession> {
    const graph = buildLossGraph(config, graphShape(opts));
    return new LossSession(await createSession(graph.onnx, opts), config, graph.tensors, opts);
  }

  async loss(params: Params, batch: Batch): Promise<number> {
    const out = await this.session.run(this.lossFeeds(params, batch));
    return Number((out.loss as ort.Tensor).data[0]);
  }
}

/** Forward pass only: logits [B, T, vocab], row-major. */
export class ForwardSession extends EngineSession {
  static async create(config: ModelConfig, opts: SessionOptions): Promise<ForwardSession> {
    const graph = buildForwardGraph(config, graphShape(opts));
    return new ForwardSession(await createSession(graph.onnx, opts), config, graph.tensors, opts);
  }

  async logits(params: Params, inputIds: BigInt64Array): Promise<FloatData> {
    const out = await this.session.run(this.feeds(params, inputIds));
    return (out.logits as ort.Tensor).data as FloatData;
  }
}
