// Serializes a Graph to an ONNX ModelProto.
//
// Why a hand-written protobuf encoder instead of onnx-proto / onnx-buf: we only ever *write* models, and only a
// dozen fields of five messages (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto). Protobuf's
// wire format for that subset is three rules (varint, length-delimited, fixed32), so ~100 lines here replace a
// generated-code dependency (protobufjs runtime or @bufbuild/protobuf) whose schema we would still need to pin to
// the same ONNX version. Field numbers below are from onnx/onnx.proto3 (IR version 8, opset 18).
import type { DType, Graph, Node, Tensor } from "./graph.ts";

export const OPSET_VERSION = 18;
const IR_VERSION = 8; // IR version that goes with opset 18

const ELEM_TYPE: Record<DType, number> = { float32: 1, int64: 7, float64: 11 };
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_INTS = 7;

class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private length = 0;

  private push(bytes: Uint8Array): void {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }

  private varint(value: bigint): void {
    // Negative int64 values are encoded as their 64-bit two's complement (10 bytes), as protobuf requires.
    let v = BigInt.asUintN(64, value);
    const out: number[] = [];
    while (v >= 0x80n) {
      out.push(Number(v & 0x7fn) | 0x80);
      v >>= 7n;
    }
    out.push(Number(v));
    this.push(Uint8Array.from(out));
  }

  private key(field: number, wireType: number): void {
    this.varint(BigInt((field << 3) | wireType));
  }

  int(field: number, value: number): this {
    this.key(field, 0);
    this.varint(BigInt(value));
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, 2);
    this.varint(BigInt(value.length));
    this.push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: ProtoWriter) => void): this {
    const inner = new ProtoWriter();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

function writeValueInfo(w: ProtoWriter, field: number, name: string, t: Tensor): void {
  w.message(field, (vi) => {
    vi.string(1, name);
    vi.message(2, (type) =>
      type.message(1, (tensorType) => {
        tensorType.int(1, ELEM_TYPE[t.dtype]);
        tensorType.message(2, (shape) => {
          for (const d of t.shape) shape.message(1, (dim) => dim.int(1, d));
        });
      }),
    );
  });
}

function writeNode(w: ProtoWriter, node: Node, index: number): void {
  w.message(1, (n) => {
    for (const input of node.inputs) n.string(1, input.name);
    n.string(2, node.output.name);
    n.string(3, `n${index}`);
    n.string(4, node.op.type);
    for (const [name, value] of Object.entries(node.attrs)) {
      n.message(5, (a) => {
        a.string(1, name);
        if (typeof value === "string") a.string(4, value).int(20, ATTR_STRING);
        else if (typeof value === "number") a.int(3, value).int(20, ATTR_INT);
        else {
          for (const v of value) a.int(8, v);
          a.int(20, ATTR_INTS);
        }
      });
    }
  });
}

/** Nodes needed to compute `outputs`, in graph (topological) order: unused branches are not serialized. */
function liveNodes(graph: Graph, outputs: Tensor[]): Node[] {
  const live = new Set<Tensor>(outputs);
  const keep: Node[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i] as Node;
    if (!live.has(node.output)) continue;
    keep.push(node);
    for (const input of node.inputs) live.add(input);
  }
  return keep.reverse();
}

/** Encodes `graph` with the given named outputs (each becomes an Identity node) as ONNX model bytes. */
export function toOnnxModel(graph: Graph, outputs: { name: string; tensor: Tensor }[]): Uint8Array {
  const nodes = liveNodes(
    graph,
    outputs.map((o) => o.tensor),
  );
  const used = new Set<Tensor>(outputs.map((o) => o.tensor));
  for (const node of nodes) for (const input of node.inputs) used.add(input);

  const model = new ProtoWriter();
  model.int(1, IR_VERSION);
  model.string(2, "ferret");
  model.message(7, (g) => {
    nodes.forEach((node, i) => {
      writeNode(g, node, i);
    });
    outputs.forEach((o, i) => {
      g.message(1, (n) => {
        n.string(1, o.tensor.name).string(2, o.name).string(3, `out${i}`).string(4, "Identity");
      });
    });
    g.string(2, "ferret");
    for (const init of graph.initializers) {
      if (!used.has(init.tensor)) continue;
      g.message(5, (t) => {
        for (const d of init.tensor.shape) t.int(1, d);
        t.int(2, ELEM_TYPE[init.tensor.dtype]);
        t.string(8, init.tensor.name);
        // raw_data is little-endian; typed arrays are little-endian on every platform Node supports.
        t.bytes(9, new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength));
      });
    }
    for (const input of graph.inputs) writeValueInfo(g, 11, input.name, input);
    for (const o of outputs) writeValueInfo(g, 12, o.name, o.tensor);
  });
  model.message(8, (op) => op.string(1, "").int(2, OPSET_VERSION));
  return model.finish();
}
