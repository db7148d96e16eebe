import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { httpUrl, milliseconds, positiveInt, positiveIntUpTo, seconds } from "../../client/cli/options.ts";

describe("option parsers", () => {
  it("reads durations with units, plain numbers as seconds", () => {
    expect(milliseconds("250ms")).toBe(250);
    expect(milliseconds("2s")).toBe(2000);
    expect(milliseconds("1.5")).toBe(1500);
    expect(milliseconds("5m")).toBe(300_000);
    expect(seconds("2h")).toBe(7200);
    expect(seconds("90")).toBe(90);
  });

  it("refuses malformed values, saying what was expected", () => {
    for (const bad of ["", "5x", "-1s", "0", "ms"]) {
      expect(() => milliseconds(bad)).toThrow(InvalidArgumentError);
    }
    expect(() => positiveInt("3.5")).toThrow(/positive integer, got "3.5"/);
  });

  it("takes positive integers up to a limit, saying the limit when refusing", () => {
    const upTo = positiveIntUpTo(65_536);
    expect(upTo("1")).toBe(1);
    expect(upTo("65536")).toBe(65_536);
    for (const bad of ["65537", "0", "-3", "2.5", "x"]) {
      expect(() => upTo(bad)).toThrow(
        new InvalidArgumentError(`expected a positive integer of at most 65536, got "${bad}"`),
      );
    }
  });

  it("takes http and https endpoints only, saying what was expected", () => {
    expect(httpUrl("http://127.0.0.1:4000")).toBe("http://127.0.0.1:4000");
    expect(httpUrl("https://abc.execute-api.eu-west-1.amazonaws.com")).toMatch(/^https:/);
    for (const bad of ["notaurl", "127.0.0.1:4000", "ftp://x"]) {
      expect(() => httpUrl(bad)).toThrow(/expected an http:\/\/ or https:\/\/ URL/);
    }
  });
});
