// Workers start from plain JavaScript: register tsx's loader, then load the TypeScript worker.
import { register } from "tsx/esm/api";

register();
await import("./storage-floor-worker.ts");
