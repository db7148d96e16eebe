// A typed tensor-expression graph with static shapes. Ops (ops.ts) append nodes; autodiff.ts walks them
// backwards; onnx.ts serializes them. Every float tensor of a graph has the graph's float type, so the same
// model code builds a float32 graph for training and a float64 graph for finite-difference checks.

export type FloatType = "float32" | "float64";
export type DType = FloatType | "int64";
export type AttrValue = number | number[] | string;
export type Attrs = Record<string, AttrValue>;

export interface OpDef {
  /** ONNX op_type (default domain, opset 18). */
  type: string;
  /** Gradients of the node's inputs given the gradient `g` of its output; null where an input gets none.
   * Absent for ops that only appear inside backward graphs (scatter, pad). */
  backward?: (g: Tensor, node: Node) => (Tensor | null)[];
}

export interface Node {
  op: OpDef;
  inputs: Tensor[];
  /** ONNX attributes, written to the model. */
  attrs: Attrs;
  /** Facts only the backward rule needs (e.g. a Slice's range); not written to the model. */
  meta: Readonly<Record<string, number | number[]>>;
  output: Tensor;
  /** For a composite op (several nodes differentiated as one), the tensors its backward rule returns gradients
   * for, in place of its ONNX inputs; its inner nodes then get no gradients of their own. */
  gradInputs?: Tensor[];
}

/** Raised for graph construction mistakes: shapes or types that the op cannot accept. */
export class GraphShapeError extends Error {
  override name = "GraphShapeError";
}

export class Tensor {
  constructor(
    readonly graph: Graph,
    readonly name: string,
    readonly shape: readonly number[],
    readonly dtype: DType,
    /** True when the tensor depends on a differentiable graph input (a parameter). */
    readonly requiresGrad: boolean,
  ) {}

  get rank(): number {
    return this.shape.length;
  }

  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
}

type InitData = Float32Array | Float64Array | BigInt64Array;

export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Tensor[] = [];
  readonly initializers: { tensor: Tensor; data: InitData }[] = [];
  private readonly names = new Set<string>();
  private readonly int64Cache = new Map<string, Tensor>();
  private readonly scalarCache = new Map<number, Tensor>();
  private counter = 0;

  constructor(readonly floatType: FloatType = "float32") {}

  private claim(name: string): string {
    if (this.names.has(name)) throw new GraphShapeError(`duplicate tensor name "${name}"`);
    this.names.add(name);
    return name;
  }

  /** A graph input. Float inputs marked `requiresGrad` are the parameters gradients are taken against. */
  input(name: string, shape: number[], dtype: DType, requiresGrad = false): Tensor {
    const t = new Tensor(this, this.claim(name), shape, dtype, requiresGrad);
    this.inputs.push(t);
    return t;
  }

  /** A float constant of the graph's float type, stored as an initializer. */
  constant(values: ArrayLike<number>, shape: number[]): Tensor {
    const t = new Tensor(this, this.claim(`c${this.counter++}`), shape, this.floatType, false);
    if (values.length !== t.size)
      throw new GraphShapeError(`constant has ${values.length} values for [${shape}]`);
    const data = this.floatType === "float32" ? Float32Array.from(values) : Float64Array.from(values);
    this.initializers.push({ tensor: t, data });
    return t;
  }

  /** A rank-0 float constant; identical values share one initializer. */
  scalar(value: number): Tensor {
    let t = this.scalarCache.get(value);
    if (!t) {
      t = this.constant([value], []);
      this.scalarCache.set(value, t);
    }
    return t;
  }

  /** A 1-D int64 constant (shapes, axes, pads); identical values share one initializer. */
  int64(values: readonly number[]): Tensor {
    const key = values.join(",");
    let t = this.int64Cache.get(key);
    if (!t) {
      t = new Tensor(this, this.claim(`i${this.counter++}`), [values.length], "int64", false);
      this.initializers.push({ tensor: t, data: BigInt64Array.from(values, (v) => BigInt(v)) });
      this.int64Cache.set(key, t);
    }
    return t;
  }

  /** Appends a node computing one output of the given shape and type. */
  apply(
    op: OpDef,
    inputs: Tensor[],
    attrs: Attrs,
    shape: number[],
    dtype: DType,
    meta: Node["meta"] = {},
    gradInputs?: Tensor[],
  ): Tensor {
    for (const input of inputs) {
      if (input.graph !== this)
        throw new GraphShapeError(`${op.type}: input ${input.name} is from another graph`);
    }
    if (shape.some((d) => !Number.isInteger(d) || d < 0)) {
      throw new GraphShapeError(`${op.type}: invalid output shape [${shape}]`);
    }
    const requiresGrad = op.backward !== undefined && (gradInputs ?? inputs).some((t) => t.requiresGrad);
    const output = new Tensor(this, this.claim(`t${this.counter++}`), shape, dtype, requiresGrad);
    this.nodes.push({ op, inputs, attrs, meta, output, ...(gradInputs ? { gradInputs } : {}) });
    return output;
  }
}
