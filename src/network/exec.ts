/**
 * The network plumbing's one way to the kernel: iproute2, util-linux (unshare, nsenter, umount)
 * and iptables from Debian, run as child processes. A failure is a typed error naming the
 * command and what it printed.
 */
import { execFile } from 'node:child_process';
import { TvmError } from '../errors.js';

export class NetworkSetupError extends TvmError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_NETWORK_SETUP', message, 500, options);
  }
}

export function run(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const what =
          (err as NodeJS.ErrnoException).code === 'ENOENT'
            ? `${cmd} is missing (install iproute2, util-linux, iptables)`
            : stderr.trim() || err.message;
        reject(new NetworkSetupError(`${cmd} ${args.join(' ')}: ${what}`, { cause: err }));
      } else {
        resolve(stdout);
      }
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

/** `ip` in the daemon's network namespace. */
export function ip(...args: string[]): Promise<string> {
  return run('ip', args);
}

/** `ip -batch -` inside the namespace bound at `netns` (one process for several commands). */
export function ipBatchIn(netns: string, commands: string[]): Promise<string> {
  return run('nsenter', [`--net=${netns}`, 'ip', '-batch', '-'], commands.join('\n') + '\n');
}

/** Undo steps for a setup made of several: each done step registers how to take it back. */
export class Undo {
  private readonly steps: (() => Promise<unknown>)[] = [];

  push(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  /** Runs every registered undo, newest first; their own failures go to `log` (the first error is the one to report). */
  async rollback(log: (msg: string) => void): Promise<void> {
    for (const s of this.steps.splice(0).reverse()) {
      await s().catch((e) => log(`undoing a network setup step failed: ${String(e)}`));
    }
  }
}
