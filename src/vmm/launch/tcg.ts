/**
 * The tcg backend: QEMU's software CPU (`-M microvm,acpi=off -accel tcg`) runs the vCPUs and
 * the virtio-mmio transport; tvm's own devices serve the guest over vhost-user, one socketpair
 * per device (QEMU gets its end as an inherited fd, so there is no socket file and no connect
 * race). Guest RAM is a shared memfd QEMU creates and passes to our backends with SET_MEM_TABLE.
 * The guest ends by rebooting (reboot=t), which -no-reboot turns into QEMU's exit.
 *
 * The NIC (virtio-net over vhost-user, hw/net/vhost_net.c + net/vhost-user.c in QEMU 7.2):
 * QEMU connects to a socket file we listen on (it refuses an inherited fd for a netdev) and
 * runs the whole handshake while it initialises, before the guest starts. What it needs from
 * the back end (QEMU's net/vhost-user.c, hw/net/vhost_net.c, hw/net/virtio-net.c; checked
 * against 7.2 here by the VM network tests):
 * - VHOST_USER_F_PROTOCOL_FEATURES: without it vhost_user_set_vring_enable fails, and rings
 *   are enabled per queue pair (SET_VRING_ENABLE 1) once the guest sets DRIVER_OK;
 * - no PROTOCOL_F_MQ: QEMU then takes max_queues = 1 (GET_QUEUE_NUM is only sent with MQ),
 *   one pair of rings, rx = ring 0, tx = ring 1; the control queue (if the guest takes it)
 *   and the config space (its `mac=`) stay in QEMU's virtio-net;
 * - features: QEMU masks the guest's offer with ours for the bits in vhost-user's
 *   user_feature_bits (the ring bits, VERSION_1, CSUM/GSO family, MRG_RXBUF, MTU...) and sends
 *   the guest's acks of those bits in SET_FEATURES: the guest gets an offload (CSUM, TSO)
 *   only if we offer it;
 * - the header: vhost-user has no SET_VNET_HDR_LEN; both ends derive it from the features:
 *   12 bytes (virtio_net_hdr_v1) with VERSION_1 or MRG_RXBUF, which VERSION_1 always gives.
 */
import { spawn } from 'node:child_process';
import { unlinkSync } from 'node:fs';
import * as libc from '../../kvm/libc.js';
import * as sock from '../../kvm/socket.js';
import { TvmError } from '../../errors.js';
import { VhostUserBackend, vhostUserSocketPair } from '../devices/virtio/vhost-user/backend.js';
import { qemuMicrovmArgs } from '../tcg/qemu-args.js';
import { NotifyPoller } from '../devices/virtio/notify-poller.js';
import type { VirtioDevice } from '../devices/virtio/mmio.js';
import type { GuestEnd, GuestLaunch, RunningGuest } from './types.js';
import { QEMU_BINARY } from './tcg-binary.js';

/** util-linux's setpriv: execs QEMU with PR_SET_PDEATHSIG set */
export const SETPRIV = 'setpriv';
/**
 * What the tcg machine adds to the guest's kernel arguments. `noapictimer`: under TCG the
 * local APIC timer always fails the kernel's verification against the PIT (a quarter second
 * of a boot spent measuring, "APIC timer disabled due to verification failure") and the PIT
 * drives the tick anyway; skipping the check gives the same machine sooner. `tsc_no_pit`
 * (kernels/patches/0004): the kernel's TSC calibration against the PIT, on emulated port I/O,
 * gives up at once in half the boots and takes about a second in the others; the TSC is then
 * left unused, as in the quick half. The floor in bench/vm-run.bench.ts boots with these
 * arguments too.
 */
export const TCG_KERNEL_ARGS = 'console=ttyS0 reboot=t panic=-1 noapictimer tsc_no_pit';

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
  let netListen = -1;
  const stopListening = () => {
    if (netListen < 0) return;
    poller.remove(netListen);
    libc.close(netListen);
    netListen = -1;
    try {
      unlinkSync(o.netSocket!);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') o.log?.(`vhost-user-net: removing ${o.netSocket}: ${(e as Error).message}`);
    }
  };
  const closeAll = async () => {
    stopListening();
    for (const fd of theirs.splice(0)) libc.close(fd);
    await Promise.all(backends.map((b) => b.close()));
    await poller.close();
  };
  let fatal: Error | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const serve = (kind: string, fd: number, device: VirtioDevice, queues: number | undefined) => {
      const b = new VhostUserBackend({
        fd,
        device,
        poller,
        ...(queues !== undefined && { queues }),
        log: (l) => o.log?.(`vhost-user-${kind}: ${l}`),
        onClose: (err) => {
          // QEMU hung up: normal at its exit; before it, the guest lost a device
          if (err && !qemuExited) {
            fatal ??= err;
            o.log?.(`vhost-user-${kind}: ${err.message}`);
            child?.kill('SIGKILL');
          }
        },
      });
      backends.push(b);
      b.start();
    };
    for (const d of devices) {
      const pair = vhostUserSocketPair();
      theirs.push(pair.theirs);
      serve(d.kind, pair.ours, d.device, d.queues);
    }
    const net = o.devices.net;
    if (net) {
      if (!o.netSocket) throw new TvmError('ERR_VM_BACKEND', 'the tcg backend needs a socket path for the NIC', 500);
      try {
        unlinkSync(o.netSocket);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
      netListen = sock.listenUnix(o.netSocket, 1);
      const listening = netListen;
      // one connection: QEMU's, made while it initialises; the socket file goes with it
      poller.addReadable(listening, () => {
        const fd = sock.acceptUnix(listening);
        if (fd < 0) return;
        stopListening();
        serve('net', fd, net, 2);
      });
    }
    // the child's fds 3, 4, 5 are the devices' sockets, in this order
    const args = qemuMicrovmArgs({
      kernel: o.kernel,
      initrd: o.initrd,
      cmdline: `${TCG_KERNEL_ARGS} ${o.cmdline}`,
      memoryMiB: o.memMiB,
      vcpus: o.cpus,
      vhostUser: devices.map((d, i) => ({ kind: d.kind, fd: 3 + i })),
      ...(net && { net: { socket: o.netSocket!, mac: net.mac } }),
    });
    // QEMU must not outlive its supervisor (a SIGKILLed supervisor leaves a guest without
    // devices): setpriv (util-linux) gives it the parent-death signal Node cannot set
    child = spawn(SETPRIV, ['--pdeathsig', 'SIGKILL', '--', qemu, ...args], {
      stdio: ['ignore', 'pipe', 'pipe', ...theirs],
      detached: false,
    });
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
      else
        resolve({
          kind: 'crashed',
          detail: `QEMU exited with ${signal ?? `status ${code}`}${stderr ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`,
        });
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
