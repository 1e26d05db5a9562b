/**
 * What a VM backend is given and what it gives back. Two backends: `kvm` (tvm's own VMM on
 * /dev/kvm, devices in process) and `tcg` (QEMU's software CPU and virtio-mmio transport, tvm's
 * devices over vhost-user). Everything above this file is the same for both.
 */
import type { Writable } from 'node:stream';
import type { GuestDevices } from './devices.js';
import type { NotifyPoller } from '../devices/virtio/notify-poller.js';

export type VmBackendKind = 'kvm' | 'tcg';

export interface GuestLaunch {
  kernel: string;
  initrd: string;
  /** the guest's own kernel arguments; each backend adds its machine's (console, reboot, devices) */
  cmdline: string;
  memMiB: number;
  cpus: number;
  devices: GuestDevices;
  /** the guest's serial console */
  console: Writable;
  /**
   * tcg with a NIC (devices.net): where its vhost-user socket is made (relative: to the cwd,
   * which QEMU shares); QEMU connects to it by path (qemu-args.ts says why not by fd)
   */
  netSocket?: string;
  /** a notify poller already started (its thread takes a while to load): the tcg backend's devices share it */
  poller?: NotifyPoller;
  log?: (line: string) => void;
}

export interface GuestEnd {
  /** 'poweroff': the guest rebooted/powered off on purpose; 'stopped': the host ended it */
  kind: 'poweroff' | 'stopped' | 'crashed';
  detail: string;
}

export interface RunningGuest {
  readonly backend: VmBackendKind;
  /** the process running the vCPUs when it is not this one (QEMU), for diagnostics */
  readonly vcpuPid?: number;
  readonly ended: Promise<GuestEnd>;
  /** ends the guest now (power off, no sync) */
  stop(reason: string): void;
}
