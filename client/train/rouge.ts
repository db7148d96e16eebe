/**
 * Rouge-L (Lin 2004), the paper's generation metric: from the longest common subsequence (LCS) of candidate
 * and reference tokens, precision = LCS/|candidate|, recall = LCS/|reference|, F = 2PR/(P+R).
 * Text is tokenized as the common Rouge scorer does: lowercase, anything but a–z/0–9 separates words.
 */

export interface RougeScore {
  precision: number;
  recall: number;
  f1: number;
}

/** LCS length by dynamic programming in O(|a|·|b|) time and O(min(|a|,|b|)) memory. */
export function lcsLength<T>(a: readonly T[], b: readonly T[]): number {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  let previous = new Uint32Array(short.length + 1);
  let current = new Uint32Array(short.length + 1);
  for (const x of long) {
    for (let j = 1; j <= short.length; j++) {
      current[j] =
        x === short[j - 1]
          ? (previous[j - 1] as number) + 1
          : Math.max(previous[j] as number, current[j - 1] as number);
    }
    [previous, current] = [current, previous];
  }
  return previous[short.length] as number;
}

/** Rouge-L of token sequences; 0 when either is empty. */
export function rougeL<T>(candidate: readonly T[], reference: readonly T[]): RougeScore {
  const lcs = lcsLength(candidate, reference);
  if (lcs === 0) return { precision: 0, recall: 0, f1: 0 };
  const precision = lcs / candidate.length;
  const recall = lcs / reference.length;
  return { precision, recall, f1: (2 * precision * recall) / (precision + recall) };
}

export function rougeTokens(text: string): string[] {
  return text
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter((t) => t !== "");
}

/** Rouge-L of two texts. */
export function rougeLText(candidate: string, reference: string): RougeScore {
  return rougeL(rougeTokens(candidate), rougeTokens(reference));
}

/** Mean Rouge-L F over pairs, as reported for a test set. */
export function meanRougeL(pairs: readonly { candidate: string; reference: string }[]): number {
  if (pairs.length === 0) return 0;
  return pairs.reduce((sum, p) => sum + rougeLText(p.candidate, p.reference).f1, 0) / pairs.length;
}
