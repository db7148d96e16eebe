// Glue between JavaScript typed arrays and the WebAssembly kernels, one instance per thread (main or worker).
// Plain JavaScript so that worker threads can load it without a TypeScript loader; types come from JSDoc.
// Buffers are streamed through the instance's linear memory in cache-sized chunks, so callers' arrays (plain or
// SharedArrayBuffer-backed) never need to live inside WebAssembly memory.
import { existsSync, readFileSync } from "node:fs";
import { setFlagsFromString } from "node:v8";

/** Elements per chunk copied through linear memory: 64 KiB of float32, resident in L2. */
const CHUNK = 16384;
const BYTES_F32 = 4;
const BYTES_F64 = 8;
const BYTES_I32 = 4;
const WASM_PAGE = 65536;
// TypeScript's ES2022 lib has no WebAssembly declarations (they live in the DOM lib), so the API is typed loosely.
/** @type {any} */
const Wasm = /** @type {any} */ (globalThis).WebAssembly;

/** @typedef {"gaussian" | "rademacher" | "sketch"} Family */
/** @typedef {{ key0: number, key1: number, block: number }} Stream */

/**
 * Compiles the kernels: $FERRET_KERNELS_WASM if set, else kernels.wasm beside this module (a bundled Lambda
 * ships it there), else the build output build/kernels.wasm. Fails with the command that builds it.
 */
export function compileKernels() {
  const candidates = [
    ...(process.env.FERRET_KERNELS_WASM ? [process.env.FERRET_KERNELS_WASM] : []),
    new URL("kernels.wasm", import.meta.url),
    new URL("../../build/kernels.wasm", import.meta.url),
  ];
  const found = candidates.find((candidate) => existsSync(candidate));
  if (!found) {
    const tried = candidates.map((c) => (c instanceof URL ? c.pathname : c)).join(", ");
    throw new Error(`WebAssembly kernels not found (tried ${tried}); run \`npm run build:wasm\` first`);
  }
  const bytes = readFileSync(found);
  // V8 first runs WebAssembly in its baseline tier and cannot swap a running call to optimized code; a kernel
  // call lasts long enough that most of it would run at half speed. Compile straight to the optimizing tier.
  setFlagsFromString("--no-liftoff");
  return new Wasm.Module(bytes);
}

export class Kernels {
  /** @param {unknown} module a compiled kernels module (from compileKernels, possibly sent to a worker) */
  constructor(module) {
    const instance = new Wasm.Instance(module, {});
    /** @type {any} */
    this.exports = instance.exports;
    /** @type {{ buffer: ArrayBuffer, grow(pages: number): number }} */
    this.memory = this.exports.memory;
    /** @type {number} */
    this.heap = this.exports.heapBase();
  }

  /** Makes [heap, heap + bytes) addressable; returns heap. */
  reserve(/** @type {number} */ bytes) {
    const needed = this.heap + bytes - this.memory.buffer.byteLength;
    if (needed > 0) this.memory.grow(Math.ceil(needed / WASM_PAGE));
    return this.heap;
  }

  f32(/** @type {number} */ pointer, /** @type {number} */ length) {
    return new Float32Array(this.memory.buffer, pointer, length);
  }

  f64(/** @type {number} */ pointer, /** @type {number} */ length) {
    return new Float64Array(this.memory.buffer, pointer, length);
  }

  /**
   * weights[i] ← f32(weights[i] − scale·Δ̃_{j0+i}) where Δ̃ is the block's estimate from gamma (its k_b coefficients).
   * @param {Family} family @param {Stream} stream @param {Float32Array} gamma @param {Float32Array} weights
   * @param {number} j0 @param {number} scale
   */
  reconstructBlock(family, stream, gamma, weights, j0, scale) {
    const kb = gamma.length;
    // Gaussian: the non-zero coefficients and their basis indices (a one-hot γ costs one basis, not kb).
    const coefficientBytes = family === "rademacher" ? Math.ceil(kb / 8) * 256 * BYTES_F64 : kb * BYTES_I32;
    const gammaAt = this.reserve(kb * BYTES_F32 + coefficientBytes + CHUNK * BYTES_F32);
    const coefficientsAt = gammaAt + kb * BYTES_F32;
    const chunkAt = coefficientsAt + coefficientBytes;
    let nonZero = 0;
    if (family === "gaussian") {
      const values = this.f32(gammaAt, kb);
      const bases = new Int32Array(this.memory.buffer, coefficientsAt, kb);
      for (let k = 0; k < kb; k++) {
        if (gamma[k] === 0) continue;
        values[nonZero] = /** @type {number} */ (gamma[k]);
        bases[nonZero++] = k;
      }
    } else this.f32(gammaAt, kb).set(gamma);
    const { key0, key1, block } = stream;
    const e = this.exports;
    if (family === "rademacher") e.rademacherTables(gammaAt, kb, coefficientsAt);
    for (let i = 0; i < weights.length; i += CHUNK) {
      const piece = weights.subarray(i, i + CHUNK);
      this.f32(chunkAt, piece.length).set(piece);
      const args = [chunkAt, piece.length, j0 + i];
      if (family === "gaussian")
        e.gaussianReconstruct(...args, gammaAt, coefficientsAt, nonZero, key0, key1, block, scale);
      else if (family === "rademacher")
        e.rademacherReconstruct(...args, coefficientsAt, kb, key0, key1, block, scale);
      else e.sketchReconstruct(...args, gammaAt, kb, key0, key1, block, scale);
      piece.set(this.f32(chunkAt, piece.length));
    }
  }

  /**
   * Coefficients [from, to) of one block (bases for gaussian/rademacher, where rademacher ranges are multiples of
   * 8; the whole sketch) from the block's delta, written into out[0 .. to − from).
   * @param {Family} family @param {Stream} stream @param {number} kb @param {Float32Array} delta
   * @param {number} from @param {number} to @param {Float32Array} out
   */
  projectBlock(family, stream, kb, delta, from, to, out) {
    const { key0, key1, block } = stream;
    const e = this.exports;
    if (family === "gaussian") {
      const accAt = this.reserve((to - from) * 4 * BYTES_F64 + CHUNK * BYTES_F32);
      const chunkAt = accAt + (to - from) * 4 * BYTES_F64;
      this.f64(accAt, (to - from) * 4).fill(0);
      this.streamChunks(delta, chunkAt, true, (n, j0) =>
        e.gaussianProject(chunkAt, n, j0, accAt, from, to, key0, key1, block),
      );
      const acc = this.f64(accAt, (to - from) * 4);
      for (let k = 0; k < to - from; k++) {
        const [s0, s1, s2, s3] = acc.subarray(4 * k, 4 * k + 4);
        out[k] = (Number(s0) + Number(s1) + (Number(s2) + Number(s3))) / kb;
      }
    } else if (family === "rademacher") {
      const [gBegin, gEnd] = [from / 8, Math.ceil(to / 8)];
      const histBytes = (gEnd - gBegin) * 256 * BYTES_F64;
      const histAt = this.reserve(histBytes + (to - from) * BYTES_F32 + CHUNK * BYTES_F32);
      const gammaAt = histAt + histBytes;
      const chunkAt = gammaAt + (to - from) * BYTES_F32;
      this.f64(histAt, histBytes / BYTES_F64).fill(0);
      this.streamChunks(delta, chunkAt, false, (n, j0) =>
        e.rademacherHistograms(chunkAt, n, j0, histAt, gBegin, gEnd, key0, key1, block),
      );
      e.rademacherFinish(histAt, gBegin, gEnd, kb, gammaAt);
      out.set(this.f32(gammaAt, to - from));
    } else {
      const accAt = this.reserve(kb * BYTES_F64 + CHUNK * BYTES_F32);
      const chunkAt = accAt + kb * BYTES_F64;
      this.f64(accAt, kb).fill(0);
      this.streamChunks(delta, chunkAt, false, (n, j0) =>
        e.sketchProject(chunkAt, n, j0, accAt, kb, key0, key1, block),
      );
      out.set(this.f64(accAt, kb));
    }
  }

  /**
   * Copies delta through linear memory chunk by chunk and calls visit(length, firstElement) on each; with
   * padTo16 the last chunk is zero-padded to a multiple of 16 elements.
   * @param {Float32Array} delta @param {number} chunkAt @param {boolean} padTo16
   * @param {(n: number, j0: number) => void} visit
   */
  streamChunks(delta, chunkAt, padTo16, visit) {
    for (let i = 0; i < delta.length; i += CHUNK) {
      const piece = delta.subarray(i, i + CHUNK);
      const n = padTo16 ? Math.ceil(piece.length / 16) * 16 : piece.length;
      const view = this.f32(chunkAt, n);
      view.set(piece);
      view.fill(0, piece.length);
      visit(n, i);
    }
  }
}

/**
 * A piece of one block to reconstruct: weights[at, at + length) are block elements j0 …, and the block's
 * coefficients are coefficients[gammaAt, gammaAt + kb).
 * @typedef {{ family: Family, key0: number, key1: number, block: number, gammaAt: number, kb: number,
 *   j0: number, at: number, length: number }} ReconstructItem
 */

/**
 * Runs reconstruction items on one kernel instance (the calling thread's, or a worker's).
 * @param {Kernels} kernels @param {ReconstructItem[]} items @param {Float32Array} coefficients
 * @param {Float32Array} weights @param {number} scale
 */
export function runReconstruction(kernels, items, coefficients, weights, scale) {
  for (const item of items) {
    kernels.reconstructBlock(
      item.family,
      item,
      coefficients.subarray(item.gammaAt, item.gammaAt + item.kb),
      weights.subarray(item.at, item.at + item.length),
      item.j0,
      scale,
    );
  }
}

/**
 * Coefficients [from, to) of the block delta[start, start + size), written to out[outAt …].
 * @typedef {{ family: Family, key0: number, key1: number, block: number, kb: number, start: number,
 *   size: number, from: number, to: number, outAt: number }} ProjectItem
 */

/**
 * Runs projection items on one kernel instance.
 * @param {Kernels} kernels @param {ProjectItem[]} items @param {Float32Array} delta @param {Float32Array} out
 */
export function runProjection(kernels, items, delta, out) {
  for (const item of items) {
    kernels.projectBlock(
      item.family,
      item,
      item.kb,
      delta.subarray(item.start, item.start + item.size),
      item.from,
      item.to,
      out.subarray(item.outAt, item.outAt + item.to - item.from),
    );
  }
}
