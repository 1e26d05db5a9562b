/**
 * `docker ps --filter` (GET /containers/json?filters=) and the filters of `container prune`:
 * validation with Docker's messages, and matching a record against them, as moby's
 * daemon/list.go does.
 */
import { InvalidParameterError } from '../errors.js';
import { LinearRegex, RegexSyntaxError } from './linear-regex.js';
import type { ContainerRecord } from './records.js';
import type { ContainerStatus } from './state-machine.js';

const STATUS_VALUES: ContainerStatus[] = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];
const LIST_FILTERS = new Set([
  'status',
  'name',
  'id',
  'label',
  'label!',
  'ancestor',
  'exited',
  'isolation',
  'before',
  'since',
  'volume',
  'network',
  'health',
  'is-task',
  'expose',
  'publish',
]);

/** Validates `filters` keys and values for container listing, with Docker's messages. */
export function validateListFilters(f: Record<string, string[]>): void {
  for (const [k, vals] of Object.entries(f)) {
    if (!LIST_FILTERS.has(k)) throw new InvalidParameterError(`invalid filter '${k}'`);
    if (k === 'status') {
      for (const v of vals) {
        if (!STATUS_VALUES.includes(v as ContainerStatus)) throw new InvalidParameterError(`invalid filter 'status=${v}'`);
      }
    }
    if (k === 'exited') {
      for (const v of vals) if (!/^-?\d+$/.test(v)) throw new InvalidParameterError(`invalid filter 'exited=${v}'`);
    }
  }
}

export function matchesLabelFilters(rec: ContainerRecord, want: string[], notWant: string[]): boolean {
  const labels = (rec.config.Labels as Record<string, string> | undefined) ?? {};
  const has = (v: string) => {
    const eq = v.indexOf('=');
    return eq < 0 ? v in labels : labels[v.slice(0, eq)] === v.slice(eq + 1);
  };
  return want.every(has) && !notWant.some(has);
}

export function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() - Number(d[1]) * { s: 1e3, m: 60e3, h: 3600e3 }[d[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new InvalidParameterError(`invalid filter 'until=${v}'`);
  return t;
}

/** A user's name filter, compiled once per pattern: linear-time, never a backtracking RegExp. */
const nameRegexes = new Map<string, LinearRegex | undefined>();
function nameRegex(pattern: string): LinearRegex | undefined {
  if (!nameRegexes.has(pattern)) {
    if (nameRegexes.size > 256) nameRegexes.clear();
    let re: LinearRegex | undefined;
    try {
      re = new LinearRegex(pattern);
    } catch (e) {
      if (!(e instanceof RegexSyntaxError)) throw e;
      re = undefined;
    }
    nameRegexes.set(pattern, re);
  }
  return nameRegexes.get(pattern);
}

export function matchesFilters(
  rec: ContainerRecord,
  f: Record<string, string[]>,
  find: (ref: string) => ContainerRecord | undefined,
  networksOf?: (rec: ContainerRecord) => string[],
): boolean {
  const any = (k: string, pred: (v: string) => boolean) => !f[k] || f[k].length === 0 || f[k].some(pred);
  return (
    any('status', (v) => rec.state.status === v) &&
    any('name', (v) => {
      // dockerd matches with RE2 and a pattern it cannot compile matches nothing (no error)
      const re = nameRegex(v);
      return re !== undefined && (re.test(rec.name.slice(1)) || re.test(rec.name));
    }) &&
    any('id', (v) => rec.id.startsWith(v)) &&
    matchesLabelFilters(rec, f.label ?? [], f['label!'] ?? []) &&
    any(
      'ancestor',
      (v) =>
        rec.image === v ||
        rec.image === `${v}:latest` ||
        rec.imageId === v ||
        rec.imageId === `sha256:${v}` ||
        rec.imageId.startsWith(v.startsWith('sha256:') ? v : `sha256:${v}`),
    ) &&
    any('exited', (v) => rec.state.status === 'exited' && rec.state.exitCode === Number(v)) &&
    any(
      'isolation',
      (v) =>
        rec.spec.isolation === v ||
        (v === 'process' && rec.spec.isolation === 'container') ||
        (v === 'hyperv' && rec.spec.isolation === 'vm'),
    ) &&
    any('before', (v) => {
      const o = find(v);
      return o !== undefined && rec.created < o.created;
    }) &&
    any('since', (v) => {
      const o = find(v);
      return o !== undefined && rec.created > o.created;
    }) &&
    any('volume', (v) => rec.mounts.some((m) => m.Name === v || m.Destination === v)) &&
    any('network', (v) => rec.spec.network === v || (networksOf?.(rec) ?? []).some((n) => n === v || (v.length >= 12 && n.startsWith(v))))
  );
}
