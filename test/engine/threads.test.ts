import { availableParallelism, platform } from "node:os";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { availableCores, parseCpuList, type ReadSystemFile } from "../../client/engine/threads.ts";

/** A kernel CPU list for a set of CPUs, with runs of consecutive CPUs written as ranges. */
function formatCpuList(cpus: number[]): string {
  const sorted = [...new Set(cpus)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && (sorted[j + 1] as number) === (sorted[j] as number) + 1) j++;
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(",");
}

/** A Linux system's files: `cores` lists each core's CPUs (SMT siblings), `allowed` the process's affinity. */
function linux(cores: number[][], allowed: number[], extra: Record<string, string> = {}): ReadSystemFile {
  const files: Record<string, string> = {
    "/proc/self/status": `Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t${formatCpuList(allowed)}\n`,
    "/proc/self/cgroup": "0::/\n",
    ...extra,
  };
  for (const core of cores) {
    for (const cpu of core) {
      files[`/sys/devices/system/cpu/cpu${cpu}/topology/core_cpus_list`] = `${formatCpuList(core)}\n`;
    }
  }
  return (path) => files[path];
}

describe("parseCpuList", () => {
  it("reads back any set of CPUs written as the kernel writes them", () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.nat(300), { minLength: 1, maxLength: 64 }), (cpus) => {
        expect(parseCpuList(formatCpuList(cpus))).toEqual([...cpus].sort((a, b) => a - b));
      }),
    );
    expect(parseCpuList("0-3,8,10-11\n")).toEqual([0, 1, 2, 3, 8, 10, 11]);
  });

  it("says what it expected of a malformed list", () => {
    expect(() => parseCpuList("0-")).toThrow(/malformed CPU list "0-": expected ranges like 0-3,8/);
    expect(() => parseCpuList("")).toThrow(/malformed CPU list/);
    expect(() => parseCpuList("4-2")).toThrow(/range 4-2 runs backwards/);
  });
});

describe("availableCores", () => {
  it("counts one thread per physical core among the CPUs the process may use", () => {
    const fourCoresWithSmt = [
      [0, 4],
      [1, 5],
      [2, 6],
      [3, 7],
    ];
    expect(availableCores(linux(fourCoresWithSmt, [0, 1, 2, 3, 4, 5, 6, 7]))).toBe(4);
    // Both siblings of one core, one of another: two cores.
    expect(availableCores(linux(fourCoresWithSmt, [0, 4, 1]))).toBe(2);
    // The benchmark machine: two cores of one thread each, where onnxruntime's own count is one.
    expect(availableCores(linux([[0], [1]], [0, 1]))).toBe(2);
  });

  it("reads the pre-5.3 name of the siblings list", () => {
    const read: ReadSystemFile = (path) =>
      ({
        "/proc/self/status": "Cpus_allowed_list:\t0-3\n",
        "/sys/devices/system/cpu/cpu0/topology/thread_siblings_list": "0-1\n",
        "/sys/devices/system/cpu/cpu1/topology/thread_siblings_list": "0-1\n",
        "/sys/devices/system/cpu/cpu2/topology/thread_siblings_list": "2-3\n",
        "/sys/devices/system/cpu/cpu3/topology/thread_siblings_list": "2-3\n",
      })[path];
    expect(availableCores(read)).toBe(2);
  });

  it("keeps to the cgroup's CPU quota, cgroup v2 or v1", () => {
    const cores = Array.from({ length: 16 }, (_, cpu) => [cpu]);
    const all = cores.flat();
    const v2 = linux(cores, all, {
      "/proc/self/cgroup": "0::/pod/ferret\n",
      "/sys/fs/cgroup/pod/ferret/cpu.max": "250000 100000\n",
    });
    expect(availableCores(v2)).toBe(3);
    const unlimited = linux(cores, all, { "/sys/fs/cgroup/cpu.max": "max 100000\n" });
    expect(availableCores(unlimited)).toBe(16);
    const v1 = linux(cores, all, {
      "/proc/self/cgroup": "4:memory:/x\n2:cpu,cpuacct:/job\n0::/\n",
      "/sys/fs/cgroup/cpu/job/cpu.cfs_quota_us": "400000\n",
      "/sys/fs/cgroup/cpu/job/cpu.cfs_period_us": "100000\n",
    });
    expect(availableCores(v1)).toBe(4);
    const v1Unlimited = linux(cores, all, {
      "/proc/self/cgroup": "2:cpu,cpuacct:/\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1\n",
      "/sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000\n",
    });
    expect(availableCores(v1Unlimited)).toBe(16);
    // A quota below one CPU still leaves one thread.
    const small = linux(cores, all, { "/sys/fs/cgroup/cpu.max": "50000 100000\n" });
    expect(availableCores(small)).toBe(1);
  });

  it("leaves the choice to onnxruntime where the kernel's files say nothing", () => {
    expect(availableCores(() => undefined)).toBeUndefined();
    const noTopology: ReadSystemFile = (path) =>
      path === "/proc/self/status" ? "Cpus_allowed_list:\t0-1\n" : undefined;
    expect(availableCores(noTopology)).toBeUndefined();
  });

  it.runIf(platform() === "linux")("counts this machine's cores, no more than the CPUs it may use", () => {
    const cores = availableCores();
    expect(cores).toBeGreaterThanOrEqual(1);
    expect(cores).toBeLessThanOrEqual(availableParallelism());
  });
});
