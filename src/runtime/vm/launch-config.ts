/**
 * What the daemon hands a VM supervisor (STATE/launch.json, written atomically before the
 * supervisor starts), and the files the supervisor leaves in the state directory:
 *   supervisor.pid  its pid while it runs (liveness, re-attach after a daemon restart)
 *   vsock.sock      the guest's vsock ports (`CONNECT 1024\n` reaches the agent)
 *   console.log     the guest's serial console (bounded)
 *   exit.json       the workload's exit status, written before the VM powers off
 *   boot.json       when each boot phase ended (ms after the supervisor started)
 *   net.sock        tcg with a NIC: QEMU's vhost-user-net connection (gone once connected)
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { FormatError } from '../../errors.js';
import type { AgentSpec } from '../../guest-agent/protocol.js';
import type { VmBackendKind } from '../../vmm/launch/types.js';

export interface VmLaunchConfig {
  version: 1;
  backend: VmBackendKind;
  kernel: string;
  initrd: string;
  /** the guest's own kernel arguments (the backend adds console, reboot, devices) */
  cmdline: string;
  memMiB: number;
  cpus: number;
  /** the container's qcow2 overlay */
  disk: string;
  diskId: string;
  cid: number;
  /** the container's agent spec, sent as `create` once the guest agent answers */
  spec: AgentSpec;
  /** json-file log on the host, written from the workload's streams */
  logPath: string;
  logRotate?: { maxSize: number; maxFiles: number };
  /** how long the guest may take from launch to the agent's hello */
  bootTimeoutMs: number;
  /**
   * the guest's NIC: the supervisor runs in the container's network namespace (`netns`) and
   * opens `tap` there; `mac` is the endpoint's (the guest takes over the veth's identity)
   */
  net?: { netns: string; tap: string; mac: string };
}

export const LAUNCH_FILE = 'launch.json';
export const PID_FILE = 'supervisor.pid';
export const VSOCK_SOCKET = 'vsock.sock';
export const CONSOLE_FILE = 'console.log';
export const EXIT_FILE = 'exit.json';
export const BOOT_FILE = 'boot.json';
export const NET_SOCKET = 'net.sock';
/** the agent protocol's port in the guest (native/agent/guest.h) */
export const AGENT_VSOCK_PORT = 1024;

export const vsockSocketPath = (stateDir: string): string => path.join(stateDir, VSOCK_SOCKET);

export async function readLaunchConfig(stateDir: string): Promise<VmLaunchConfig> {
  const file = path.join(stateDir, LAUNCH_FILE);
  const c = JSON.parse(await readFile(file, 'utf8')) as VmLaunchConfig;
  if (c.version !== 1 || (c.backend !== 'kvm' && c.backend !== 'tcg'))
    throw new FormatError(`${file}: unknown launch config`, 'ERR_VM_LAUNCH_CONFIG');
  for (const k of ['kernel', 'initrd', 'disk', 'logPath', 'cmdline', 'diskId'] as const) {
    if (typeof c[k] !== 'string') throw new FormatError(`${file}: ${k} missing`, 'ERR_VM_LAUNCH_CONFIG');
  }
  for (const k of ['memMiB', 'cpus', 'cid', 'bootTimeoutMs'] as const) {
    if (!Number.isSafeInteger(c[k]) || c[k] <= 0) throw new FormatError(`${file}: ${k} must be a positive integer`, 'ERR_VM_LAUNCH_CONFIG');
  }
  if (c.net !== undefined) {
    const n = c.net as Partial<NonNullable<VmLaunchConfig['net']>>;
    if (typeof n.netns !== 'string' || typeof n.tap !== 'string' || typeof n.mac !== 'string')
      throw new FormatError(`${file}: net needs netns, tap and mac`, 'ERR_VM_LAUNCH_CONFIG');
  }
  return c;
}
