/** Docker's CLI units: memory sizes (`512m`, `1g`, `6MB`: binary multiples) and CPU counts. */
import { InvalidParameterError } from '../errors.js';

const MULT: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtpb]?)(?:i?b)?$/i.exec(s.trim());
  if (!m) throw new InvalidParameterError(`invalid size: '${s}'`);
  return Math.floor(Number(m[1]) * MULT[m[2]!.toLowerCase()]!);
}

export function parseCpus(s: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0)
    throw new InvalidParameterError(`invalid argument "${s}" for "--cpus" flag: failed to parse ${s} as a rational number`);
  return Math.round(n * 1e9);
}

/** An integer flag as the docker CLI parses it (Go's strconv.ParseInt); its error otherwise. */
export function parseIntFlag(s: string, flag: string): number {
  if (!/^[+-]?\d+$/.test(s) || !Number.isSafeInteger(Number(s))) {
    throw new InvalidParameterError(
      `invalid argument "${s}" for "${flag}" flag: strconv.ParseInt: parsing ${JSON.stringify(s)}: invalid syntax`,
    );
  }
  return Number(s);
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toPrecision(3).replace(/\.0+$/, '')}${units[i]}`;
}
