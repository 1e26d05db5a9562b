import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import { bit, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_NEEDS_RESET } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1 } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { VsockDevice, VSOCK_RX_QUEUE, VSOCK_TX_QUEUE } from '../../../../src/vmm/devices/virtio/vsock/device.js';
import { VsockMuxer } from '../../../../src/vmm/devices/virtio/vsock/muxer.js';
import { CONN_BUF_ALLOC } from '../../../../src/vmm/devices/virtio/vsock/connection.js';
import {
  decodeHeader,
  encodeHeader,
  VSOCK_HDR,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM,
  type VsockHeader,
} from '../../../../src/vmm/devices/virtio/vsock/packet.js';

const CID = 3n;
let dir: string;
let uds: string;
const cleanups: (() => Promise<void> | void)[] = [];
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'tvm-vsock-'));
  uds = path.join(dir, 'v.sock');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const tick = () => new Promise<void>((r) => setImmediate(r));

/** A guest: rx buffers posted, packets sent on tx, received packets collected. */
async function guest(
  opts: { bufAlloc?: number; rxBuffers?: number; rxSize?: number; connectTimeoutMs?: number; handshakeTimeoutMs?: number } = {},
) {
  const mux = new VsockMuxer({
    udsPath: uds,
    connectTimeoutMs: opts.connectTimeoutMs ?? 60_000,
    handshakeTimeoutMs: opts.handshakeTimeoutMs,
  });
  await mux.listen();
  cleanups.push(() => mux.close());
  const dev = new VsockDevice(CID, mux);
  const tb = virtioTestbed(dev);
  tb.driver.init(bit(VIRTIO_F_VERSION_1), 3);
  const rxq = tb.driver.queues[VSOCK_RX_QUEUE]!;
  const txq = tb.driver.queues[VSOCK_TX_QUEUE]!;
  const rxAddr = new Map<number, number>();
  const rxSize = opts.rxSize ?? VSOCK_HDR.size + 4096;
  const postRx = () => {
    const p = tb.driver.post(rxq, [{ writable: rxSize }]);
    rxAddr.set(p.head, p.addrs[0]!);
  };
  for (let i = 0; i < (opts.rxBuffers ?? 16); i++) postRx();
  tb.driver.notify(rxq);
  const received: { hdr: VsockHeader; payload: Buffer }[] = [];
  let fwdCnt = 0;
  const collect = () => {
    const used = tb.driver.takeUsed(rxq);
    for (const u of used) {
      const b = tb.driver.bytes(rxAddr.get(u.id)!, u.len);
      const hdr = decodeHeader(b);
      expect(hdr.len).toBe(u.len - VSOCK_HDR.size);
      received.push({ hdr, payload: Buffer.from(b.subarray(VSOCK_HDR.size)) });
      postRx();
    }
    if (used.length) tb.driver.notify(rxq);
  };
  const send = (h: Partial<VsockHeader> & { op: number; srcPort: number; dstPort: number }, payload = new Uint8Array(0)) => {
    const hdr = encodeHeader({
      srcCid: CID,
      dstCid: 2n,
      len: payload.length,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      flags: 0,
      bufAlloc: opts.bufAlloc ?? 65536,
      fwdCnt,
      ...h,
    });
    tb.driver.post(txq, [{ data: hdr }, ...(payload.length ? [{ data: payload }] : [])]);
    tb.driver.notify(txq);
    expect(tb.driver.takeUsed(txq)).toHaveLength(1);
    collect();
  };
  /** Waits (event loop turns) until a packet matching `pred` arrived; returns and removes it. */
  const expectPacket = async (pred: (p: { hdr: VsockHeader; payload: Buffer }) => boolean) => {
    for (;;) {
      collect();
      const i = received.findIndex(pred);
      if (i >= 0) return received.splice(i, 1)[0]!;
      await tick();
    }
  };
  const consumed = (n: number) => (fwdCnt += n);
  return { mux, dev, tb, send, expectPacket, received, collect, consumed };
}

function readUntil(s: net.Socket, pred: (all: string) => boolean): Promise<string> {
  let all = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      all += b.toString('latin1');
      if (pred(all)) {
        s.off('data', onData);
        resolve(all);
      }
    };
    s.on('data', onData);
    s.once('error', reject);
  });
}

async function hostConnect(port: number, extra = '') {
  const s = net.connect({ path: uds });
  cleanups.push(() => void s.destroy());
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write(`CONNECT ${port}\n${extra}`);
  return s;
}

describe('virtio-vsock with the unix-socket muxer', () => {
  it('exposes the guest CID in config space and refuses reserved CIDs', async () => {
    const g = await guest();
    const c = g.tb.driver.readConfig(0, 8);
    expect(new DataView(c.buffer).getBigUint64(0, true)).toBe(CID);
    expect(() => new VsockDevice(2n, new VsockMuxer({ udsPath: uds }))).toThrow(/CID/);
    expect(() => new VsockMuxer({ udsPath: `/tmp/${'x'.repeat(100)}` })).toThrow(/too long for a unix socket/);
  });

  it('host-initiated: CONNECT/REQUEST/RESPONSE/OK handshake, data both ways, guest close', async () => {
    const g = await guest();
    const s = await hostConnect(52, 'early');
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    expect(req.hdr).toMatchObject({
      srcCid: 2n,
      dstCid: CID,
      dstPort: 52,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      bufAlloc: CONN_BUF_ALLOC,
      fwdCnt: 0,
    });
    const local = req.hdr.srcPort;
    expect(local).toBeGreaterThanOrEqual(2 ** 30);
    const ok = readUntil(s, (a) => a.includes('\n'));
    g.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 52, dstPort: local });
    expect(await ok).toBe(`OK ${local}\n`);
    // bytes sent after the CONNECT line, before the guest answered, arrive first
    const early = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(early.payload.toString()).toBe('early');
    s.write('hello guest');
    const rw = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(rw.payload.toString()).toBe('hello guest');
    expect(rw.hdr).toMatchObject({ srcPort: local, dstPort: 52 });

    const got = readUntil(s, (a) => a.endsWith('world'));
    g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 52, dstPort: local }, new TextEncoder().encode('hello world'));
    expect(await got).toBe('hello world');

    // Linux close(): SHUTDOWN with both flags; the host sees EOF and the guest gets RST.
    const ended = new Promise<void>((r) => s.once('end', () => r()));
    g.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 52, dstPort: local, flags: VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND });
    await ended;
    await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST && p.hdr.dstPort === 52);
    expect(g.mux.connectionCount).toBe(0);
  });

  it('host-initiated: a guest RST refuses the connection and the host socket closes without OK', async () => {
    const g = await guest();
    const s = await hostConnect(99);
    let data = '';
    s.on('data', (b: Buffer) => (data += b.toString()));
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    g.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 99, dstPort: req.hdr.srcPort });
    await closed;
    expect(data).toBe('');
    expect(g.mux.connectionCount).toBe(0);
  });

  it('host-initiated: a malformed handshake closes the socket and the guest hears nothing', async () => {
    const g = await guest();
    for (const line of ['CONNECT x\n', 'HELLO 5\n', 'CONNECT 99999999999\n', 'C'.repeat(40)]) {
      const s = net.connect({ path: uds });
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => {});
      s.write(line);
      await closed;
    }
    g.collect();
    expect(g.received).toHaveLength(0);
  });

  it('guest-initiated: REQUEST connects to <uds>_<port>, data both ways, host EOF then guest SHUTDOWN ends with RST', async () => {
    const g = await guest();
    const accepted = new Promise<net.Socket>((resolve) => {
      const server = net.createServer({ allowHalfOpen: true }, resolve);
      server.listen(`${uds}_1024`);
      cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    });
    await new Promise((r) => setTimeout(r, 0));
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 5000, dstPort: 1024 });
    const host = await accepted;
    cleanups.push(() => void host.destroy());
    const resp = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RESPONSE);
    expect(resp.hdr).toMatchObject({ srcCid: 2n, dstCid: CID, srcPort: 1024, dstPort: 5000 });

    const got = readUntil(host, (a) => a === 'from guest');
    g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: 1024 }, new TextEncoder().encode('from guest'));
    expect(await got).toBe('from guest');
    host.write('from host');
    const rw = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(rw.payload.toString()).toBe('from host');
    expect(rw.hdr.fwdCnt).toBe(10); // what we forwarded to the host so far

    host.end(); // host half-closes: guest gets SHUTDOWN(SEND) and can still send
    const sd = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_SHUTDOWN);
    expect(sd.hdr.flags).toBe(VIRTIO_VSOCK_SHUTDOWN_SEND);
    const last = readUntil(host, (a) => a === 'bye');
    g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 5000, dstPort: 1024 }, new TextEncoder().encode('bye'));
    expect(await last).toBe('bye');
    const hostEnded = new Promise<void>((r) => host.once('end', () => r()));
    g.send({ op: VIRTIO_VSOCK_OP_SHUTDOWN, srcPort: 5000, dstPort: 1024, flags: VIRTIO_VSOCK_SHUTDOWN_SEND });
    await hostEnded;
    await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    expect(g.mux.connectionCount).toBe(0);
  });

  it('packets for the guest wait until it posts rx buffers', async () => {
    const g = await guest({ rxBuffers: 0 });
    await hostConnect(70);
    for (let i = 0; i < 5; i++) await tick();
    g.collect();
    expect(g.received).toHaveLength(0);
    const rxq = g.tb.driver.queues[VSOCK_RX_QUEUE]!;
    g.tb.driver.post(rxq, [{ writable: VSOCK_HDR.size }]); // header-only buffer: enough for a REQUEST
    const irq = g.tb.nextIrq();
    g.tb.driver.notify(rxq);
    await irq;
    const used = g.tb.driver.takeUsed(rxq);
    expect(used).toHaveLength(1);
    expect(used[0]!.len).toBe(VSOCK_HDR.size);
  });

  it('a broken rx ring found while serving host data sets DEVICE_NEEDS_RESET instead of throwing', async () => {
    const g = await guest({ rxBuffers: 0 });
    const rxq = g.tb.driver.queues[VSOCK_RX_QUEUE]!;
    g.tb.driver.pushAvail(rxq, 4000); // a head index past the queue
    const s = await hostConnect(71);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    await closed; // the muxer dropped every connection
    expect(g.tb.driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET).toBeTruthy();
    expect(g.mux.connectionCount).toBe(0);
  });

  it('host-initiated: a guest that never answers gets RST and the host socket is closed', async () => {
    const g = await guest({ connectTimeoutMs: 50 });
    const s = await hostConnect(72);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    await closed;
    const rst = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    expect(rst.hdr).toMatchObject({ srcPort: req.hdr.srcPort, dstPort: 72 });
    expect(g.mux.connectionCount).toBe(0);
  });

  it('a host connection that never sends its CONNECT line is closed', async () => {
    const g = await guest({ handshakeTimeoutMs: 50 });
    const s = net.connect({ path: uds });
    cleanups.push(() => void s.destroy());
    s.write('CONNECT 5'); // no newline, ever
    await new Promise<void>((r) => s.once('close', () => r()));
    g.collect();
    expect(g.received).toHaveLength(0);
  });

  it('guest-initiated: nobody listening -> RST', async () => {
    const g = await guest();
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 6000, dstPort: 7 });
    const rst = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    expect(rst.hdr).toMatchObject({ srcPort: 7, dstPort: 6000 });
    expect(g.mux.connectionCount).toBe(0);
  });

  it('credit: host data waits for guest credit, CREDIT_REQUEST/UPDATE both ways', async () => {
    const g = await guest({ bufAlloc: 8 });
    const s = await hostConnect(60);
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    const local = req.hdr.srcPort;
    const ok = readUntil(s, (a) => a.includes('\n'));
    g.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 60, dstPort: local });
    await ok;
    s.write('0123456789abcdefghij'); // 20 bytes, guest buffer holds 8
    const a = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(a.payload.toString()).toBe('01234567');
    await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_CREDIT_REQUEST);
    g.consumed(8);
    g.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 60, dstPort: local });
    const b = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(b.payload.toString()).toBe('89abcdef');
    g.consumed(8);
    g.send({ op: VIRTIO_VSOCK_OP_CREDIT_UPDATE, srcPort: 60, dstPort: local });
    const c = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RW);
    expect(c.payload.toString()).toBe('ghij');
    // the guest asks for our credit
    g.send({ op: VIRTIO_VSOCK_OP_CREDIT_REQUEST, srcPort: 60, dstPort: local });
    const upd = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    expect(upd.hdr).toMatchObject({ bufAlloc: CONN_BUF_ALLOC, fwdCnt: 0, srcPort: local, dstPort: 60 });
  });

  it('a guest sending past our credit is reset', async () => {
    const g = await guest();
    const s = await hostConnect(61);
    s.pause(); // the host reads nothing: once its kernel buffer is full, nothing more is consumed
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    const local = req.hdr.srcPort;
    g.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 61, dstPort: local });
    // The guest ignores credit and keeps sending 64 KiB packets (4 MiB at most, far more than a
    // unix socket buffers plus our 256 KiB buf_alloc): the muxer must reset it.
    const chunk = new Uint8Array(65536);
    let reset = false;
    for (let i = 0; i < 64 && !reset; i++) {
      g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 61, dstPort: local }, chunk);
      g.collect();
      reset = g.received.some((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    }
    expect(reset).toBe(true);
    expect(g.mux.connectionCount).toBe(0);
  });

  it('packets for no connection get RST; spoofed source CIDs are dropped', async () => {
    const g = await guest();
    g.send({ op: VIRTIO_VSOCK_OP_RW, srcPort: 1, dstPort: 2 }, Uint8Array.of(1));
    const rst = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    expect(rst.hdr).toMatchObject({ srcPort: 2, dstPort: 1, dstCid: CID });
    g.send({ op: VIRTIO_VSOCK_OP_RST, srcPort: 1, dstPort: 2 }); // never an RST for an RST
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2, srcCid: 7n });
    expect(g.dev.stats.dropped).toBe(1);
    g.send({ op: VIRTIO_VSOCK_OP_REQUEST, srcPort: 1, dstPort: 2, dstCid: 9n }); // not the host
    await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_RST);
    g.collect();
    expect(g.received).toHaveLength(0);
  });

  it('a device reset (guest reboot) closes every host socket', async () => {
    const g = await guest();
    const s = await hostConnect(62);
    const req = await g.expectPacket((p) => p.hdr.op === VIRTIO_VSOCK_OP_REQUEST);
    const ok = readUntil(s, (a) => a.includes('\n'));
    g.send({ op: VIRTIO_VSOCK_OP_RESPONSE, srcPort: 62, dstPort: req.hdr.srcPort });
    await ok;
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    g.tb.driver.w32(VIRTIO_MMIO_STATUS, 0);
    await closed;
    expect(g.mux.connectionCount).toBe(0);
  });
});
