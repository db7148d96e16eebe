// glibc's malloc returns the free memory at the top of its heap to the kernel once it exceeds a threshold that
// never passes 64 MiB. A resident SGD session holds two generations of weights: the step's inputs and the
// outputs onnxruntime-node has just copied out. Freed a step later, the generation on top of the heap went back
// to the kernel, and the next step faulted it in again, page by page. At GPT-2 small (498 MB of weights) every
// other step faulted 84–122k pages on the 2-core machine: 4.6–6.3 s against 3.4–4.2 s, with or without a second
// thread. With trimming off and the mmap threshold pinned at the 32 MiB glibc's dynamic threshold ends at, every
// step faults about 250 pages and peak RSS stays where it was.
//
// The first steps still faulted in every page they touched for the first time, 4 KiB at a time: 104k pages at the
// reference config and 567k at GPT-2 small. With transparent huge pages in "madvise" mode (the 2-core machine's
// setting; in "always" mode the kernel needs no asking), glibc.malloc.hugetlb=1 asks for 2 MiB pages instead:
// 1.6k and 3k faults, a first step 10–24% shorter, and GPT-2 small's later steps 5–8% shorter (likely fewer TLB
// misses over its 154 MB head), for 1% more peak RSS. Where THP is off, or glibc is older than 2.35, the tunable
// does nothing.
//
// Tunables are read once, at process start, from GLIBC_TUNABLES, so a training command re-executes itself with
// them set (Node 22.15 and later have process.execve; on Node 20, which has reached its end of life, the command
// runs as it is).

/** glibc.malloc tunables for training: large outputs from the heap (below 32 MiB), no trimming, and
 * transparent huge pages. */
export const TRAINING_HEAP_TUNABLES = [
  "glibc.malloc.mmap_threshold=33554432",
  "glibc.malloc.trim_threshold=1099511627776",
  "glibc.malloc.hugetlb=1",
];

const tunableName = (tunable: string): string => tunable.split("=", 1)[0] as string;

/** Set to "0" to run without the tunables (for comparison). */
export const HEAP_TUNING_SWITCH = "FERRET_TUNE_HEAP";

/**
 * The environment to re-execute with: GLIBC_TUNABLES with each training tunable the user has not set
 * themselves (their value stands). Undefined when there is nothing to add, or tuning is switched off.
 */
export function tunedHeapEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv | undefined {
  if (env[HEAP_TUNING_SWITCH] === "0") return undefined;
  const current = (env.GLIBC_TUNABLES ?? "").split(":").filter((t) => t !== "");
  const set = new Set(current.map(tunableName));
  const missing = TRAINING_HEAP_TUNABLES.filter((t) => !set.has(tunableName(t)));
  if (missing.length === 0) return undefined;
  return { ...env, GLIBC_TUNABLES: [...current, ...missing].join(":") };
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/**
 * Re-executes this process, in place, with TRAINING_HEAP_TUNABLES, when it runs on glibc and the Node in use can
 * (process.execve). Call it first thing in a training command's entry point: nothing after it runs twice, and
 * the process keeps its id, standard streams and signals.
 */
export function tuneGlibcHeap(): void {
  const execve = (process as { execve?: Execve }).execve;
  if (process.platform !== "linux" || typeof execve !== "function") return;
  const env = tunedHeapEnvironment(process.env);
  if (!env) return;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
    ?.header;
  if (!header?.glibcVersionRuntime) return; // musl and other C libraries have their own malloc
  execve.call(
    process,
    process.execPath,
    [process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    env,
  );
}
