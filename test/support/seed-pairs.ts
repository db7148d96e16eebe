// A fedkseed upload body written byte by byte, with no checks, so tests can also send the malformed ones.
export function seedPairsBody(pairs: readonly [index: number, gradient: number][]): Uint8Array {
  const bytes = new Uint8Array(pairs.length * 8);
  const view = new DataView(bytes.buffer);
  for (const [i, [index, gradient]] of pairs.entries()) {
    view.setUint32(i * 8, index, true);
    view.setFloat32(i * 8 + 4, gradient, true);
  }
  return bytes;
}
