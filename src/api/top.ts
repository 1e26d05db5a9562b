/**
 * `docker top CTR [ps OPTIONS]` as dockerd answers it for a shared-kernel container: the host's
 * `ps` with the given options (default `-ef`), rows kept for the container's processes (host
 * pids, from its cgroup), titles and columns as ps printed them.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { InvalidParameterError, TvmError } from '../errors.js';

const run = promisify(execFile);

export interface TopBody {
  Titles: string[];
  Processes: string[][];
}

/** dockerd's validatePSArgs: a renamed PID column (`-o x=PID`) would fool the row filter. */
export function validatePsArgs(psArgs: string): void {
  for (const m of psArgs.matchAll(/\s+([^\s]*)=\s*(PID[^\s]*)/g)) {
    if (m[1] !== 'pid') throw new InvalidParameterError(`specifying "${m[1]}=${m[2]}" is not allowed`);
  }
}

/** dockerd's parsePSOutput: rows whose PID is one of `pids` (thread rows, PID "-", follow theirs). */
export function parsePsOutput(output: string, pids: Set<number>): TopBody {
  const lines = output.split('\n');
  const titles = (lines[0] ?? '').trim().split(/\s+/).filter(Boolean);
  const pidIndex = titles.indexOf('PID');
  if (pidIndex < 0) throw new TvmError('ERR_TOP', "Couldn't find PID field in ps output", 500);
  const out: string[][] = [];
  const add = (fields: string[]) => out.push([...fields.slice(0, titles.length - 1), fields.slice(titles.length - 1).join(' ')]);
  let prevContained = false;
  for (const line of lines.slice(1)) {
    if (line.length === 0) continue;
    const fields = line.trim().split(/\s+/);
    const f = fields[pidIndex];
    if (f === '-') {
      if (prevContained) add(fields);
      continue;
    }
    const p = Number(f);
    if (!Number.isInteger(p)) throw new TvmError('ERR_TOP', `Unexpected pid '${f}'`, 500);
    prevContained = pids.has(p);
    if (prevContained) add(fields);
  }
  return { Titles: titles, Processes: out };
}

export async function hostTop(psArgs: string, pids: Set<number>): Promise<TopBody> {
  validatePsArgs(psArgs);
  let stdout: string;
  try {
    ({ stdout } = await run(
      'ps',
      psArgs.split(' ').filter((a) => a !== ''),
      { maxBuffer: 64 << 20 },
    ));
  } catch (e) {
    const err = e as { stderr?: string; message: string; code?: string };
    if (err.code === 'ENOENT') throw new TvmError('ERR_TOP', 'ps is not installed on the host (Debian package procps)', 500);
    throw new TvmError('ERR_TOP', `Error running ps: ${(err.stderr || err.message).trim()}`, 500);
  }
  return parsePsOutput(stdout, pids);
}
