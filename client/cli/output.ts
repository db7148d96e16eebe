// How the CLI talks: results to stdout (a human summary, or one JSON document / JSON lines with --json),
// progress and diagnostics to stderr, and exit codes a script can act on.
import { access, constants, mkdir } from "node:fs/promises";
import { GaveUpError } from "../api/backoff.ts";
import { ApiError, ProtocolMismatchError, UnreachableError } from "../api/errors.ts";

/** Exit codes (documented in README and `ferret --help`). */
export const EXIT = {
  ok: 0,
  /** A bug or an error nobody anticipated; the message and stack go to stderr. */
  internal: 1,
  /** Wrong command line: unknown command or option, missing or malformed value. */
  usage: 2,
  /** A local input is unusable: model directory, dataset, state directory, output path, Java (local stack). */
  input: 3,
  /** The server refused the request (4xx): wrong token, unknown run, invalid config, conflict. */
  refused: 4,
  /** The server could not be reached (or kept failing) for the whole retry budget. */
  unreachable: 5,
  /** Stopped by SIGINT/SIGTERM. */
  interrupted: 130,
} as const;

export const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    internal error (a bug; please report it with the stderr output)
  2    usage error (unknown option, missing or malformed value)
  3    unusable local input (model directory, dataset, state directory, output path, Java for the local stack)
  4    the server refused the request (HTTP 4xx: bad token, unknown run, invalid config, conflict)
  5    the server was unreachable or kept failing for the whole retry budget
  130  interrupted (SIGINT/SIGTERM)`;

/** A problem with what the user gave us, reported without a stack trace. */
export class InputError extends Error {
  override name = "InputError";
}

/** What a failed read or write says of the path it was given (Node's error code). */
const PATH_PROBLEMS: Record<string, string> = {
  ENOENT: "does not exist",
  EISDIR: "is a directory",
  ENOTDIR: "lies under a file",
  EEXIST: "exists and is not a directory",
  EACCES: "is not accessible to this user (EACCES: permission denied)",
  EPERM: "cannot be created or changed here (EPERM: operation not permitted)",
  EROFS: "is on a read-only file system (EROFS)",
};

/**
 * `error`, met while using the path given to `option`, as an InputError naming the option and what it expects.
 * A filesystem error gets those words; an InputError (a model directory that lacks a file, say) is prefixed
 * with the option; any other error is returned as it is (a dataset's own errors name the file and line).
 */
export function pathInputError(option: string, path: string, expected: string, error: unknown): unknown {
  const problem = PATH_PROBLEMS[(error as NodeJS.ErrnoException)?.code ?? ""];
  if (problem) return new InputError(`${option} ${path} ${problem}; expected ${expected}`, { cause: error });
  if (error instanceof InputError)
    return new InputError(`${option} ${path}: ${error.message}`, { cause: error });
  return error;
}

/**
 * Creates the directory that `option` names, if absent, and checks that this user can write in it: a command
 * that writes there after minutes of work learns now that it could not. Creating it is the check to trust:
 * root passes access() in /sys, where mkdir fails. Returns the first directory created, as mkdir does.
 */
export async function writableDirectory(option: string, dir: string): Promise<string | undefined> {
  const expected = "a directory this user can write, or a path where one can be created";
  try {
    const created = await mkdir(dir, { recursive: true });
    await access(dir, constants.W_OK | constants.X_OK);
    return created;
  } catch (error) {
    throw pathInputError(option, dir, expected, error);
  }
}

/** Options that parse but do not fit together or with the inputs (found once those are read). */
export class UsageError extends Error {
  override name = "UsageError";
}

export function exitCodeOf(error: unknown): number {
  // Parallel transfers that failed together exit as their first failure would have alone.
  if (error instanceof AggregateError && error.errors.length > 0) return exitCodeOf(error.errors[0]);
  if (error instanceof ApiError) return error.status >= 500 ? EXIT.unreachable : EXIT.refused;
  if (error instanceof ProtocolMismatchError) return EXIT.refused;
  if (error instanceof GaveUpError || error instanceof UnreachableError) return EXIT.unreachable;
  if (error instanceof InputError) return EXIT.input;
  const name = (error as Error)?.name ?? "";
  // PortInUse comes from the local stack, which does not import the CLI.
  if (error instanceof UsageError || name === "PortInUse") return EXIT.usage;
  // Typed errors from the formats, data, models and state modules: all are about local inputs.
  if (
    /^(FormatError|DatasetError|Safetensors\w*Error|TokenizerError|StateError|ModelConfigError|UnknownArchitectureError|UnsupportedDtypeError|DeviceUnavailableError|EngineInputError|RangeError|JavaMissing)$/.test(
      name,
    )
  ) {
    return EXIT.input;
  }
  // A path that is missing, unreadable, or a directory where a file was expected (or the reverse).
  if (["ENOENT", "EACCES", "EISDIR", "ENOTDIR"].includes((error as NodeJS.ErrnoException)?.code ?? "")) {
    return EXIT.input;
  }
  return EXIT.internal;
}

export class Output {
  constructor(readonly json: boolean) {}

  /** The command's result: JSON on stdout with --json, else the human text. */
  result(value: unknown, human: string): void {
    process.stdout.write(this.json ? `${JSON.stringify(value)}\n` : `${human}\n`);
  }

  /** A streamed event: a JSON line on stdout with --json, else a human line on stderr. */
  event(value: object, human: string): void {
    if (this.json) process.stdout.write(`${JSON.stringify(value)}\n`);
    else process.stderr.write(`${human}\n`);
  }

  info(message: string): void {
    process.stderr.write(`${message}\n`);
  }

  /** A progress bar on a terminal, a line per 10% otherwise (logs stay short). */
  progress(label: string, total: number, unit = ""): (done: number) => void {
    const tty = process.stderr.isTTY;
    let lastDecile = -1;
    return (done: number) => {
      const fraction = total > 0 ? Math.min(1, done / total) : 1;
      const text = `${label} ${formatAmount(done, unit)}/${formatAmount(total, unit)} (${Math.round(fraction * 100)}%)`;
      if (tty) {
        const width = 24;
        const filled = Math.round(fraction * width);
        process.stderr.write(
          `\r[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}${fraction === 1 ? "\n" : ""}`,
        );
        return;
      }
      const decile = Math.floor(fraction * 10);
      if (decile !== lastDecile) process.stderr.write(`${text}\n`);
      lastDecile = decile;
    };
  }
}

export function formatAmount(n: number, unit: string): string {
  if (unit !== "B") return `${n}${unit}`;
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}
