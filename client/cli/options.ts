// Option parsers shared by the commands: each rejects a bad value with a message saying what was expected.
import { InvalidArgumentError } from "commander";

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive integer, got "${value}"`);
  return n;
}

/** A parser of positive integers up to `max`, for a limit the server enforces: refused here, not after setup. */
export function positiveIntUpTo(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n <= 0 || n > max)
      throw new InvalidArgumentError(`expected a positive integer of at most ${max}, got "${value}"`);
    return n;
  };
}

export function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError(`expected an integer ≥ 0, got "${value}"`);
  return n;
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`expected a positive number, got "${value}"`);
  return n;
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** "250ms", "30s", "5m", "2h" or plain seconds, in milliseconds. */
export function milliseconds(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value);
  if (!match || Number(match[1]) <= 0) {
    throw new InvalidArgumentError(`expected a duration like 250ms, 90, 90s, 5m or 2h, got "${value}"`);
  }
  return Math.round(Number(match[1]) * UNIT_MS[(match[2] ?? "s") as keyof typeof UNIT_MS]);
}

/** An http(s) URL, as the API endpoint. */
export function httpUrl(value: string): string {
  const protocol = URL.canParse(value) ? new URL(value).protocol : undefined;
  if (protocol !== "http:" && protocol !== "https:") {
    throw new InvalidArgumentError(
      `expected an http:// or https:// URL such as http://127.0.0.1:4000, got "${value}"`,
    );
  }
  return value;
}

/** A duration in whole seconds (at least 1). */
export const seconds = (value: string): number => Math.max(1, Math.round(milliseconds(value) / 1000));
