/**
 * Docker's detach keys (default ctrl-p,ctrl-q): in a TTY attach, typing the sequence detaches
 * the client and leaves the container running. Parsed from `detachKeys` ("ctrl-a,x").
 */
import { Transform } from 'node:stream';
import { InvalidParameterError } from '../errors.js';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

export function parseDetachKeys(spec: string): Buffer {
  const out: number[] = [];
  for (const k of spec.split(',')) {
    const t = k.trim().toLowerCase();
    if (t.length === 1) {
      out.push(t.charCodeAt(0));
    } else if (/^ctrl-[a-z@[\\\]^_]$/.test(t)) {
      const c = t.charAt(5);
      out.push(c >= 'a' && c <= 'z' ? c.charCodeAt(0) - 96 : c.toUpperCase().charCodeAt(0) - 64);
    } else {
      throw new InvalidParameterError(`Invalid detach keys (${spec}) provided`);
    }
  }
  if (out.length === 0) throw new InvalidParameterError(`Invalid detach keys (${spec}) provided`);
  return Buffer.from(out);
}

/**
 * Passes stdin through until the sequence appears, then calls `onDetach`. Bytes of a partial
 * match are held back and released if the sequence breaks, as Docker does.
 */
export function detachFilter(keys: Buffer, onDetach: () => void): Transform {
  let matched = 0;
  let done = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (done) return cb();
      const out: number[] = [];
      for (const b of chunk) {
        if (b === keys[matched]) {
          matched++;
          if (matched === keys.length) {
            done = true;
            if (out.length > 0) this.push(Buffer.from(out));
            onDetach();
            return cb();
          }
          continue;
        }
        if (matched > 0) {
          out.push(...keys.subarray(0, matched));
          matched = 0;
          if (b === keys[0]) {
            matched = 1;
            continue;
          }
        }
        out.push(b);
      }
      cb(null, out.length > 0 ? Buffer.from(out) : undefined);
    },
  });
}
