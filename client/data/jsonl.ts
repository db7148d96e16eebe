/**
 * Fine-tuning datasets as JSON Lines: one object per line, either
 *   {"text": "..."}                          — loss on every token, or
 *   {"prompt": "...", "response": "..."}     — loss on the response tokens only.
 * Other fields (ids, sources) are ignored. Blank lines are skipped; a UTF-8 BOM and CRLF line ends are fine.
 * An empty "text" or "response" is refused like any malformed line: it would teach only an end-of-text token.
 */
import { readFile } from "node:fs/promises";
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

/** Parses JSONL text; `source` names the file in errors. */
export function parseJsonl(text: string, source = "<dataset>"): Example[] {
  const examples: Example[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  lines.forEach((line, index) => {
    if (line.trim() !== "") examples.push(parseLine(line, source, index + 1));
  });
  if (examples.length === 0) throw new DatasetError(`holds no examples; ${EXPECTED} on each line`, source);
  return examples;
}

export async function readJsonl(path: string): Promise<Example[]> {
  return parseJsonl(await readFile(path, "utf8"), path);
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
  const field = (name: string, nonEmpty = false): string => {
    const v = record[name];
    if (typeof v !== "string")
      throw fail(`field "${name}" must be a string, found ${v === null ? "null" : typeof v}`);
    if (nonEmpty && v === "") {
      throw fail(
        `field "${name}" is empty; expected a non-empty string (remove the line if it has nothing to train on)`,
      );
    }
    return v;
  };
  const hasText = "text" in record;
  const hasChat = "prompt" in record || "response" in record;
  if (hasText && hasChat) throw fail(`has both "text" and "prompt"/"response"; ${EXPECTED}`);
  if (hasText) return { text: field("text", true) };
  if (hasChat) {
    for (const name of ["prompt", "response"]) {
      if (!(name in record)) throw fail(`missing field "${name}"; ${EXPECTED}`);
    }
    return { prompt: field("prompt"), response: field("response", true) };
  }
  throw fail(`has fields [${Object.keys(record).join(", ")}]; ${EXPECTED}`);
}
