/**
 * Sequential read of the guest's /dev/vda under QEMU TCG: our BlockDevice over a qcow2 served
 * through our vhost-user backend, against QEMU's built-in virtio-blk on the same qcow2, in the
 * same run, same kernel, initramfs and command line. Boots alternate ours / QEMU's so load
 * from other processes hits both. The guest reads the whole 128 MiB disk with O_DIRECT
 * (`dd bs=1M iflag=direct`, no guest page cache), 4 passes per timed sample, several samples
 * per boot, timed with /proc/uptime (10 ms ticks). Reports MB/s (min / median / p95) and ours/QEMU.
 *
 * TCG figures: neither PVM nor hardware KVM. The guest's own emulated CPU time is part of
 * both sides.
 *
 *   npx tsx bench/virtio-vhost-user.bench.ts [--rounds N] [--reads N]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { buildKernel } from '../src/vmm/kernel-artifacts.js';
import { buildInitramfs, busyboxEntries } from '../src/disks/initramfs.js';
import { Qcow2Image } from '../src/disks/qcow2/image.js';
import { BlockDevice } from '../src/vmm/devices/virtio/block.js';
import { APPLETS, requireBusybox } from '../test/fixtures/rootfs.js';
import { QEMU, requireTool } from '../test/fixtures/tcg.js';
import { bootWithVhostUser } from '../test/fixtures/vhost-user-qemu.js';
import { summary } from './lib/stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? Number(args[i + 1]) : dflt;
};
const ROUNDS = opt('rounds', 3);
const READS = opt('reads', 4);
const MiB = 1024 * 1024;
const DISK = 128 * MiB;
/** whole-disk passes per timed sample: /proc/uptime ticks in 10 ms */
const PASSES = 4;

requireTool(QEMU, ['--version'], 'qemu-system-x86', 'bench/virtio-vhost-user');
const kernel = await buildKernel({ onProgress: (l) => process.stderr.write(`[kernel] ${l}\n`) });
const work = mkdtempSync(path.join(tmpdir(), 'tvm-bench-vhost-user-'));
try {
  const initrd = path.join(work, 'init.cpio');
  writeFileSync(
    initrd,
    buildInitramfs({
      init: `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for i in $(seq ${READS}); do
  a=$(cat /proc/uptime)
  for p in $(seq ${PASSES}); do dd if=/dev/vda of=/dev/null bs=1M iflag=direct 2>/dev/null; done
  b=$(cat /proc/uptime)
  echo "BENCH-READ $a $b"
done
echo BENCH-DONE
reboot -f
`,
      dirs: ['proc', 'sys', 'dev'],
      files: busyboxEntries(readFileSync(requireBusybox()), [...new Set([...APPLETS, 'seq'])]),
    }),
  );
  // Every cluster allocated: both sides read real data, not holes.
  const disk = path.join(work, 'disk.qcow2');
  const img = Qcow2Image.createSync(disk, { size: DISK });
  const chunk = new Uint8Array(MiB);
  for (let off = 0; off < DISK; off += MiB) {
    chunk.fill((off / MiB) & 0xff);
    img.writeSync(chunk, off);
  }
  img.closeSync();

  const mbps: Record<'ours' | 'qemu', number[]> = { ours: [], qemu: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const side of ['ours', 'qemu'] as const) {
      const image = side === 'ours' ? Qcow2Image.openSync(disk, { readOnly: true }) : undefined;
      try {
        const run = await bootWithVhostUser({
          kernel: kernel.bzImage,
          initrd,
          timeoutMs: 300_000,
          devices: image ? [{ kind: 'blk', device: new BlockDevice({ backend: image }) }] : [],
          extraArgs: image
            ? []
            : ['-drive', `file=${disk},format=qcow2,if=none,id=d0,readonly=on`, '-device', 'virtio-blk-device,drive=d0'],
        });
        if (!run.console.includes('BENCH-DONE') || run.backendErrors.length) {
          throw new Error(`${side}: the guest did not finish: ${run.backendErrors.join('; ')}\n${run.console.slice(-3000)}`);
        }
        for (const m of run.console.matchAll(/^BENCH-READ (\d+\.\d+) \S+ (\d+\.\d+) \S+$/gm)) {
          const s = Number(m[2]) - Number(m[1]);
          mbps[side].push((PASSES * DISK) / MiB / Math.max(s, 0.01));
        }
      } finally {
        image?.closeSync();
      }
    }
  }
  const o = summary(mbps.ours);
  const q = summary(mbps.qemu);
  const f = (x: number) => x.toFixed(1).padStart(8);
  console.log(
    `vda sequential read, ${PASSES} x ${DISK / MiB} MiB per sample, bs=1M O_DIRECT, QEMU TCG (not PVM, not hardware KVM); ${mbps.ours.length} samples per side`,
  );
  console.log(`                          min   median      p95   (MB/s)`);
  console.log(`ours (vhost-user)   ${f(o.min)} ${f(o.median)} ${f(o.p95)}`);
  console.log(`QEMU virtio-blk     ${f(q.min)} ${f(q.median)} ${f(q.p95)}`);
  console.log(`ratio ours/QEMU (median): ${(o.median / q.median).toFixed(2)}x`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
