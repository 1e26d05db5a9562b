/**
 * virtio-blk request path: our BlockDevice over a qcow2 overlay, driven by the synthetic guest
 * driver (descriptor chain posted, QueueNotify through the MMIO register file, used ring read
 * back), against `qemu-img bench` doing the same I/O on the same kind of image, same run.
 * Reports IOPS / MB/s and ours/QEMU ratios. One request in flight on both sides (QEMU -d 1);
 * QEMU with -t writeback (page cache, as ours). Our figure includes the synthetic driver's
 * work, which a real guest does on its own vCPU, so it is a pessimistic view of the device.
 *
 *   npx tsx bench/virtio-blk.bench.ts [--quick]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Qcow2Image } from '../src/disks/qcow2/image.js';
import { BlockDevice } from '../src/vmm/devices/virtio/block.js';
import { VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_S_OK } from '../src/vmm/devices/virtio/block-request.js';
import { bit } from '../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../src/vmm/devices/virtio/virtqueue.js';
import { virtioTestbed } from '../test/fixtures/virtio-driver.js';

const quick = process.argv.includes('--quick');
const MiB = 1024 * 1024;
const IMAGE = 256 * MiB;
const ROUNDS = 3;

interface Case {
  name: string;
  write: boolean;
  size: number;
  count: number;
}
const cases: Case[] = [
  { name: '4 KiB seq read (allocated)', write: false, size: 4096, count: quick ? 5000 : 20000 },
  { name: '4 KiB seq write (fresh overlay)', write: true, size: 4096, count: quick ? 5000 : 20000 },
  { name: '64 KiB seq read (allocated)', write: false, size: 65536, count: quick ? 1000 : 4000 },
];

function qemuImg(args: string[]): string {
  const r = spawnSync('qemu-img', args, { encoding: 'utf8' });
  if (r.error) throw new Error(`missing tool: qemu-img (apt-get install qemu-utils): ${r.error.message}`);
  if (r.status !== 0) throw new Error(`qemu-img ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A fresh overlay; `fill` writes the bytes the case reads first (with qemu-img, untimed). */
function image(dir: string, name: string, fill: Case | undefined): string {
  const p = path.join(dir, name);
  qemuImg(['create', '-q', '-f', 'qcow2', p, String(IMAGE)]);
  if (fill)
    qemuImg([
      'bench',
      '-q',
      '-w',
      '-f',
      'qcow2',
      '-t',
      'writeback',
      '-c',
      String(fill.count),
      '-s',
      String(fill.size),
      '-S',
      String(fill.size),
      '--pattern=0x5a',
      p,
    ]);
  return p;
}

function ours(file: string, c: Case): number {
  const img = Qcow2Image.openSync(file);
  const { driver } = virtioTestbed(new BlockDevice({ backend: img }), 64 * MiB);
  driver.init(bit(VIRTIO_F_VERSION_1), 1);
  const q = driver.queues[0]!;
  // One set of buffers reused for every request, as a guest's block layer would (no allocation per request).
  const hdr = driver.alloc(16);
  const data = driver.alloc(c.size);
  const status = driver.alloc(1);
  const hv = new DataView(driver.bytes(hdr, 16).buffer, driver.bytes(hdr, 16).byteOffset, 16);
  hv.setUint32(0, c.write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, true);
  driver.bytes(data, c.size).fill(0xa5);
  const [d0, d1, d2] = [driver.takeDesc(q), driver.takeDesc(q), driver.takeDesc(q)];
  driver.writeDesc(q, d0, hdr, 16, 1, d1);
  driver.writeDesc(q, d1, data, c.size, 1 | (c.write ? 0 : 2), d2);
  driver.writeDesc(q, d2, status, 1, 2, 0);
  const t0 = process.hrtime.bigint();
  let off = 0;
  for (let i = 0; i < c.count; i++) {
    hv.setBigUint64(8, BigInt(off / 512), true);
    driver.pushAvail(q, d0);
    driver.notify(q);
    driver.takeUsed(q);
    if (driver.bytes(status, 1)[0] !== VIRTIO_BLK_S_OK) throw new Error(`request ${i} failed`);
    // takeUsed returned the chain's descriptors to the free list: take them back out.
    q.freeDescs = q.freeDescs.filter((d) => d !== d0 && d !== d1 && d !== d2);
    off = (off + c.size) % IMAGE;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  img.closeSync();
  return secs;
}

function qemu(file: string, c: Case): number {
  const out = qemuImg([
    'bench',
    ...(c.write ? ['-w'] : []),
    '-f',
    'qcow2',
    '-t',
    'writeback',
    '-d',
    '1',
    '-c',
    String(c.count),
    '-s',
    String(c.size),
    '-S',
    String(c.size),
    file,
  ]);
  const m = /Run completed in ([0-9.]+) seconds/.exec(out);
  if (!m) throw new Error(`qemu-img bench output not understood: ${out}`);
  return Number(m[1]);
}

const dir = mkdtempSync(path.join(tmpdir(), 'tvm-vblk-bench-'));
try {
  console.log(`virtio-blk over qcow2 (64 KiB clusters, ${IMAGE / MiB} MiB), queue depth 1, best of ${ROUNDS} interleaved rounds`);
  console.log(
    'case'.padEnd(34),
    'ours IOPS'.padStart(10),
    'qemu IOPS'.padStart(10),
    'ours MB/s'.padStart(10),
    'qemu MB/s'.padStart(10),
    'ours/qemu'.padStart(10),
  );
  for (const c of cases) {
    let bestOurs = Infinity;
    let bestQemu = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      const a = image(dir, `o${r}.qcow2`, c.write ? undefined : c);
      bestOurs = Math.min(bestOurs, ours(a, c));
      const b = image(dir, `q${r}.qcow2`, c.write ? undefined : c);
      bestQemu = Math.min(bestQemu, qemu(b, c));
      rmSync(a);
      rmSync(b);
    }
    const iops = (s: number) => c.count / s;
    const mbs = (s: number) => (c.count * c.size) / s / 1e6;
    console.log(
      c.name.padEnd(34),
      iops(bestOurs).toFixed(0).padStart(10),
      iops(bestQemu).toFixed(0).padStart(10),
      mbs(bestOurs).toFixed(1).padStart(10),
      mbs(bestQemu).toFixed(1).padStart(10),
      (bestQemu / bestOurs).toFixed(2).padStart(10),
    );
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
