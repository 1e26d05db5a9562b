/** `tvm run --storage-opt k=v` as the docker CLI parses it; the daemon validates keys and values. */
import { InvalidParameterError } from '../../errors.js';

export function parseStorageOptFlags(opts: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const o of opts) {
    const eq = o.indexOf('=');
    if (eq < 0) throw new InvalidParameterError('invalid storage option');
    out[o.slice(0, eq)] = o.slice(eq + 1);
  }
  return out;
}
