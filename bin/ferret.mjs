#!/usr/bin/env node
// The `ferret` executable: registers tsx's ESM loader so the TypeScript sources run as they are, re-executes
// itself with glibc heap tunables where it can (client/engine/heap.ts), then starts the CLI.
import { register } from "tsx/esm/api";

register();
await import("../client/engine/tune-heap.ts");
await import("../client/cli/main.ts");
