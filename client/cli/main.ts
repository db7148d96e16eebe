// The `ferret` command: operator commands (run, clients), the client loop, the local stack and the demo.
import { Command, CommanderError } from "commander";
import { registerClientCommand } from "./client.ts";
import { registerClientsCommands } from "./clients.ts";
import { registerDemoCommand } from "./demo.ts";
import { registerLocalCommands } from "./local.ts";
import { EXIT, EXIT_CODES_HELP, exitCodeOf } from "./output.ts";
import { registerRunCommands } from "./run.ts";

const program = new Command("ferret")
  .description("Federated full-parameter fine-tuning of language models (Ferret), serverless on AWS or local")
  .version("0.1.0")
  .showHelpAfterError()
  .exitOverride()
  .addHelpText("after", EXIT_CODES_HELP);

registerRunCommands(program);
registerClientsCommands(program);
registerClientCommand(program);
registerLocalCommands(program);
registerDemoCommand(program);
for (const command of program.commands) command.exitOverride().addHelpText("after", EXIT_CODES_HELP);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version end here too, with exit code 0.
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
  } else {
    const code = exitCodeOf(error);
    process.stderr.write(
      `ferret: ${code === EXIT.internal ? ((error as Error).stack ?? String(error)) : (error as Error).message}\n`,
    );
    process.exitCode = code;
  }
}
