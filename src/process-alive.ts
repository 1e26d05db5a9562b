/**
 * Whether a process id names a process that can still act. kill(pid, 0) is not enough: it
 * succeeds on a zombie (exited, not yet reaped by its parent), which is exactly the state of a
 * SIGKILLed supervisor or daemon whose parent does not reap, so liveness reads the process
 * state from /proc instead.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** The state letter of /proc/<pid>/stat (after the parenthesized command, which may hold spaces). */
export function procState(statText: string): string | undefined {
  const close = statText.lastIndexOf(')');
  if (close < 0) return undefined;
  return statText.slice(close + 2, close + 3) || undefined;
}

/** Z (zombie) and X (dead) have exited; every other state is a live process. */
function liveState(state: string | undefined): boolean {
  return state !== undefined && state !== 'Z' && state !== 'X';
}

export async function processAlive(pid: number): Promise<boolean> {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    return liveState(procState(await readFile(`/proc/${pid}/stat`, 'utf8')));
  } catch {
    return false; // no such process
  }
}

export function processAliveSync(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    return liveState(procState(readFileSync(`/proc/${pid}/stat`, 'utf8')));
  } catch {
    return false;
  }
}
