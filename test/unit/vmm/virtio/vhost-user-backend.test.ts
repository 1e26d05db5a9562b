/**
 * Our vhost-user backend driven by a test front end that plays QEMU 7.2 (same process, real
 * socketpair, memfd guest RAM, eventfds with SCM_RIGHTS): virtio-rng, virtio-blk over qcow2,
 * virtio-vsock through the muxer's unix socket, and malformed input ending the connection
 * cleanly with no fd left behind.
 */
import { describe, it, expect, afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import * as libc from '../../../../src/kvm/libc.js';
import { VhostUserBackend, vhostUserSocketPair } from '../../../../src/vmm/devices/virtio/vhost-user/backend.js';
import {
  VhostUserRequest as Q,
  encodeU64,
  encodeMessage,
  encodeMemory,
  vhostVringState,
  vhostVringAddr,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_VERSION,
  VHOST_USER_NEED_REPLY_MASK,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  VHOST_USER_PROTOCOL_F_CONFIG,
} from '../../../../src/vmm/devices/virtio/vhost-user/messages.js';
import { getCloexec } from '../../../../src/kvm/socket.js';
import { NotifyPoller } from '../../../../src/vmm/devices/virtio/notify-poller.js';
import { RngDevice } from '../../../../src/vmm/devices/virtio/rng.js';
import { BlockDevice } from '../../../../src/vmm/devices/virtio/block.js';
import { VsockDevice, VSOCK_RX_QUEUE, VSOCK_TX_QUEUE } from '../../../../src/vmm/devices/virtio/vsock/device.js';
import { VsockMuxer } from '../../../../src/vmm/devices/virtio/vsock/muxer.js';
import { Qcow2Image } from '../../../../src/disks/qcow2/image.js';
import { bit, type VirtioDevice } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { VIRTIO_BLK_OUTHDR, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_S_OK } from '../../../../src/vmm/devices/virtio/block-request.js';
import {
  decodeHeader,
  encodeHeader,
  VSOCK_HDR,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_TYPE_STREAM,
} from '../../../../src/vmm/devices/virtio/vsock/packet.js';
import { VhostUserFrontend, openFds, NOFD } from '../../../fixtures/vhost-user-frontend.js';

const RING = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);

let dir: string;
const cleanups: (() => Promise<void> | void)[] = [];
/**
 * One poller thread for the backends here, as tcg.ts shares one among a VM's backends: from the
 * sources each thread takes about a second to load and stop. The clean hang-up test keeps a
 * backend with a poller of its own (and checks that its fds go too).
 */
let poller: NotifyPoller;
const pollerErrors: unknown[] = [];
beforeAll(async () => {
  poller = new NotifyPoller((e) => pollerErrors.push(e));
  // Wait for its thread here, where a loaded machine's slow start has time: a front end waits
  // only 5 s for each reply.
  const fd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
  await new Promise<void>((resolve) => {
    poller.add(fd, () => resolve());
    libc.eventfdSignal(fd);
  });
  poller.remove(fd);
  libc.close(fd);
}, 60_000);
afterAll(async () => {
  await poller.close();
  expect(pollerErrors).toEqual([]);
});
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-vhost-'));
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** A backend for `device` and a front end on the other end of its socket. */
function connect(device: VirtioDevice, queues?: number) {
  const fe = new VhostUserFrontend();
  const logs: string[] = [];
  const closed: { err?: Error; done: boolean } = { done: false };
  const be = new VhostUserBackend({
    fd: fe.backendFd,
    device,
    queues,
    poller,
    log: (l) => logs.push(l),
    onClose: (err) => Object.assign(closed, { err, done: true }),
  });
  be.start();
  cleanups.push(async () => {
    await be.close();
    fe.close();
  });
  return { fe, be, logs, closed };
}

describe('vhost-user backend: virtio-rng', () => {
  it('negotiates as QEMU does, fills buffers, signals the call eventfd, stops and restarts', async () => {
    const dev = new RngDevice();
    const { fe, be } = connect(dev);
    const r = await fe.realize(1, 0);
    expect(r.features & bit(VHOST_USER_F_PROTOCOL_FEATURES)).not.toBe(0n);
    expect(r.features & RING).toBe(RING);
    // REPLY_ACK only: rng has no config space, and QEMU warns when offered CONFIG for it.
    expect(r.protocol).toBe(1n << BigInt(VHOST_USER_PROTOCOL_F_REPLY_ACK));
    const [q] = await fe.driverOk(r.features, 1);
    const p = fe.driver.post(q!, [{ writable: 64 }]);
    const p2 = fe.driver.post(q!, [{ writable: 16 }, { writable: 16 }], { indirect: true });
    fe.kick(0);
    const used = await fe.used(q!, 2);
    expect(used).toEqual([
      { id: p.head, len: 64 },
      { id: p2.head, len: 32 },
    ]);
    expect(fe.ram.slice(p.addrs[0]!, 64).every((b) => b === 0xee)).toBe(false);
    await fe.until(() => fe.calls(0) > 0, 'an interrupt');
    expect(dev.bytesServed).toBe(96);

    // Stop (reboot): GET_VRING_BASE answers the next avail index; the ring restarts from it.
    expect(await fe.stop(1)).toEqual([2]);
    expect(be.handled.get('VHOST_USER_GET_VRING_BASE')).toBe(1);
    fe.driver.post(q!, [{ writable: 8 }]);
    fe.sendMemTable();
    expect(await fe.replyU64(Q.VHOST_USER_SET_MEM_TABLE)).toBe(0n);
    const q2 = fe.startQueue(0, 256);
    const p3 = fe.driver.post(q2, [{ writable: 8 }]);
    // No kick: SET_VRING_ENABLE re-scans the ring.
    expect(await fe.used(q2, 1)).toEqual([{ id: p3.head, len: 8 }]);
  });

  it('a new memory table while the rings run replaces the mappings under the device', async () => {
    const { fe, be } = connect(new RngDevice());
    const r = await fe.realize(1, 0);
    const [q] = await fe.driverOk(r.features, 1);
    fe.driver.post(q!, [{ writable: 8 }]);
    fe.kick(0);
    await fe.used(q!, 1);
    fe.sendMemTable();
    expect(await fe.replyU64(Q.VHOST_USER_SET_MEM_TABLE)).toBe(0n);
    const p = fe.driver.post(q!, [{ writable: 8 }]);
    fe.kick(0);
    expect(await fe.used(q!, 1)).toEqual([{ id: p.head, len: 8 }]);
    expect(be.handled.get('VHOST_USER_SET_MEM_TABLE')).toBe(2);
  });

  it('a kick before SET_VRING_ENABLE is not lost', async () => {
    const { fe } = connect(new RngDevice());
    const r = await fe.realize(1, 0);
    fe.send(Q.VHOST_USER_SET_FEATURES, encodeU64(r.features));
    fe.sendMemTable();
    await fe.replyU64(Q.VHOST_USER_SET_MEM_TABLE);
    const q = fe.startQueue(0, 64, { enable: false });
    const p = fe.driver.post(q, [{ writable: 4 }]);
    fe.kick(0);
    await new Promise((r) => setTimeout(r, 20));
    expect(fe.driver.takeUsed(q)).toEqual([]);
    fe.enable(0);
    expect(await fe.used(q, 1)).toEqual([{ id: p.head, len: 4 }]);
  });
});

function blkHeader(type: number, sector: number): Uint8Array {
  const h = new Uint8Array(VIRTIO_BLK_OUTHDR.size);
  const v = new DataView(h.buffer);
  v.setUint32(VIRTIO_BLK_OUTHDR.type, type, true);
  v.setBigUint64(VIRTIO_BLK_OUTHDR.sector, BigInt(sector), true);
  return h;
}

describe('vhost-user backend: virtio-blk over qcow2', () => {
  it('reads config, writes and reads sectors; the write lands in the image', async () => {
    const file = path.join(dir, 'disk.qcow2');
    const img = Qcow2Image.createSync(file, { size: 4 * 1024 * 1024 });
    const pattern = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
    img.writeSync(pattern, 8192);
    const dev = new BlockDevice({ backend: img, id: 'vhost-test' });
    const { fe } = connect(dev);
    const r = await fe.realize(1, 60);
    expect(r.protocol).toBe((1n << BigInt(VHOST_USER_PROTOCOL_F_REPLY_ACK)) | (1n << BigInt(VHOST_USER_PROTOCOL_F_CONFIG)));
    // capacity in sectors, as QEMU reads it with GET_CONFIG
    expect(new DataView(r.config.buffer, r.config.byteOffset).getBigUint64(0, true)).toBe(8192n);
    const [q] = await fe.driverOk(r.features & ~0n, 1);

    const rd = fe.driver.post(q!, [{ data: blkHeader(VIRTIO_BLK_T_IN, 16) }, { writable: 4096 }, { writable: 1 }]);
    const data = new Uint8Array(512).fill(0x5a);
    const wr = fe.driver.post(q!, [{ data: blkHeader(VIRTIO_BLK_T_OUT, 100) }, { data }, { writable: 1 }], { indirect: true });
    fe.kick(0);
    const used = await fe.used(q!, 2);
    expect(used.map((u) => u.id)).toEqual([rd.head, wr.head]);
    expect(Buffer.from(fe.ram.slice(rd.addrs[1]!, 4096)).equals(Buffer.from(pattern))).toBe(true);
    expect(fe.ram.slice(rd.addrs[2]!, 1)[0]).toBe(VIRTIO_BLK_S_OK);
    expect(fe.ram.slice(wr.addrs[2]!, 1)[0]).toBe(VIRTIO_BLK_S_OK);
    await fe.stop(1);
    img.closeSync();
    const back = Qcow2Image.openSync(file);
    const got = new Uint8Array(512);
    back.readSync(got, 100 * 512);
    back.closeSync();
    expect(got.every((b) => b === 0x5a)).toBe(true);
    execFileSync('qemu-img', ['check', file], { stdio: 'pipe' });
  });
});

describe('vhost-user backend: virtio-vsock (2 of 3 queues; the event queue stays in QEMU)', () => {
  it('connects a host socket through the muxer to the guest and echoes', async () => {
    const uds = path.join(dir, 'v.sock');
    const mux = new VsockMuxer({ udsPath: uds });
    await mux.listen();
    cleanups.push(() => mux.close());
    const dev = new VsockDevice(3n, mux);
    const { fe } = connect(dev, 2);
    const r = await fe.realize(2, 8);
    expect(new DataView(r.config.buffer, r.config.byteOffset).getBigUint64(0, true)).toBe(3n);
    const [rxq, txq] = await fe.driverOk(r.features, 2);
    const rx = new Map<number, number>();
    const postRx = () => {
      const p = fe.driver.post(rxq!, [{ writable: VSOCK_HDR.size + 4096 }]);
      rx.set(p.head, p.addrs[0]!);
    };
    for (let i = 0; i < 8; i++) postRx();
    fe.kick(VSOCK_RX_QUEUE);
    const received: { hdr: ReturnType<typeof decodeHeader>; payload: Buffer }[] = [];
    const next = async () => {
      const u = (await fe.used(rxq!, 1))[0]!;
      const b = fe.ram.slice(rx.get(u.id)!, u.len);
      postRx();
      fe.kick(VSOCK_RX_QUEUE);
      return { hdr: decodeHeader(b), payload: Buffer.from(b.subarray(VSOCK_HDR.size)) };
    };
    const send = (op: number, srcPort: number, dstPort: number, payload = new Uint8Array(0)) => {
      const hdr = encodeHeader({
        srcCid: 3n,
        dstCid: 2n,
        srcPort,
        dstPort,
        len: payload.length,
        type: VIRTIO_VSOCK_TYPE_STREAM,
        op,
        flags: 0,
        bufAlloc: 65536,
        fwdCnt: 0,
      });
      fe.driver.post(txq!, [{ data: hdr }, ...(payload.length ? [{ data: payload }] : [])]);
      fe.kick(VSOCK_TX_QUEUE);
    };

    const s = net.connect({ path: uds });
    cleanups.push(() => void s.destroy());
    await new Promise<void>((res) => s.once('connect', () => res()));
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString()));
    s.write('CONNECT 1024\n');
    const req = await next();
    expect(req.hdr.op).toBe(VIRTIO_VSOCK_OP_REQUEST);
    expect(req.hdr.dstPort).toBe(1024);
    send(VIRTIO_VSOCK_OP_RESPONSE, 1024, req.hdr.srcPort);
    await fe.until(() => got.startsWith('OK '), 'OK from the muxer');
    s.write('ping');
    const rw = await next();
    expect(rw.hdr.op).toBe(VIRTIO_VSOCK_OP_RW);
    expect(rw.payload.toString()).toBe('ping');
    send(VIRTIO_VSOCK_OP_RW, 1024, req.hdr.srcPort, new TextEncoder().encode('pong'));
    await fe.until(() => got.endsWith('pong'), 'the echo');
    expect(dev.sendTransportReset()).toBe(false);
    expect(received).toEqual([]);
  });
});

describe('vhost-user backend: malformed input closes the connection cleanly', () => {
  /** Runs `attack` against a fresh backend; expects onClose with an error matching `why`, and no fd left. */
  async function expectClosed(why: RegExp, attack: (fe: VhostUserFrontend) => Promise<void> | void, opts: { queues?: number } = {}) {
    const before = await openFds();
    const fe = new VhostUserFrontend();
    const logs: string[] = [];
    let closedWith: Error | undefined | null = null;
    const be = new VhostUserBackend({
      fd: fe.backendFd,
      device: new RngDevice(),
      queues: opts.queues,
      poller,
      log: (l) => logs.push(l),
      onClose: (e) => (closedWith = e),
    });
    be.start();
    try {
      await attack(fe);
      await fe.until(() => closedWith !== null, 'onClose');
      expect(String(closedWith)).toMatch(why);
      expect(logs.join('\n')).toMatch(why);
      await be.close(); // idempotent after a fatal error
    } finally {
      await be.close();
      fe.close();
    }
    expect(await openFds()).toBe(before);
  }

  it('a header with a payload size the request cannot have', () =>
    expectClosed(/VHOST_USER_SET_FEATURES: payload of 4 bytes, expected 8/, (fe) => fe.send(Q.VHOST_USER_SET_FEATURES, new Uint8Array(4))));

  it('an oversized payload is refused before it is read', () =>
    expectClosed(/SET_MEM_TABLE: payload of 100000 bytes/, (fe) => {
      const m = encodeMessage(Q.VHOST_USER_SET_MEM_TABLE);
      new DataView(m.buffer).setUint32(8, 100000, true);
      fe.sendRaw(m);
    }));

  it('an unknown request, and one we do not serve', async () => {
    await expectClosed(/unknown request 999/, (fe) => fe.send(999));
    await expectClosed(/VHOST_USER_SET_LOG_BASE is not supported/, (fe) => fe.send(Q.VHOST_USER_SET_LOG_BASE, encodeU64(0n)));
  });

  it('a memory table whose region fds are missing (and extra fds are closed)', async () => {
    await expectClosed(/2 regions: 1 file descriptors|1 file descriptors, expected 2/, (fe) =>
      fe.send(Q.VHOST_USER_SET_MEM_TABLE, encodeMemory(fe.regions()), [fe.memFd], VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK),
    );
    await expectClosed(/3 file descriptors, expected 0/, (fe) =>
      fe.send(Q.VHOST_USER_SET_OWNER, undefined, [fe.memFd, fe.memFd, fe.memFd]),
    );
  });

  it('too many regions', () =>
    expectClosed(/9 regions|payload of 296 bytes/, (fe) => {
      const regions = Array.from({ length: 9 }, (_, i) => ({
        guest_phys_addr: BigInt(i << 20),
        memory_size: 1n << 20n,
        userspace_addr: BigInt(i << 20),
        mmap_offset: 0n,
      }));
      fe.send(Q.VHOST_USER_SET_MEM_TABLE, encodeMemory(regions), []);
    }));

  it('a ring address outside guest memory', () =>
    expectClosed(/SET_VRING_ADDR: ring 0: front-end address 0x1000 is outside every memory region/, async (fe) => {
      fe.sendMemTable();
      await fe.replyU64(Q.VHOST_USER_SET_MEM_TABLE);
      fe.send(Q.VHOST_USER_SET_VRING_NUM, vhostVringState.pack({ index: 0, num: 256 }));
      fe.send(
        Q.VHOST_USER_SET_VRING_ADDR,
        vhostVringAddr.pack({
          index: 0,
          flags: 0,
          desc_user_addr: 0x1000n,
          used_user_addr: fe.uva(0x2000),
          avail_user_addr: fe.uva(0x3000),
          log_guest_addr: 0n,
        }),
      );
    }));

  it('a ring that runs past the end of memory', () =>
    expectClosed(/is outside guest RAM/, async (fe) => {
      fe.sendMemTable();
      await fe.replyU64(Q.VHOST_USER_SET_MEM_TABLE);
      fe.send(Q.VHOST_USER_SET_VRING_NUM, vhostVringState.pack({ index: 0, num: 1024 }));
      const end = fe.memBytes - 16;
      fe.send(
        Q.VHOST_USER_SET_VRING_ADDR,
        vhostVringAddr.pack({
          index: 0,
          flags: 0,
          desc_user_addr: fe.uva(end),
          used_user_addr: fe.uva(0x2000),
          avail_user_addr: fe.uva(0x3000),
          log_guest_addr: 0n,
        }),
      );
    }));

  it('a ring index the backend does not serve (its fd is closed)', () =>
    expectClosed(/ring 2, the backend serves 1/, (fe) => {
      const call = libc.eventfd();
      fe.send(Q.VHOST_USER_SET_VRING_CALL, encodeU64(2n), [call]);
      libc.close(call);
    }));

  it('kick without an fd (polling mode)', () =>
    expectClosed(/polling\) is not supported/, (fe) => fe.send(Q.VHOST_USER_SET_VRING_KICK, encodeU64(NOFD))));

  it('the peer hangs up in the middle of a message', () =>
    expectClosed(/hung up in the middle of a message \(VHOST_USER_SET_MEM_TABLE\)/, (fe) => {
      const m = encodeMessage(Q.VHOST_USER_SET_MEM_TABLE, encodeMemory(fe.regions()));
      fe.sendRaw(m.subarray(0, 20));
      libc.close(fe.fd);
      (fe as unknown as { fd: number }).fd = libc.eventfd(); // keep close() balanced
    }));

  it('a clean hang-up between messages closes without an error', async () => {
    const before = await openFds();
    const fe = new VhostUserFrontend();
    let closed: Error | undefined | null = null;
    const be = new VhostUserBackend({ fd: fe.backendFd, device: new RngDevice(), onClose: (e) => (closed = e ?? undefined) });
    be.start();
    const r = await fe.realize(1, 0);
    await fe.driverOk(r.features, 1);
    fe.close();
    await fe.until(() => closed !== null, 'onClose');
    expect(closed).toBeUndefined();
    await be.close();
    expect(await openFds()).toBe(before);
  });
});

describe('vhostUserSocketPair', () => {
  it('gives QEMU an inheritable end and keeps ours close-on-exec', () => {
    const { ours, theirs } = vhostUserSocketPair();
    try {
      expect(getCloexec(ours)).toBe(true);
      expect(getCloexec(theirs)).toBe(false);
    } finally {
      libc.close(ours);
      libc.close(theirs);
    }
  });
});
