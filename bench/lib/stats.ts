/** The few statistics the benchmarks report. */

/** the middle value (the mean of the two middle ones for an even count) */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** min, median and the 95th percentile (nearest rank) */
export function summary(xs: number[]): { min: number; median: number; p95: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: median(s), p95: s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)]! };
}

/** wall time of fn in milliseconds */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e6;
}
