// Reverse-mode differentiation over a Graph: walks the recorded nodes backwards, asks each op's backward rule
// (beside its forward in ops.ts / indexing.ts) for its inputs' gradients, and sums gradients that meet.
import { GraphShapeError, type Tensor } from "./graph.ts";
import { sumGradients } from "./indexing.ts";
import { expand, zeros } from "./ops.ts";

/** Gradients of scalar `loss` with respect to each of `wrt` (zeros for one the loss does not depend on). */
export function gradients(loss: Tensor, wrt: Tensor[]): Tensor[] {
  if (loss.size !== 1)
    throw new GraphShapeError(`gradients: loss must have one element, got [${loss.shape}]`);
  const { graph } = loss;
  const grads = new Map<Tensor, Tensor>([[loss, expand(graph.scalar(1), [...loss.shape])]]);
  const forwardNodes = graph.nodes.length;
  for (let i = forwardNodes - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    const g = node && grads.get(node.output);
    if (!node || !g || !node.output.requiresGrad) continue;
    if (!node.op.backward) throw new GraphShapeError(`${node.op.type} has no gradient rule`);
    const inputGrads = node.op.backward(g, node);
    (node.gradInputs ?? node.inputs).forEach((input, k) => {
      const dx = inputGrads[k];
      if (!dx || !input.requiresGrad) return;
      const prev = grads.get(input);
      grads.set(input, prev ? sumGradients(prev, dx) : dx);
    });
  }
  return wrt.map((p) => grads.get(p) ?? zeros(graph, p.shape));
}
