/**
 * One QEMU TCG boot of our guest kernel with tvm's own virtio devices served over vhost-user
 * (virtio-blk over a qcow2, virtio-vsock through the unix-socket muxer, virtio-rng), and many
 * checks on that one boot: the guest reads a known pattern from /dev/vda and writes to it (the
 * host then finds the write in the qcow2, and `qemu-img check` is clean), reads /dev/hwrng,
 * and runs an AF_VSOCK echo server the test reaches through the muxer (`CONNECT 1024`). Then
 * `reboot -f` ends QEMU.
 *
 * The first run on a fresh machine builds the kernel (10+ minutes); later runs use the cache.
 * Timings here are TCG figures, neither PVM nor hardware KVM.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildKernel, type KernelArtifacts } from '../../../src/vmm/kernel-artifacts.js';
import { buildInitramfs, busyboxEntries } from '../../../src/disks/initramfs.js';
import { Qcow2Image } from '../../../src/disks/qcow2/image.js';
import { BlockDevice } from '../../../src/vmm/devices/virtio/block.js';
import { RngDevice } from '../../../src/vmm/devices/virtio/rng.js';
import { VsockDevice } from '../../../src/vmm/devices/virtio/vsock/device.js';
import { VsockMuxer } from '../../../src/vmm/devices/virtio/vsock/muxer.js';
import { APPLETS, requireBusybox } from '../../fixtures/rootfs.js';
import { buildStaticProgram, consoleLine, KERNEL_BUILD_MS, QEMU, requireTool } from '../../fixtures/tcg.js';
import { bootWithVhostUser, type VhostUserQemuRun } from '../../fixtures/vhost-user-qemu.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const ECHO_SOURCE = path.resolve(here, '../../fixtures/guest-programs/vsock-echo.c');
const MARKER = `vhost${process.pid}x${Date.now().toString(36)}`;
const PATTERN = `TVM-PATTERN-${MARKER}`;
const GUEST_WRITE = `written-by-guest-${MARKER}`;
const PATTERN_SECTOR = 16;
const WRITE_SECTOR = 100;
const BOOT_TIMEOUT_MS = 180_000;
const GUEST_CID = 3n;

function initScript(): string {
  return `#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo TVM-INIT-START
echo "TVM-VDA-SIZE $(cat /sys/block/vda/size)"
echo "TVM-VDA-READ $(dd if=/dev/vda bs=512 skip=${PATTERN_SECTOR} count=1 2>/dev/null | head -c ${PATTERN.length})"
printf '%s' '${GUEST_WRITE}' | dd of=/dev/vda bs=512 seek=${WRITE_SECTOR} conv=notrunc 2>/dev/null && sync && echo TVM-VDA-WRITTEN
echo "TVM-HWRNG-CURRENT $(cat /sys/class/misc/hw_random/rng_current)"
echo "TVM-HWRNG $(dd if=/dev/hwrng bs=32 count=1 2>/dev/null | od -An -tx1 | tr -d ' \\n')"
echo TVM-VSOCK-START
/bin/vsock-echo 1024
echo "TVM-VSOCK-EXIT $?"
echo TVM-INIT-DONE
reboot -f
echo TVM-FAIL-reboot-returned
`;
}

let kernel: KernelArtifacts;
let dir: string;
let boot: VhostUserQemuRun;
let echoed = '';
let okLine = '';
let qcowAfter: Uint8Array;
let imageCheck = '';
let rngBytes = 0;

beforeAll(async () => {
  requireTool(QEMU, ['--version'], 'qemu-system-x86', 'the vhost-user QEMU test');
  requireTool('qemu-img', ['--version'], 'qemu-utils', 'the vhost-user QEMU test');
  requireBusybox();
  kernel = await buildKernel({ onProgress: (l) => process.stderr.write(`[kernel] ${l}\n`) });
}, KERNEL_BUILD_MS);

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-vhost-qemu-'));
  const initrd = path.join(dir, 'initramfs.cpio');
  writeFileSync(
    initrd,
    buildInitramfs({
      init: initScript(),
      dirs: ['proc', 'sys', 'tmp', 'dev'],
      files: [
        ...busyboxEntries(readFileSync(requireBusybox()), [...new Set([...APPLETS, 'sync', 'od', 'sed'])]),
        { path: 'bin/vsock-echo', type: 'file', mode: 0o755, data: buildStaticProgram(ECHO_SOURCE, dir) },
      ],
    }),
  );

  const diskPath = path.join(dir, 'disk.qcow2');
  const img = Qcow2Image.createSync(diskPath, { size: 64 * 1024 * 1024 });
  img.writeSync(new TextEncoder().encode(PATTERN.padEnd(512, '\0')), PATTERN_SECTOR * 512);

  const uds = path.join(dir, 'vsock.sock');
  const muxer = new VsockMuxer({ udsPath: uds });
  await muxer.listen();
  const rng = new RngDevice();
  const devices = [
    { kind: 'blk' as const, device: new BlockDevice({ backend: img, id: 'vhost-user-test' }), queues: 1 },
    { kind: 'vsock' as const, device: new VsockDevice(GUEST_CID, muxer), queues: 2 },
    { kind: 'rng' as const, device: rng, queues: 1 },
  ];
  let echoStarted = false;
  try {
    boot = await bootWithVhostUser({
      kernel: kernel.bzImage,
      initrd,
      memoryMiB: 256,
      devices,
      timeoutMs: BOOT_TIMEOUT_MS,
      watch: ['TVM-INIT-START', 'VSOCK-LISTENING', 'TVM-INIT-DONE'],
      log: (l) => process.stderr.write(`${l}\n`),
      onConsole: (out) => {
        if (echoStarted || !out.includes('VSOCK-LISTENING')) return;
        echoStarted = true;
        // both outcomes are recorded in `echoed`, which the test asserts
        void echoThroughMuxer(uds).then(
          (r) => ({ echoed, okLine } = r),
          (e: Error) => (echoed = `ERROR ${e.message}`),
        );
      },
    });
  } finally {
    await muxer.close();
    img.closeSync();
  }
  const m = boot.marks;
  process.stderr.write(
    `[vhost-user-qemu] QEMU TCG (not PVM, not hardware KVM): /init after ${m['TVM-INIT-START']} ms, done after ${m['TVM-INIT-DONE']} ms, exit after ${boot.msTotal} ms\n`,
  );
  rngBytes = rng.bytesServed;
  const back = Qcow2Image.openSync(diskPath, { readOnly: true });
  qcowAfter = new Uint8Array(512);
  back.readSync(qcowAfter, WRITE_SECTOR * 512);
  back.closeSync();
  imageCheck = execFileSync('qemu-img', ['check', diskPath], { encoding: 'utf8' });
}, BOOT_TIMEOUT_MS + 30_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Host -> muxer -> guest echo server and back. */
async function echoThroughMuxer(uds: string): Promise<{ echoed: string; okLine: string }> {
  const s = net.connect({ path: uds });
  await new Promise<void>((r, j) => s.once('connect', () => r()).once('error', j));
  let got = '';
  s.on('data', (b: Buffer) => (got += b.toString()));
  s.write('CONNECT 1024\n');
  const msg = `hello-${MARKER}`;
  const deadline = Date.now() + 60_000;
  while (!got.includes('\n') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const okLine = got.slice(0, got.indexOf('\n'));
  got = got.slice(got.indexOf('\n') + 1);
  s.write(msg);
  while (got.length < msg.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  s.end();
  await new Promise<void>((r) => s.once('close', () => r()));
  return { echoed: got, okLine };
}

const line = (prefix: string): string => consoleLine(boot, prefix, 6000);

describe('QEMU TCG guest served by our vhost-user backends', () => {
  it('boots to /init, runs every check and QEMU exits on reboot -f', () => {
    expect(boot.timedOut, boot.console.slice(-4000)).toBe(false);
    line('TVM-INIT-START');
    line('TVM-INIT-DONE');
    expect(boot.console).not.toContain('TVM-FAIL');
    expect(boot.console).not.toContain('VSOCK-FAIL');
    expect(boot.exitCode).toBe(0);
    expect(boot.backendErrors).toEqual([]);
  });

  it('no kernel warnings or oopses, and no virtio complaints', () => {
    for (const bad of ['WARNING:', 'BUG:', 'Oops', 'Call Trace', 'Kernel panic', 'virtio_blk: probe', 'I/O error']) {
      expect(boot.console, bad).not.toContain(bad);
    }
  });

  it('virtio-blk: the guest sees the disk, reads the pattern and its write reaches the qcow2', () => {
    expect(line('TVM-VDA-SIZE ')).toBe(`TVM-VDA-SIZE ${(64 * 1024 * 1024) / 512}`);
    expect(line('TVM-VDA-READ ')).toBe(`TVM-VDA-READ ${PATTERN}`);
    line('TVM-VDA-WRITTEN');
    expect(new TextDecoder().decode(qcowAfter.subarray(0, GUEST_WRITE.length))).toBe(GUEST_WRITE);
    expect(imageCheck).toContain('No errors were found');
  });

  it('virtio-rng: /dev/hwrng is ours and gives bytes', () => {
    expect(line('TVM-HWRNG-CURRENT ')).toMatch(/virtio_rng/);
    expect(line('TVM-HWRNG ')).toMatch(/^TVM-HWRNG [0-9a-f]{64}$/);
    expect(rngBytes).toBeGreaterThanOrEqual(32);
  });

  it('virtio-vsock: the host reaches the guest echo server through the muxer', () => {
    expect(okLine).toMatch(/^OK \d+$/);
    expect(echoed).toBe(`hello-${MARKER}`);
    expect(line('VSOCK-ECHOED ')).toBe(`VSOCK-ECHOED ${`hello-${MARKER}`.length}`);
  });
});
