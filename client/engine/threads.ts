// How many intra-op threads a CPU session gets by default. onnxruntime's own default is its count of physical
// cores, and on the 2-core AMD EPYC virtual machine the benchmarks run on it counts one: every kernel ran on one
// thread, 0.87 s a training step at the reference config against 0.52 s with two threads. So on Linux the engine
// counts the cores itself, from what the kernel reports: the CPUs this process may run on (its affinity), one
// per physical core (SMT siblings count once, as onnxruntime means to), and no more than its cgroup's CPU quota.
// Elsewhere, or when any of that cannot be read, onnxruntime's default stands.
import { readFileSync } from "node:fs";

/** Reads a file of the running system; `undefined` when it does not exist or cannot be read. */
export type ReadSystemFile = (path: string) => string | undefined;

const readSystemFile: ReadSystemFile = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    // Absent or unreadable files are the expected case off Linux and in sandboxes: the caller falls back.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR" || code === "EACCES" || code === "EPERM") return undefined;
    throw err;
  }
};

/** The CPUs in a kernel CPU list such as "0-3,8,10-11", ascending and distinct; throws on a malformed list. */
export function parseCpuList(list: string): number[] {
  const cpus = new Set<number>();
  for (const part of list.trim().split(",")) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!match) throw new Error(`malformed CPU list "${list}": expected ranges like 0-3,8`);
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    if (last < first) throw new Error(`malformed CPU list "${list}": range ${part} runs backwards`);
    for (let cpu = first; cpu <= last; cpu++) cpus.add(cpu);
  }
  return [...cpus].sort((a, b) => a - b);
}

/** CPUs allowed by a cgroup quota: v2's cpu.max ("max 100000" or "<quota> <period>"), or v1's quota and period
 * in microseconds (quota -1 for none). Infinity without a limit. */
function quotaCpus(quota: number, period: number): number {
  if (!(quota > 0) || !(period > 0)) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.ceil(quota / period));
}

function cgroupQuotaCpus(read: ReadSystemFile): number {
  let limit = Number.POSITIVE_INFINITY;
  for (const line of (read("/proc/self/cgroup") ?? "").split("\n")) {
    const [id, controllers, path] = line.split(":");
    if (path === undefined) continue;
    if (id === "0" && controllers === "") {
      const [quota, period] = (read(`/sys/fs/cgroup${path.replace(/\/$/, "")}/cpu.max`) ?? "").split(" ");
      if (quota !== undefined && quota !== "max" && period)
        limit = Math.min(limit, quotaCpus(+quota, +period));
    } else if (controllers?.split(",").includes("cpu")) {
      const dir = `/sys/fs/cgroup/cpu${path.replace(/\/$/, "")}`;
      const quota = read(`${dir}/cpu.cfs_quota_us`);
      const period = read(`${dir}/cpu.cfs_period_us`);
      if (quota && period) limit = Math.min(limit, quotaCpus(+quota, +period));
    }
  }
  return limit;
}

/**
 * Physical cores this process may use on Linux, capped by its cgroup's CPU quota; `undefined` where the kernel's
 * files say nothing (other systems), so that onnxruntime's own default applies.
 */
export function availableCores(read: ReadSystemFile = readSystemFile): number | undefined {
  const allowed = /^Cpus_allowed_list:\s*(\S+)/m.exec(read("/proc/self/status") ?? "")?.[1];
  if (!allowed) return undefined;
  const cores = new Set<string>();
  for (const cpu of parseCpuList(allowed)) {
    const topology = `/sys/devices/system/cpu/cpu${cpu}/topology`;
    // core_cpus_list since Linux 5.3; thread_siblings_list before (the same list under its older name).
    const siblings = read(`${topology}/core_cpus_list`) ?? read(`${topology}/thread_siblings_list`);
    if (siblings === undefined) return undefined;
    cores.add(parseCpuList(siblings).join(","));
  }
  return Math.min(cores.size, cgroupQuotaCpus(read));
}
