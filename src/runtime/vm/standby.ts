/**
 * One VM supervisor kept started ahead of need (supervisor-main.ts --standby): a `docker run
 * --isolation=vm` hands the container to it instead of waiting for a new process to load Node,
 * the supervisor's program and koffi, about 150-250 ms of every VM start on this machine (tcg);
 * the same idea as the pre-started pieces of Kata's VM factory or a warm pool of shims. One is
 * started after the first VM start, and another behind each one taken.
 *
 * A standby is detached as every supervisor is (it becomes the container's, which outlives the
 * daemon), and its stdin is a pipe from the daemon: when the daemon goes, an unused standby
 * reads the end of it and exits. Idle, it costs one Node process (about 60 MiB here).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Socket } from 'node:net';
import { supervisorCommand } from './supervisor.js';

/** Room in the command line for the state dir the standby takes (it renames itself to it). */
const TITLE_ROOM = 2048;

export class StandbySupervisor {
  private next?: ChildProcess;

  constructor(
    private readonly backend: string,
    /** where a standby's diagnostics go until it takes a container */
    private readonly logFile: string,
    private readonly log?: (line: string) => void,
  ) {}

  /** The started standby, if it is still alive; else undefined (then `fill` starts one for the next VM). */
  take(): ChildProcess | undefined {
    const c = this.next;
    this.next = undefined;
    return c !== undefined && c.exitCode === null && c.signalCode === null ? c : undefined;
  }

  /** Starts a standby if there is none (after a VM's start: not to compete with its boot for the CPU). */
  fill(bundle: string | undefined): void {
    if (this.next && this.next.exitCode === null && this.next.signalCode === null) return;
    let logFd: number;
    try {
      logFd = openSync(this.logFile, 'a', 0o640);
    } catch (e) {
      this.log?.(`no standby VM supervisor: ${this.logFile}: ${(e as Error).message}`);
      return;
    }
    try {
      const c = spawn(process.execPath, [...supervisorCommand(bundle), '--standby', this.backend, '_'.repeat(TITLE_ROOM)], {
        detached: true,
        stdio: ['pipe', 'pipe', logFd],
        cwd: '/',
        env: { ...process.env, NODE_OPTIONS: '' },
      });
      // neither the process nor its pipes keep the daemon running
      c.unref();
      (c.stdin as Socket | null)?.unref();
      (c.stdout as Socket | null)?.unref();
      c.once('error', (e) => this.log?.(`standby VM supervisor: ${e.message}`));
      this.next = c;
    } finally {
      closeSync(logFd);
    }
  }
}
