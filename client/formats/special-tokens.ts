// Special tokens written in the text, such as "<|endoftext|>" between documents, become their ids, as Hugging
// Face tokenizers treat added tokens: so a model directory encodes the same text to the same ids whichever
// tokenizer files it holds (tokenizer.json, vocab.json + merges.txt, or none).

/**
 * An encoder that gives each special token's occurrences in a text as its id, and the runs between them to
 * `encodePlain`. Built once per tokenizer: encoding runs once per training example.
 */
export function withSpecialTokens(
  specials: ReadonlyMap<string, number>,
  encodePlain: (plain: string) => number[],
): (text: string) => number[] {
  if (specials.size === 0) return encodePlain;
  // Longest first, so a special that begins another is not matched inside it.
  const names = [...specials.keys()].sort((a, b) => b.length - a.length);
  const pattern = new RegExp(`(${names.map((n) => n.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`);
  return (text) => {
    const ids: number[] = [];
    text.split(pattern).forEach((part, i) => {
      // split with one capture group alternates plain runs (even indices) and matched specials (odd).
      if (i % 2 === 1) ids.push(specials.get(part) as number);
      else if (part !== "") for (const id of encodePlain(part)) ids.push(id);
    });
    return ids;
  };
}
