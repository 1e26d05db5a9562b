/**
 * Docker's `filters` query parameter: JSON, either `{"key": {"value": true}}` (current) or
 * `{"key": ["value"]}` (pre-1.22 clients). Normalized to key -> values.
 */
import { InvalidParameterError } from '../errors.js';

export type Filters = Record<string, string[]>;

export function parseFilters(raw: string | undefined): Filters {
  if (raw === undefined || raw === '') return {};
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw new InvalidParameterError(`invalid filter: ${(e as Error).message}`, 'ERR_BAD_FILTER');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new InvalidParameterError('invalid filter: not a JSON object', 'ERR_BAD_FILTER');
  const out: Filters = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (Array.isArray(val)) {
      if (!val.every((x) => typeof x === 'string'))
        throw new InvalidParameterError(`invalid filter '${k}': values must be strings`, 'ERR_BAD_FILTER');
      out[k] = val;
    } else if (typeof val === 'object' && val !== null) {
      const vals: string[] = [];
      for (const [name, on] of Object.entries(val as Record<string, unknown>)) {
        if (typeof on !== 'boolean') throw new InvalidParameterError(`invalid filter '${k}': values must be booleans`, 'ERR_BAD_FILTER');
        if (on) vals.push(name);
      }
      out[k] = vals;
    } else {
      throw new InvalidParameterError(`invalid filter '${k}'`, 'ERR_BAD_FILTER');
    }
  }
  return out;
}

/** Rejects keys a listing does not know, with Docker's message. */
export function checkFilterKeys(f: Filters, allowed: readonly string[]): void {
  for (const k of Object.keys(f)) {
    if (!allowed.includes(k)) throw new InvalidParameterError(`invalid filter '${k}'`, 'ERR_BAD_FILTER');
  }
}
