/**
 * The tcg backend: QEMU's software CPU (`-M microvm,acpi=off -accel tcg`) runs the vCPUs and
 * the virtio-mmio transport; tvm's own devices serve the guest over vhost-user, one socketpair
 * per device (QEMU gets its end as an inherited fd, so there is no socket file and no connect
 * race). Guest RAM is a shared memfd QEMU creates and passes to our backends with SET_MEM_TABLE.
 * The guest ends by rebooting (reboot=t), which -no-reboot turns into QEMU's exit.
 */
import { spawn } from 'node:child_process';
import * as libc from '../../kvm/libc.js';
import { TvmError } from '../../errors.js';
import { VhostUserBackend, vhostUserSocketPair } from '../devices/virtio/vhost-user/backend.js';
import { qemuMicrovmArgs } from '../tcg/qemu-args.js';
import { NotifyPoller } from '../devices/virtio/notify-poller.js';
import type { GuestEnd, GuestLaunch, RunningGuest } from './types.js';
import { QEMU_BINARY } from './tcg-binary.js';

/** util-linux's setpriv: execs QEMU with PR_SET_PDEATHSIG set */
export const SETPRIV = 'setpriv';
/** what the tcg machine adds to the guest's kernel arguments */
export const TCG_KERNEL_ARGS = 'console=ttyS0 reboot=t panic=-1';

export async function launchTcg(o: GuestLaunch, qemu = QEMU_BINARY): Promise<RunningGuest> {
  const devices = [
    { kind: 'blk' as const, device: o.devices.blk, queues: undefined },
    { kind: 'vsock' as const, device: o.devices.vsock, queues: 2 }, // QEMU keeps the event queue
    { kind: 'rng' as const, device: o.devices.rng, queues: undefined },
  ];
  const backends: VhostUserBackend[] = [];
  const theirs: number[] = [];
  let qemuExited = false;
  // one thread watches every device's socket and kick eventfds
  const poller = o.poller ?? new NotifyPoller((e) => o.log?.(`vhost-user poller: ${(e as Error).message}`));
  poller.warmUp();
  const closeAll = async () => {
    for (const fd of theirs.splice(0)) libc.close(fd);
    await Promise.all(backends.map((b) => b.close()));
    await poller.close();
  };
  let fatal: Error | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    for (const d of devices) {
      const pair = vhostUserSocketPair();
      theirs.push(pair.theirs);
      const b = new VhostUserBackend({
        fd: pair.ours,
        device: d.device,
        poller,
        ...(d.queues !== undefined && { queues: d.queues }),
        log: (l) => o.log?.(`vhost-user-${d.kind}: ${l}`),
        onClose: (err) => {
          // QEMU hung up: normal at its exit; before it, the guest lost a device
          if (err && !qemuExited) {
            fatal ??= err;
            o.log?.(`vhost-user-${d.kind}: ${err.message}`);
            child?.kill('SIGKILL');
          }
        },
      });
      backends.push(b);
      b.start();
    }
    // the child's fds 3, 4, 5 are the devices' sockets, in this order
    const args = qemuMicrovmArgs({
      kernel: o.kernel,
      initrd: o.initrd,
      cmdline: `${TCG_KERNEL_ARGS} ${o.cmdline}`,
      memoryMiB: o.memMiB,
      vcpus: o.cpus,
      vhostUser: devices.map((d, i) => ({ kind: d.kind, fd: 3 + i })),
    });
    // QEMU must not outlive its supervisor (a SIGKILLed supervisor leaves a guest without
    // devices): setpriv (util-linux) gives it the parent-death signal Node cannot set
    child = spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', qemu, ...args], { stdio: ['ignore', 'pipe', 'pipe', ...theirs], detached: false });
  } catch (e) {
    await closeAll();
    throw e;
  }
  const proc = child;
  // our copies of QEMU's ends: QEMU holds them now; closing ours lets a hang-up be seen
  for (const fd of theirs.splice(0)) libc.close(fd);
  proc.stdout!.pipe(o.console, { end: false });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => {
    o.console.write(d);
    if (stderr.length < 4096) stderr += d.toString();
  });
  let stopper: (reason: string) => void = () => {};
  const ended = new Promise<GuestEnd>((resolve) => {
    let stopReason: string | undefined;
    const onSpawnError = (e: Error) => {
      qemuExited = true;
      resolve({ kind: 'crashed', detail: `cannot run ${qemu}: ${e.message}` });
    };
    proc.once('error', onSpawnError);
    proc.once('exit', (code, signal) => {
      qemuExited = true;
      if (stopReason) resolve({ kind: 'stopped', detail: stopReason });
      else if (fatal) resolve({ kind: 'crashed', detail: `a device failed: ${fatal.message}` });
      else if (code === 0) resolve({ kind: 'poweroff', detail: 'the guest powered off' });
      else resolve({ kind: 'crashed', detail: `QEMU exited with ${signal ?? `status ${code}`}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}` });
    });
    stopper = (reason) => {
      stopReason ??= reason;
      proc.kill('SIGKILL');
    };
  }).finally(() => closeAll());
  if (proc.pid === undefined) {
    // spawn failed synchronously-asynchronously: 'error' resolves `ended`
    const end = await ended;
    throw new TvmError('ERR_VM_BACKEND', `${end.detail} (apt-get install qemu-system-x86)`, 500);
  }
  return {
    backend: 'tcg',
    vcpuPid: proc.pid,
    ended,
    stop: (reason) => stopper(reason),
  };
}
