/**
 * `docker import --change` / `docker commit --change`: the Dockerfile instructions that only
 * touch the image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
 * STOPSIGNAL), applied to an ImageRunConfig.
 */
import { InvalidParameterError } from '../errors.js';
import type { ImageRunConfig } from './types.js';

function bad(change: string, why: string): InvalidParameterError {
  return new InvalidParameterError(`invalid --change ${JSON.stringify(change)}: ${why}`, 'ERR_INVALID_CHANGE');
}

/**
 * Splits Dockerfile arguments into words: whitespace separates, double quotes group (with
 * backslash escapes), single quotes group literally, a backslash escapes the next character.
 */
export function splitWords(s: string, change = s): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
    } else if (c === '"') {
      let j = i + 1;
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\' && j + 1 < s.length) j++;
        cur += s[j];
      }
      if (j >= s.length) throw bad(change, 'unterminated double quote');
      i = j;
    } else if (c === "'") {
      const j = s.indexOf("'", i + 1);
      if (j < 0) throw bad(change, 'unterminated single quote');
      cur += s.slice(i + 1, j);
      i = j;
    } else {
      cur += c;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** JSON array form `["a","b"]`, else shell form wrapped in `/bin/sh -c`. */
function commandForm(args: string, change: string): string[] {
  const t = args.trim();
  if (t.startsWith('[')) {
    try {
      const v = JSON.parse(t) as unknown;
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch {
      /* not JSON: Docker then treats it as shell form */
    }
  }
  if (t === '') throw bad(change, 'missing command');
  return ['/bin/sh', '-c', t];
}

/** `k=v k2="v 2"` or the legacy `k v with spaces` (single pair). */
function keyValues(args: string, change: string, instr: string): [string, string][] {
  const words = splitWords(args, change);
  if (!words.length) throw bad(change, `${instr} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    const m = /^\s*(\S+)\s+(.*)$/.exec(args);
    if (!m) throw bad(change, `${instr} requires a value`);
    return [[m[1]!, splitWords(m[2]!, change).join(' ')]];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) throw bad(change, `${instr} names must be followed by '=' (${w})`);
    return [w.slice(0, eq), w.slice(eq + 1)];
  });
}

export function applyChanges(base: ImageRunConfig, changes: string[]): ImageRunConfig {
  const cfg: ImageRunConfig = structuredClone(base);
  for (const change of changes) {
    const m = /^\s*([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(change);
    if (!m) throw bad(change, 'expected "INSTRUCTION arguments"');
    const instr = m[1]!.toUpperCase();
    const args = (m[2] ?? '').trim();
    switch (instr) {
      case 'CMD':
        cfg.Cmd = commandForm(args, change);
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = commandForm(args, change);
        break;
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of keyValues(args, change, 'ENV')) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i >= 0) env[i] = `${k}=${v}`;
          else env.push(`${k}=${v}`);
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of keyValues(args, change, 'LABEL')) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        const words = splitWords(args, change);
        if (!words.length) throw bad(change, 'EXPOSE requires at least one port');
        for (const w of words) {
          const pm = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
          if (!pm) throw bad(change, `invalid port ${w}`);
          const lo = Number(pm[1]);
          const hi = pm[2] ? Number(pm[2]) : lo;
          if (lo < 1 || hi > 65535 || hi < lo) throw bad(change, `invalid port range ${w}`);
          for (let p = lo; p <= hi; p++) ports[`${p}/${(pm[3] ?? 'tcp').toLowerCase()}`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'USER':
        if (!args) throw bad(change, 'USER requires an argument');
        cfg.User = args;
        break;
      case 'WORKDIR':
        if (!args) throw bad(change, 'WORKDIR requires an argument');
        // relative WORKDIR is relative to the previous one, as in a Dockerfile
        cfg.WorkingDir = args.startsWith('/') ? args : `${(cfg.WorkingDir || '/').replace(/\/$/, '')}/${args}`;
        break;
      case 'VOLUME': {
        const vols = { ...(cfg.Volumes ?? {}) };
        const list = args.startsWith('[') ? (JSON.parse(args) as string[]) : splitWords(args, change);
        if (!list.length) throw bad(change, 'VOLUME requires at least one path');
        for (const v of list) vols[v] = {};
        cfg.Volumes = vols;
        break;
      }
      case 'STOPSIGNAL':
        if (!args) throw bad(change, 'STOPSIGNAL requires an argument');
        cfg.StopSignal = args;
        break;
      default:
        throw bad(change, `${instr} is not supported (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL are)`);
    }
  }
  return cfg;
}
