/**
 * Go's encoding/json writes a map's keys in sorted (byte) order, so dockerd's JSON lists every
 * map (labels, options) that way whatever order a client sent; clients print what they get
 * (docker-compose, `docker inspect`). Struct fields are not maps: only maps go through this.
 */
export function goMap<T>(m: Record<string, T>): Record<string, T>;
export function goMap<T>(m: Record<string, T> | null | undefined): Record<string, T> | null | undefined;
export function goMap<T>(m: Record<string, T> | null | undefined): Record<string, T> | null | undefined {
  if (!m) return m;
  // keys are ASCII in practice; UTF-16 order equals byte order there
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
