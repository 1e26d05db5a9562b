/**
 * The daemon's side of a VM supervisor process (supervisor-main.ts): starting it detached, so
 * it outlives the daemon; reading its one "ready" line; finding it again after a restart.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TvmError, type ErrorCode } from '../../errors.js';
import { PID_FILE } from './launch-config.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The bundle when there is one (supervisor-bundle.ts), else the sources through tsx. */
export function supervisorCommand(bundle?: string): string[] {
  if (bundle) return [bundle];
  const ts = path.join(here, 'supervisor-main.ts');
  // --import is resolved from the child's cwd (/): name tsx's loader by its URL
  if (existsSync(ts) && import.meta.url.endsWith('.ts')) return ['--import', import.meta.resolve('tsx'), ts];
  return [path.join(here, 'supervisor-main.js')];
}

export interface SupervisorReady {
  ok: true;
  pid: number;
  backend: string;
  vcpuPid?: number;
  marks: Record<string, number>;
}

/**
 * Starts the supervisor for `stateDir` and waits for its ready line (the guest agent has the
 * container created). Its diagnostics go to STATE/supervisor.log. `netns`: the namespace it
 * runs in (the VM has a NIC).
 */
export async function spawnVmSupervisor(
  stateDir: string,
  timeoutMs: number,
  bundle?: string,
  netns?: string,
  standby?: ChildProcess,
): Promise<SupervisorReady> {
  const proc = standby ? orderStandby(standby, stateDir, netns) : spawnFresh(stateDir, bundle, netns);
  return new Promise<SupervisorReady>((resolve, reject) => {
    let buf = '';
    let settled = false;
    let exited = proc.exitCode !== null || proc.signalCode !== null;
    proc.once('exit', () => (exited = true));
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      proc.stdout!.destroy();
      proc.unref();
      f();
    };
    /** A failed start leaves nothing running: the error is returned once the supervisor is gone. */
    let failure: Error | undefined;
    const fail = (e: Error) => {
      if (settled || failure) return;
      failure = e;
      if (exited) return finish(() => reject(e));
      setTimeout(() => proc.kill('SIGKILL'), 10_000).unref();
    };
    const timer = setTimeout(() => {
      // it may still come up; it must not run a container nobody knows about
      proc.kill('SIGTERM');
      fail(
        new TvmError(
          'ERR_VM_BOOT_TIMEOUT',
          `the VM did not become ready within ${Math.round(timeoutMs / 1000)} s (see ${stateDir}/supervisor.log and console.log)`,
          500,
        ),
      );
    }, timeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) {
        if (buf.length > 1 << 20) {
          proc.kill('SIGTERM');
          fail(new TvmError('ERR_VM_SUPERVISOR', 'the VM supervisor sent an overlong ready line', 500));
        }
        return;
      }
      let msg: { ok: boolean; message?: string; code?: string; status?: number; console?: string };
      try {
        msg = JSON.parse(buf.slice(0, nl)) as typeof msg;
      } catch {
        proc.kill('SIGTERM');
        fail(new TvmError('ERR_VM_SUPERVISOR', `the VM supervisor sent ${JSON.stringify(buf.slice(0, 200))}`, 500));
        return;
      }
      if (msg.ok) finish(() => resolve(msg as SupervisorReady));
      else
        fail(
          Object.assign(
            new TvmError((msg.code as ErrorCode | undefined) ?? 'ERR_VM_START', msg.message ?? 'the VM failed to start', msg.status ?? 500),
            { consoleTail: msg.console ?? '' },
          ),
        );
    });
    proc.once('error', (e) => {
      exited = true; // it never ran
      fail(new TvmError('ERR_VM_SUPERVISOR', `cannot start the VM supervisor: ${e.message}`, 500, { cause: e }));
    });
    proc.once('exit', (code, signal) =>
      finish(() =>
        reject(
          failure ??
            new TvmError(
              'ERR_VM_SUPERVISOR',
              `the VM supervisor exited (${signal ?? code}) before it was ready: see ${stateDir}/supervisor.log`,
              500,
            ),
        ),
      ),
    );
  });
}

function spawnFresh(stateDir: string, bundle: string | undefined, netns: string | undefined): ChildProcess {
  const logFd = openSync(path.join(stateDir, 'supervisor.log'), 'a', 0o640);
  const argv = [process.execPath, ...supervisorCommand(bundle), stateDir];
  // with a NIC it runs in the container's network namespace (its tap is there; TUNSETIFF looks
  // in the caller's): nsenter execs it, so the pid is still the supervisor's
  if (netns) argv.unshift('nsenter', `--net=${netns}`, '--');
  try {
    return spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', 'pipe', logFd],
      cwd: '/',
      // the spawn time, so the supervisor's boot marks can include its own start-up
      env: { ...process.env, NODE_OPTIONS: '', TVM_SPAWNED_AT: String(Date.now()) },
    });
  } finally {
    closeSync(logFd);
  }
}

/** A started standby (standby.ts) takes this container: its order is one line on its stdin. */
function orderStandby(child: ChildProcess, stateDir: string, netns: string | undefined): ChildProcess {
  // a standby that died since it was handed out reports through 'exit' (its ready never comes)
  child.stdin!.on('error', () => {});
  child.stdin!.end(`${JSON.stringify({ stateDir, ...(netns && { netns }), sentAt: Date.now() })}\n`);
  return child;
}

/**
 * The supervisor's pid if its pid file names a live one. A zombie or a recycled pid does not
 * count: the process must be running (not 'Z' in /proc/PID/stat) and be our supervisor.
 */
export async function vmSupervisorPid(stateDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(stateDir, PID_FILE), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // state is the field after the parenthesised command (which may itself hold spaces)
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return undefined;
    // a standby that took this container renamed itself to the same command line (supervisor-main.ts)
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    if (!cmd.includes('supervisor-main') || !cmd.includes(stateDir)) return undefined;
  } catch {
    return undefined;
  }
  return pid;
}
