/** Byte helpers shared by the format tests. */

/** Splits buf at the given cut points (any values; clamped, sorted, may produce empty pieces). */
export function split(buf: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => Math.min(buf.length, c)).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    pieces.push(buf.subarray(prev, p));
    prev = p;
  }
  pieces.push(buf.subarray(prev));
  return pieces;
}

/** An object held in memory, read by ranges as the layout probes read the store; counts the reads. */
export function memoryReader(stored: Buffer) {
  let reads = 0;
  const read = async (offset: number, length: number) => {
    reads++;
    return stored.subarray(offset, offset + length);
  };
  return { read, reads: () => reads };
}
