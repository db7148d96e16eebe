#!/usr/bin/env node
// The `ferret` executable: registers tsx's ESM loader so the TypeScript sources run as they are, then starts the CLI.
import { register } from "tsx/esm/api";

register();
await import("../client/cli/main.ts");
