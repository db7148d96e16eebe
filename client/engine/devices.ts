// The devices the engine can train on. Kept apart from session.ts so that the CLI can list them without loading
// onnxruntime-node, which only the commands that train need.
export const DEVICES = ["cpu", "cuda", "webgpu"] as const;
export type Device = (typeof DEVICES)[number];
export const isDevice = (name: string): name is Device => (DEVICES as readonly string[]).includes(name);
/** Whether onnxruntime-node can leave `device`'s outputs in its memory ("gpu-buffer", WebGPU only) to feed the
 * next run, rather than copy them back to the host (see resident.ts). */
export const keepsOutputsOnDevice = (device: Device | undefined): boolean => device === "webgpu";
