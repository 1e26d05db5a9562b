/**
 * The per-container VM supervisor process (what containerd-shim is to runc): started detached by
 * the daemon, it outlives daemon restarts. It opens the guest's devices, launches the guest on
 * the configured backend, waits for the guest agent, creates the container in the guest, writes
 * the workload's output to the json-file log, reports "ready" on fd 1 (one JSON line), and
 * when the workload has exited writes exit.json, lets the guest power off and exits.
 * The daemon talks to the guest agent directly through STATE/vsock.sock.
 *
 *   node supervisor-main.(ts|js) STATE_DIR
 * fd 1: the ready line; fd 2: diagnostics (STATE/supervisor.log, opened by the daemon).
 *
 *   node supervisor-main.(ts|js) --standby BACKEND PADDING
 * A standby (standby.ts: the daemon keeps one started): Node, this program, koffi and the
 * backend's modules are loaded and the poller thread runs before any container asks, which is
 * most of a supervisor's start. Its order, one JSON line on stdin, names the state dir and the
 * network namespace to enter; then it goes on as above (it opens STATE/supervisor.log itself).
 * End of stdin first: the daemon went away; nothing to do.
 */
import { closeSync, writeSync } from 'node:fs';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { writeFileAtomic, writeJsonAtomic } from '../../atomic-file.js';
import { TvmError } from '../../errors.js';
import { AgentClient, vsockConnector } from '../../guest-agent/client.js';
import { AgentError } from '../../guest-agent/protocol.js';
import { openGuestDevices, type GuestDevices } from '../../vmm/launch/devices.js';
import type { GuestEnd, RunningGuest } from '../../vmm/launch/types.js';
import { JsonLogWriter } from '../log-writer.js';
import { NotifyPoller } from '../../vmm/devices/virtio/notify-poller.js';
import { ConsoleSink } from './console.js';
import {
  AGENT_VSOCK_PORT,
  BOOT_FILE,
  CONSOLE_FILE,
  EXIT_FILE,
  NET_SOCKET,
  PID_FILE,
  readLaunchConfig,
  VSOCK_SOCKET,
  type VmLaunchConfig,
} from './launch-config.js';

let t0 = Date.now();
const marks: Record<string, number> = {};
/** the daemon's spawn (or its order to a standby) to this line: Node's start and loading this program */
const spawnedAt = Number(process.env.TVM_SPAWNED_AT);
if (Number.isFinite(spawnedAt) && spawnedAt > 0) marks.processStart = t0 - spawnedAt;
const mark = (name: string) => (marks[name] ??= Date.now() - t0);
const diag = (line: string) => {
  try {
    writeSync(2, `${new Date().toISOString()} tvm-vm-supervisor: ${line}\n`);
  } catch {
    // stderr is our log file; with it gone there is nowhere left to report
  }
};

/** How long a powered-down guest may take to exit after the agent's shutdown. */
const POWEROFF_TIMEOUT_MS = 10_000;
/** How long the log streams may lag behind the exit status. */
const DRAIN_TIMEOUT_MS = 5_000;
/** The guest agent's console lines (native/agent/guest.c). */
const AGENT_INIT = 'tvm-agent: init';
const AGENT_READY = 'tvm-agent: ready';
const AGENT_FATAL = 'tvm-agent: fatal: ';

let readyFd = 1;
function report(msg: Record<string, unknown>): void {
  if (readyFd < 0) return;
  try {
    writeSync(readyFd, JSON.stringify(msg) + '\n');
    closeSync(readyFd);
  } catch (e) {
    diag(`reporting to the daemon: ${(e as Error).message}`);
  }
  readyFd = -1;
}

async function launch(cfg: VmLaunchConfig, devices: GuestDevices, consoleSink: ConsoleSink, poller: NotifyPoller): Promise<RunningGuest> {
  const o = {
    kernel: cfg.kernel,
    initrd: cfg.initrd,
    cmdline: cfg.cmdline,
    memMiB: cfg.memMiB,
    cpus: cfg.cpus,
    devices,
    console: consoleSink.stream,
    log: diag,
    poller,
    netSocket: NET_SOCKET,
  };
  if (cfg.backend === 'kvm') return (await import('../../vmm/launch/kvm.js')).launchKvm(o);
  return (await import('../../vmm/launch/tcg.js')).launchTcg(o);
}

/** Connects to the guest agent once it listens; fails when the guest ends or the deadline passes. */
async function connectAgent(consoleSink: ConsoleSink, ended: Promise<GuestEnd>, deadline: number): Promise<AgentClient> {
  let gone: GuestEnd | undefined;
  // ended never rejects (a guest end is a value): this only records it for the loop below
  void ended.then((e) => (gone = e));
  const connector = vsockConnector(path.join('.', VSOCK_SOCKET), AGENT_VSOCK_PORT);
  await consoleSink.waitFor(AGENT_READY, Math.max(0, deadline - Date.now()), () => gone !== undefined || consoleSink.has(AGENT_FATAL));
  for (let attempt = 0; ; attempt++) {
    const fatal = consoleSink.line(AGENT_FATAL);
    if (fatal) throw new TvmError('ERR_VM_GUEST', `the guest agent failed: ${fatal.slice(AGENT_FATAL.length)}`, 500);
    if (gone) throw new TvmError('ERR_VM_GUEST', `the VM ended before its agent answered (${gone.detail})`, 500);
    if (Date.now() > deadline)
      throw new TvmError('ERR_VM_BOOT_TIMEOUT', `the guest agent did not answer within ${Math.round((deadline - t0) / 1000)} s`, 500);
    try {
      return await AgentClient.connect(connector);
    } catch (e) {
      if (attempt % 40 === 39) diag(`agent not reachable yet: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}

function streamEnded(s: Duplex): Promise<void> {
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}

/** the tcg backend's poller thread, loading while the rest starts (QEMU waits on its replies) */
function startPoller(): NotifyPoller {
  const poller = new NotifyPoller((e) => diag(`notify poller: ${(e as Error).message}`));
  poller.warmUp();
  return poller;
}

async function main(stateDir: string, poller = startPoller()): Promise<number> {
  const cfg = await readLaunchConfig(stateDir);
  // sockets are bound relative to the state dir, whose absolute path may not fit sun_path
  process.chdir(stateDir);
  await writeFileAtomic(path.join(stateDir, PID_FILE), `${process.pid}\n`);
  const consoleSink = new ConsoleSink(path.join(stateDir, CONSOLE_FILE));
  consoleSink.onLine((l) => {
    mark('kernelFirstLine');
    if (l.startsWith(AGENT_INIT)) mark('kernelToInit');
    if (l.startsWith(AGENT_READY)) mark('agentListening');
  });
  let devices: GuestDevices | undefined;
  let guest: RunningGuest | undefined;
  let exitWritten = false;
  const writeExit = async (status: Record<string, unknown>) => {
    if (exitWritten) return;
    exitWritten = true;
    await writeJsonAtomic(path.join(stateDir, EXIT_FILE), status);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    diag(`received ${sig}: powering the VM off`);
    guest?.stop(`the VM was powered off by the host (${sig})`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', () => {});
  let rc = 0;
  try {
    devices = await openGuestDevices({
      disk: cfg.disk,
      diskId: cfg.diskId,
      cid: BigInt(cfg.cid),
      vsockUds: VSOCK_SOCKET,
      // the daemon started us in the container's network namespace, where the tap is
      ...(cfg.net && { net: { tap: cfg.net.tap, mac: cfg.net.mac, poller } }),
      log: diag,
    });
    guest = await launch(cfg, devices, consoleSink, poller);
    mark('backendStarted');
    diag(`guest started on ${guest.backend}${guest.vcpuPid ? ` (QEMU pid ${guest.vcpuPid})` : ''}`);
    const client = await connectAgent(consoleSink, guest.ended, t0 + cfg.bootTimeoutMs);
    mark('agentReady');
    try {
      await client.create(cfg.spec);
    } catch (e) {
      if (e instanceof AgentError)
        throw new TvmError(
          e.agentCode === 'ERR_BAD_SPEC' ? 'ERR_BAD_SPEC' : 'ERR_VM_CREATE',
          e.message,
          e.agentCode === 'ERR_BAD_SPEC' ? 400 : 500,
          { cause: e },
        );
      throw e;
    }
    const log = new JsonLogWriter(cfg.logPath, cfg.logRotate);
    const streams: Promise<void>[] = [];
    for (const name of cfg.spec.process.tty ? (['stdout'] as const) : (['stdout', 'stderr'] as const)) {
      const s = await client.openStream(name);
      s.on('data', (d: Buffer) => log.write(name, d));
      streams.push(streamEnded(s).then(() => log.flush(name)));
      s.resume();
    }
    mark('created');
    await writeJsonAtomic(path.join(stateDir, BOOT_FILE), { backend: cfg.backend, marks });
    report({ ok: true, pid: process.pid, backend: guest.backend, vcpuPid: guest.vcpuPid, marks });

    const outcome = await Promise.race([
      client.wait().then(
        (status) => ({ status }),
        (e: Error) => ({ lost: e }),
      ),
      guest.ended.then((end) => ({ end })),
    ]);
    if ('status' in outcome) {
      // the host's clock: the guest's is only as good as the boot-time hint it was given
      await writeExit({ ...outcome.status, finishedAt: new Date().toISOString() });
      await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, DRAIN_TIMEOUT_MS))]);
      log.close();
      await client.shutdown().catch((e: Error) => diag(`agent shutdown: ${e.message} (the VM is powered off below)`));
      client.close();
      const end = await Promise.race([guest.ended, new Promise<undefined>((r) => setTimeout(r, POWEROFF_TIMEOUT_MS))]);
      if (!end) {
        diag('the guest did not power off: stopping it');
        guest.stop('the guest did not power off after its workload exited');
        await guest.ended;
      }
    } else {
      const end = 'end' in outcome ? outcome.end : await (guest.stop(`lost the agent: ${outcome.lost.message}`), guest.ended);
      log.close();
      client.close();
      const tail = consoleSink.tail(2000);
      diag(`the VM ended before its workload: ${end.detail}; console tail:\n${tail}`);
      await writeExit({
        exitCode: end.kind === 'stopped' ? 137 : 255,
        finishedAt: new Date().toISOString(),
        oomKilled: false,
        error: end.kind === 'stopped' ? end.detail : `the VM ended unexpectedly: ${end.detail}`,
      });
    }
  } catch (e) {
    rc = 1;
    const err = e as TvmError;
    const tail = consoleSink.tail(2000);
    diag(`failed: ${err.message}${tail ? `; console tail:\n${tail}` : ''}`);
    report({ ok: false, code: err.code ?? 'ERR_VM_START', status: err.status ?? 500, message: err.message, console: tail });
    if (guest) {
      guest.stop(`start failed: ${err.message}`);
      await guest.ended;
    }
  } finally {
    await devices?.close().catch((e: Error) => diag(`closing the devices: ${e.message}`));
    // the tcg backend closed it with its devices; the kvm backend never used it
    await poller.close();
    await consoleSink.close();
    await unlink(path.join(stateDir, PID_FILE)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') diag(`removing the pid file: ${e.message}`);
    });
  }
  diag(`exiting (${rc})`);
  return rc;
}

/** A standby's order (standby.ts): one JSON line on stdin. */
interface StandbyOrder {
  stateDir: string;
  /** the network namespace to enter (the VM has a NIC: its tap is there) */
  netns?: string;
  /** when the daemon sent it (ms since the epoch) */
  sentAt: number;
}

/** The first line on stdin, parsed; undefined at end of input (the daemon is gone). */
function readOrder(): Promise<StandbyOrder | undefined> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (v: StandbyOrder | undefined, e?: Error) => {
      process.stdin.removeAllListeners('data');
      process.stdin.destroy();
      if (e) reject(e);
      else resolve(v);
    };
    process.stdin.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      try {
        const o = JSON.parse(buf.slice(0, nl)) as Partial<StandbyOrder>;
        if (typeof o.stateDir !== 'string' || typeof o.sentAt !== 'number' || (o.netns !== undefined && typeof o.netns !== 'string'))
          throw new Error(`a standby order needs stateDir and sentAt: ${buf.slice(0, 200)}`);
        done(o as StandbyOrder);
      } catch (e) {
        done(undefined, e as Error);
      }
    });
    process.stdin.once('end', () => done(undefined));
    process.stdin.once('error', (e) => done(undefined, e));
  });
}

async function standby(backend: string): Promise<number> {
  const poller = startPoller();
  // what the start of a VM would load: the backend and, through it, koffi and the device model
  await (backend === 'kvm' ? import('../../vmm/launch/kvm.js') : import('../../vmm/launch/tcg.js'));
  const libc = await import('../../kvm/libc.js');
  const order = await readOrder();
  if (!order) {
    await poller.close();
    return 0;
  }
  const stateDir = path.resolve(order.stateDir);
  // diagnostics go to the container's log from here on, as for a supervisor started for it
  const log = libc.open(path.join(stateDir, 'supervisor.log'), libc.O_WRONLY | libc.O_CREAT | libc.O_APPEND, 0o640);
  libc.dup2(log, 2);
  libc.close(log);
  if (order.netns) {
    // this thread only, and it is the one that opens the tap and starts QEMU (TUNSETIFF looks
    // the tap up in the caller's namespace); the poller thread only waits on fds
    const ns = libc.open(order.netns, libc.O_RDONLY);
    try {
      libc.setns(ns, libc.CLONE_NEWNET);
    } finally {
      libc.close(ns);
    }
  }
  // the command line a supervisor started for this container would have (ps; the daemon finds
  // its supervisors by it): the standby was started with room for it (standby.ts)
  process.title = `${process.execPath} ${process.argv[1]} ${stateDir}`;
  t0 = Date.now();
  marks.processStart = Math.max(0, t0 - order.sentAt);
  diag('a standby supervisor takes this container');
  return main(stateDir, poller);
}

/** Runs to the process's end: `p`'s code, or 1 with its error in the log. */
function exitWith(p: Promise<number>): void {
  p.then(
    (rc) => process.exit(rc),
    (e: Error) => {
      diag(`fatal: ${e.stack ?? e.message}`);
      process.exit(1);
    },
  );
}
if (process.argv[2] === '--standby') {
  exitWith(standby(process.argv[3] ?? 'tcg'));
} else {
  const stateDir = process.argv[2];
  if (!stateDir) {
    diag('usage: supervisor-main STATE_DIR | --standby BACKEND PADDING');
    process.exit(2);
  }
  exitWith(main(path.resolve(stateDir)));
}
