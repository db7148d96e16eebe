// `ferret clients add|revoke`: registering data owners with a run (the token is shown once) and cutting them off.
import type { Command } from "commander";
import { type OperatorFlags, operator, required, runOption, withOperatorOptions } from "./connection.ts";

export function registerClientsCommands(program: Command): void {
  const clients = program
    .command("clients")
    .description("register and revoke the clients of a run (operator)");

  withOperatorOptions(
    clients
      .command("add")
      .description("register a client; prints its bearer token, which is shown only this once")
      .addOption(runOption())
      .requiredOption("--name <name>", "a name for the client (e.g. the data owner)"),
  ).action(async (flags: OperatorFlags & { run?: string; name: string }) => {
    const { api, out } = await operator(flags);
    const runId = required(flags.run, "--run", "FERRET_RUN");
    const added = await api.addClient(runId, flags.name);
    out.result(
      { ...added, runId },
      `client ${added.name}: ${added.clientId}\ntoken (shown once): ${added.token}\n` +
        `run it with: ferret client --endpoint ${api.http.endpoint} --run ${runId} --token ${added.token} --model DIR --data FILE.jsonl`,
    );
  });

  withOperatorOptions(
    clients
      .command("revoke")
      .description("revoke a client: its token stops working at once")
      .addOption(runOption())
      .requiredOption("--client <id>", "client id (from `clients add` or `run status`)"),
  ).action(async (flags: OperatorFlags & { run?: string; client: string }) => {
    const { api, out } = await operator(flags);
    const revoked = await api.revokeClient(required(flags.run, "--run", "FERRET_RUN"), flags.client);
    out.result(revoked, `client ${revoked.clientId} revoked`);
  });
}
