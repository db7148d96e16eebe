#!/usr/bin/env node
// The `ferret` executable: registers tsx's ESM loader so the TypeScript sources run as they are, then starts the CLI.
import { register } from "tsx/esm/api";

register();
// `ferret client` trains: it re-executes itself with glibc heap tunables where it can (client/engine/heap.ts).
// Other commands (the local stack, the operator's) keep glibc's defaults, as do the processes they start.
if (process.argv[2] === "client") await import("../client/engine/tune-heap.ts");
await import("../client/cli/main.ts");
