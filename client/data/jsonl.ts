/**
 * Fine-tuning datasets as JSON Lines: one object per line, either
 *   {"text": "..."}                          — loss on every token, or
 *   {"prompt": "...", "response": "..."}     — loss on the response tokens only.
 * Other fields (ids, sources) are ignored. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are fine. So
 * are rows with an empty "text" or "response", which exports hold plenty of (a third of wikitext's): alone, each
 * would teach only an end-of-text token. A file with nothing else is refused.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import { FormatError } from "../../core/formats/errors.ts";

export type Example = { text: string } | { prompt: string; response: string };

/** A dataset that cannot be used; `line` (1-based) points at the offending line when there is one. */
export class DatasetError extends FormatError {
  constructor(
    message: string,
    readonly source: string,
    readonly line?: number,
  ) {
    super("DATASET", `${source}${line === undefined ? "" : `:${line}`}: ${message}`);
  }
}

const EXPECTED = 'expected {"text": string} or {"prompt": string, "response": string}';

/** Gathers the examples of a file's lines, given one at a time with their 1-based numbers. */
function exampleCollector(source: string) {
  const examples: Example[] = [];
  let empty = 0;
  return {
    add(line: string, lineNumber: number): void {
      const content = lineNumber === 1 ? line.replace(/^\uFEFF/, "") : line;
      if (content.trim() === "") return;
      const example = parseLine(content, source, lineNumber);
      if (("text" in example ? example.text : example.response) === "") empty++;
      else examples.push(example);
    },
    examples(): Example[] {
      if (examples.length === 0) {
        const emptyRows =
          empty > 0 ? ` (${empty} row(s) with an empty text or response, which are skipped)` : "";
        throw new DatasetError(`holds no examples${emptyRows}; ${EXPECTED} on each line`, source);
      }
      return examples;
    },
  };
}

/** Parses JSONL text; `source` names the file in errors. */
export function parseJsonl(text: string, source = "<dataset>"): Example[] {
  const collector = exampleCollector(source);
  text.split(/\r?\n/).forEach((line, index) => {
    collector.add(line, index + 1);
  });
  return collector.examples();
}

/** Reads a JSONL file line by line: one string of the whole file would stop at V8's 512 MiB string limit. */
export async function readJsonl(path: string): Promise<Example[]> {
  const collector = exampleCollector(path);
  const lines = createInterface({
    input: createReadStream(path, "utf8"),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let lineNumber = 0;
  for await (const line of lines) collector.add(line, ++lineNumber);
  return collector.examples();
}

function parseLine(line: string, source: string, lineNumber: number): Example {
  const fail = (message: string) => new DatasetError(message, source, lineNumber);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw fail(`not valid JSON (${(error as Error).message}); ${EXPECTED}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw fail(
      `found ${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value}; ${EXPECTED}`,
    );
  }
  const record = value as Record<string, unknown>;
  const field = (name: string): string => {
    const v = record[name];
    if (typeof v !== "string")
      throw fail(`field "${name}" must be a string, found ${v === null ? "null" : typeof v}`);
    return v;
  };
  const hasText = "text" in record;
  const hasChat = "prompt" in record || "response" in record;
  if (hasText && hasChat) throw fail(`has both "text" and "prompt"/"response"; ${EXPECTED}`);
  if (hasText) return { text: field("text") };
  if (hasChat) {
    for (const name of ["prompt", "response"]) {
      if (!(name in record)) throw fail(`missing field "${name}"; ${EXPECTED}`);
    }
    return { prompt: field("prompt"), response: field("response") };
  }
  throw fail(`has fields [${Object.keys(record).join(", ")}]; ${EXPECTED}`);
}
