/**
 * The guest's initramfs: the static agent as /init (uncompressed: decompression would run as
 * guest kernel code, which is slow everywhere but on hardware KVM), cached per agent build.
 * Each VM gets that archive with a second one appended holding its own files (Docker's
 * /etc/hosts, /etc/hostname, /etc/resolv.conf), which the agent spec binds from there. The
 * kernel unpacks concatenated newc archives in order.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import { writeCpio, type CpioEntry } from '../../disks/cpio.js';
import { buildInitramfs, completeTree } from '../../disks/initramfs.js';

/** Directories PID 1 mounts on (the rest it makes on tmpfs). */
const GUEST_DIRS = ['proc', 'sys', 'dev', 'run', 'tmp'];

/** Path of the cached agent initramfs for this agent binary, written once. */
export async function agentInitramfs(agentPath: string, cacheDir: string): Promise<string> {
  const agent = await readFile(agentPath);
  const key = createHash('sha256').update(agent).digest('hex').slice(0, 16);
  const out = path.join(cacheDir, `initrd-agent-${key}.cpio`);
  if (existsSync(out)) return out;
  await mkdir(cacheDir, { recursive: true });
  await writeFileAtomic(out, buildInitramfs({ init: agent, dirs: GUEST_DIRS }));
  return out;
}

export interface GuestFile {
  /** absolute path in the guest */
  path: string;
  data: Uint8Array;
  mode?: number;
}

/** The VM's initramfs: the cached agent archive plus one with this VM's files. */
export async function writeVmInitramfs(base: string, files: GuestFile[], out: string): Promise<void> {
  const entries: CpioEntry[] = files.map((f) => ({ path: f.path.replace(/^\/+/, ''), type: 'file', mode: f.mode ?? 0o644, data: f.data }));
  const own = writeCpio(completeTree(entries));
  await writeFile(out, Buffer.concat([await readFile(base), own]), { mode: 0o600 });
}
