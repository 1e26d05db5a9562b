/**
 * json-file log options (`--log-opt` per container, `tvm daemon --log-opt` as the default):
 * Docker's json-file driver keys and messages (moby daemon/logger/jsonfilelog). Rotation is
 * done by the agent that writes the log (native/agent/logfile.c).
 */
import { InvalidParameterError } from '../errors.js';

export interface LogRotate {
  /** bytes; a file is rotated before a record would take it past this */
  maxSize: number;
  /** files kept, the current one included (>= 1) */
  maxFiles: number;
}

const KNOWN = new Set(['max-size', 'max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag']);
/** Docker's own keys we do not implement: refused by name instead of accepted and ignored. */
const UNSUPPORTED = new Set(['labels', 'labels-regex', 'env', 'env-regex', 'tag']);
const MAX_FILES = 1000;

const SI: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };

/** go-units FromHumanSize: decimal multiples (10m = 10,000,000 bytes), as json-file's max-size. */
export function parseHumanSize(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) throw new InvalidParameterError(`invalid size: '${s}'`);
  const v = Number(m[1]);
  if (!Number.isFinite(v)) throw new InvalidParameterError(`invalid size: '${s}'`);
  return Math.floor(v * SI[(m[2] ?? '').toLowerCase()]!);
}

/**
 * Validates json-file options; returns the rotation they ask for (undefined: none, Docker's
 * default). Throws Docker's messages.
 */
export function parseLogOpts(cfg: Record<string, string> | null | undefined): LogRotate | undefined {
  const c = cfg ?? {};
  for (const k of Object.keys(c)) {
    if (!KNOWN.has(k)) throw new InvalidParameterError(`unknown log opt '${k}' for json-file log driver`);
  }
  let maxSize = -1;
  if (c['max-size'] !== undefined) {
    maxSize = parseHumanSize(c['max-size']);
    if (maxSize <= 0) throw new InvalidParameterError('max-size must be a positive number');
  }
  let maxFiles = 1;
  if (c['max-file'] !== undefined) {
    const v = c['max-file'];
    if (!/^[+-]?\d+$/.test(v)) throw new InvalidParameterError(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
    maxFiles = Number(v);
    if (maxFiles < 1) throw new InvalidParameterError('max-file cannot be less than 1');
    if (maxFiles > MAX_FILES) throw new InvalidParameterError(`max-file cannot be more than ${MAX_FILES} with tvm`);
  }
  if (c.compress !== undefined) {
    const b = parseGoBool(c.compress);
    if (b && (maxFiles === 1 || maxSize === -1))
      throw new InvalidParameterError('compress cannot be true when max-file is less than 2 or max-size is not set');
    if (b)
      throw new InvalidParameterError(
        "log opt 'compress' is not supported by tvm's json-file logger: rotated files stay uncompressed (use compress=false)",
      );
  }
  for (const k of Object.keys(c)) {
    if (UNSUPPORTED.has(k)) throw new InvalidParameterError(`log opt '${k}' is not supported by tvm's json-file logger`);
  }
  return maxSize > 0 ? { maxSize, maxFiles } : undefined;
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw new InvalidParameterError(`strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
}

/**
 * A container's LogConfig with the daemon's defaults under it (Docker's mergeAndVerifyLogConfig:
 * a key the container sets wins), validated; what inspect shows and the rotation to apply.
 */
export function resolveLogConfig(
  lc: { Type?: string; Config?: Record<string, string> | null } | null | undefined,
  daemonOpts: Record<string, string> = {},
): { logConfig: { Type: 'json-file'; Config: Record<string, string> }; rotate: LogRotate | undefined } {
  const type = lc?.Type ?? '';
  if (type !== '' && type !== 'json-file') {
    throw new InvalidParameterError(`logging driver "${type}" is not supported: tvm writes json-file logs`);
  }
  const config = { ...daemonOpts, ...(lc?.Config ?? {}) };
  return { logConfig: { Type: 'json-file', Config: config }, rotate: parseLogOpts(config) };
}

/** `--log-opt k=v` flags (CLI, daemon) into a map; a flag without '=' is Docker's error. */
export function parseLogOptFlags(flags: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    const eq = f.indexOf('=');
    if (eq < 1) throw new InvalidParameterError(`invalid key value pair format in log opts: ${f}`);
    out[f.slice(0, eq)] = f.slice(eq + 1);
  }
  return out;
}
