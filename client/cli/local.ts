// `ferret local up`: the backend's local stack (DynamoDB Local, s3rver, the handlers behind the router) in this
// process, until Ctrl-C. Prints the exports the other commands read.
import type { Command } from "commander";
import { jsonOption } from "./connection.ts";
import { positiveInt } from "./options.ts";
import { Output } from "./output.ts";

export function registerLocalCommands(program: Command): void {
  const local = program.command("local").description("run the whole backend on this machine");
  local
    .command("up")
    .description("start DynamoDB Local + s3rver + the API on loopback (needs Java 17+); Ctrl-C stops it")
    .option("--port <n>", "API port (default: a free one)", positiveInt)
    .option("--threads <n>", "aggregation worker threads", positiveInt)
    .addOption(jsonOption())
    .action(async (flags: { port?: number; threads?: number; json?: boolean }) => {
      const out = new Output(flags.json === true);
      out.info("starting the local stack (DynamoDB Local warms up in a few seconds)…");
      const [{ startLocalStack }, { stopSignal }] = await Promise.all([
        import("../../infra/local/stack.ts"),
        import("../../infra/local/stop-signal.ts"),
      ]);
      const stack = await startLocalStack({
        ...(flags.port ? { port: flags.port } : {}),
        ...(flags.threads ? { threads: flags.threads } : {}),
      });
      out.result(
        { endpoint: stack.endpoint, adminToken: stack.adminToken },
        `Ferret local stack ready. In another shell:\n` +
          `  export FERRET_ENDPOINT=${stack.endpoint}\n  export FERRET_ADMIN_TOKEN=${stack.adminToken}\n` +
          `Ctrl-C stops it (its data is discarded).`,
      );
      await stopSignal((signal) => out.info(`${signal}: still stopping…`));
      out.info("stopping…");
      await stack.close();
    });
}
