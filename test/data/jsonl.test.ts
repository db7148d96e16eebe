import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DatasetError, parseJsonl, readJsonl } from "../../client/data/jsonl.ts";

describe("JSONL datasets", () => {
  it("reads text and prompt/response examples, ignoring extra fields, blank lines, BOM and CRLF", () => {
    const text = '\uFEFF{"text":"a whale","id":7}\r\n\r\n{"prompt":"Q?","response":"A."}\n';
    expect(parseJsonl(text)).toEqual([{ text: "a whale" }, { prompt: "Q?", response: "A." }]);
  });

  it("round-trips any examples written as JSON lines", () => {
    const example = fc.oneof(
      fc.record({ text: fc.string({ minLength: 1 }) }),
      fc.record({ prompt: fc.string(), response: fc.string({ minLength: 1 }) }),
    );
    fc.assert(
      fc.property(fc.array(example, { minLength: 1, maxLength: 10 }), (examples) => {
        expect(parseJsonl(examples.map((e) => JSON.stringify(e)).join("\n"))).toEqual(examples);
      }),
    );
  });

  const bad: [string, string, RegExp][] = [
    ["an empty file", "", /data.jsonl: holds no examples; expected \{"text": string\}/],
    ["only blank lines", "\n  \n", /holds no examples/],
    [
      "a malformed line",
      '{"text":"ok"}\n{"text":"ok"}\n{"text": oops}\n',
      /data.jsonl:3: not valid JSON .*expected \{"text"/,
    ],
    ["a line that is an array", '["text"]', /data.jsonl:1: found an array; expected/],
    ["a missing response", '{"text":"ok"}\n{"prompt":"Q"}', /data.jsonl:2: missing field "response"/],
    [
      "a number where text belongs",
      '{"text":42}',
      /data.jsonl:1: field "text" must be a string, found number/,
    ],
    ["a null response", '{"prompt":"Q","response":null}', /field "response" must be a string, found null/],
    ["both kinds at once", '{"text":"a","prompt":"b","response":"c"}', /has both "text" and "prompt"/],
    ["neither kind", '{"content":"a"}', /:1: has fields \[content\]; expected/],
    [
      "only rows with an empty text or response",
      '{"text":""}\n{"prompt":"Q","response":""}',
      /data.jsonl: holds no examples \(2 row\(s\) with an empty text or response, which are skipped\)/,
    ],
  ];

  it.each(bad)("rejects %s, saying where and what was expected", (_, text, message) => {
    expect(() => parseJsonl(text, "data.jsonl")).toThrow(DatasetError);
    expect(() => parseJsonl(text, "data.jsonl")).toThrow(message);
  });

  it("skips rows with an empty text or response wherever they are, keeping the others in order", () => {
    const good = fc.oneof(
      fc.record({ text: fc.string({ minLength: 1 }) }),
      fc.record({ prompt: fc.string(), response: fc.string({ minLength: 1 }) }),
    );
    const empty = fc.oneof(
      fc.constant({ text: "" }),
      fc.record({ prompt: fc.string(), response: fc.constant("") }),
    );
    fc.assert(
      fc.property(fc.array(fc.oneof(good, empty), { maxLength: 12 }), good, (rows, last) => {
        const kept = [...rows, last].filter((e) => ("text" in e ? e.text : e.response) !== "");
        expect(parseJsonl([...rows, last].map((e) => JSON.stringify(e)).join("\n"))).toEqual(kept);
      }),
    );
  });

  it("accepts an empty prompt: the response still carries loss", () => {
    expect(parseJsonl('{"prompt":"","response":"A."}')).toEqual([{ prompt: "", response: "A." }]);
  });

  it("reports the line number of the first bad line", () => {
    try {
      parseJsonl('{"text":"a"}\n{"text":1}', "d.jsonl");
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "DATASET", source: "d.jsonl", line: 2 });
    }
  });

  it("names the file it read", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ferret-jsonl-"));
    try {
      const path = join(dir, "train.jsonl");
      await writeFile(path, "");
      await expect(readJsonl(path)).rejects.toThrow(`${path}: holds no examples`);
      await writeFile(path, '{"text":"one"}\n');
      expect(await readJsonl(path)).toEqual([{ text: "one" }]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reads a file line by line exactly as it parses the same text, errors and their line numbers too", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ferret-jsonl-"));
    const path = join(dir, "train.jsonl");
    const line = fc.oneof(
      fc.record({ text: fc.string() }).map((r) => JSON.stringify(r)),
      fc.record({ prompt: fc.string(), response: fc.string() }).map((r) => JSON.stringify(r)),
      fc.constantFrom("", "  ", "{not json", '{"text": 3}'),
    );
    const file = fc.record({
      bom: fc.boolean(),
      lines: fc.array(line, { maxLength: 8 }),
      end: fc.constantFrom("\n", "\r\n"),
    });
    const outcome = async (read: () => Promise<unknown>) =>
      read().then(
        (examples) => ({ examples }),
        (error: Error) => ({ error: error.message }),
      );
    try {
      await fc.assert(
        fc.asyncProperty(file, async ({ bom, lines, end }) => {
          const text = `${bom ? "\uFEFF" : ""}${lines.join(end)}${end}`;
          await writeFile(path, text);
          const parsed = await outcome(async () => parseJsonl(text, path));
          expect(await outcome(() => readJsonl(path))).toEqual(parsed);
        }),
        { numRuns: 60 },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
