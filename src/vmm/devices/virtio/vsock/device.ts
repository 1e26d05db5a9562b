/**
 * The virtio-vsock device (virtio 1.2 §5.10): queues rx (0), tx (1), event (2); config space
 * is the guest's CID. The device only moves packets between the queues and a backend (the
 * unix-socket muxer); connection state lives in the backend.
 */
import { ChainBuffers, VirtqueueError } from '../virtqueue.js';
import { VIRTIO_ID_VSOCK, type ActivateContext, type VirtioDevice } from '../mmio.js';
import { InvalidParameterError } from '../../../../errors.js';
import {
  decodeHeader,
  encodeHeader,
  VIRTIO_VSOCK_EVENT_TRANSPORT_RESET,
  VSOCK_EVENT_SIZE,
  VSOCK_CONFIG_SIZE,
  VSOCK_HDR,
  VSOCK_MAX_PKT_BUF_SIZE,
  VMADDR_CID_HOST,
  type VsockHeader,
  type VsockPacket,
} from './packet.js';

export const VSOCK_RX_QUEUE = 0;
export const VSOCK_TX_QUEUE = 1;
export const VSOCK_EVENT_QUEUE = 2;
export const VSOCK_QUEUE_SIZE = 256;

/** The host side of the device. */
export interface VsockBackend {
  /** called once at construction: `kick()` when the backend has packets for the guest */
  attach(kick: () => void, guestCid: bigint): void;
  /** a packet the guest sent (header validated for src_cid; payload is a copy) */
  fromGuest(hdr: VsockHeader, payload: Uint8Array): void;
  /** the next packet for the guest with at most `maxPayload` payload bytes, if any */
  toGuest(maxPayload: number): VsockPacket | undefined;
  hasPending(): boolean;
  /** the guest reset the device: every connection is gone */
  reset(): void;
}

export class VsockDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_VSOCK;
  /** stream sockets only: no feature bits (VIRTIO_VSOCK_F_SEQPACKET not offered) */
  readonly features = 0n;
  readonly queueMaxSizes = [VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE, VSOCK_QUEUE_SIZE];
  readonly configSize = VSOCK_CONFIG_SIZE;
  readonly stats = { rxPackets: 0, txPackets: 0, dropped: 0 };
  private ctx?: ActivateContext;
  private busy = false;
  private kicked = false;
  /** a queue could not be trusted: nothing runs until the driver resets the device */
  private broken = false;

  constructor(
    readonly guestCid: bigint,
    private readonly backend: VsockBackend,
    private readonly log?: (line: string) => void,
  ) {
    // CIDs 0-2 are reserved (hypervisor, local, host); u32 ~0 is VMADDR_CID_ANY.
    if (guestCid <= BigInt(VMADDR_CID_HOST) || guestCid >= 0xffff_ffffn)
      throw new InvalidParameterError(`vsock guest CID ${guestCid}: must be 3..2^32-2`);
    backend.attach(() => this.kick(), guestCid);
  }

  readConfig(offset: number, data: Uint8Array): void {
    const c = new Uint8Array(VSOCK_CONFIG_SIZE);
    new DataView(c.buffer).setBigUint64(0, this.guestCid, true);
    data.set(c.subarray(offset, offset + data.length));
  }
  writeConfig(): void {
    this.log?.('virtio-vsock: config write ignored (guest_cid is read-only)');
  }

  activate(ctx: ActivateContext): void {
    this.ctx = ctx;
    this.broken = false;
  }

  reset(): void {
    this.ctx = undefined;
    this.broken = false;
    this.backend.reset();
  }

  notify(index: number): void {
    if (!this.ctx) return;
    if (index === VSOCK_TX_QUEUE) this.run(() => this.processTx());
    else if (index === VSOCK_RX_QUEUE) this.run(() => {});
    // event queue: the driver only posts buffers we fill on a transport reset
  }

  /** The backend has packets for the guest. */
  kick(): void {
    if (this.busy) {
      this.kicked = true;
      return;
    }
    if (this.ctx) this.run(() => {});
  }

  /**
   * Runs queue work, then fills rx buffers until the backend has nothing more. Also entered
   * from socket events (kick), outside the transport's notify: a broken ring is reported here
   * as DEVICE_NEEDS_RESET rather than thrown into the event loop.
   */
  private run(work: () => void): void {
    if (this.broken) return;
    this.busy = true;
    try {
      work();
      do {
        this.kicked = false;
        this.processRx();
      } while (this.kicked);
    } catch (e) {
      if (!(e instanceof VirtqueueError)) throw e;
      this.broken = true;
      this.backend.reset();
      this.ctx?.needsReset(e.message);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Tells the guest that every connection is gone (VIRTIO_VSOCK_EVENT_TRANSPORT_RESET), as
   * after a snapshot restore: the host sockets did not survive. False when the driver has no
   * event buffer posted, the device is not active, or its event queue is not ours (vhost-user).
   */
  sendTransportReset(): boolean {
    const ctx = this.ctx;
    if (!ctx) return false;
    this.backend.reset();
    // Served over vhost-user the event queue stays in QEMU: only rx and tx are ours.
    const q = ctx.queues[VSOCK_EVENT_QUEUE];
    if (!q) return false;
    const c = q.pop(ctx.memory);
    if (!c) return false;
    let len = 0;
    if (c.error) this.drop(c.error.message);
    else {
      const buf = new ChainBuffers(ctx.memory, c.descriptors);
      if (buf.writableLength >= VSOCK_EVENT_SIZE) {
        const ev = new Uint8Array(VSOCK_EVENT_SIZE);
        new DataView(ev.buffer).setUint32(0, VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, true);
        len = buf.write(0, ev);
      } else this.drop(`event buffer of ${buf.writableLength} bytes`);
    }
    q.addUsed(ctx.memory, c.head, len);
    ctx.signalUsed(VSOCK_EVENT_QUEUE);
    return len === VSOCK_EVENT_SIZE;
  }

  private processTx(): void {
    const ctx = this.ctx!;
    const q = ctx.queues[VSOCK_TX_QUEUE]!;
    let done = 0;
    for (let c = q.pop(ctx.memory); c; c = q.pop(ctx.memory)) {
      done++;
      q.addUsed(ctx.memory, c.head, 0);
      if (c.error) {
        this.drop(c.error.message);
        continue;
      }
      const buf = new ChainBuffers(ctx.memory, c.descriptors);
      if (buf.readableLength < VSOCK_HDR.size) {
        this.drop(`tx packet of ${buf.readableLength} bytes`);
        continue;
      }
      const h = new Uint8Array(VSOCK_HDR.size);
      buf.read(0, h);
      const hdr = decodeHeader(h);
      if (hdr.len > VSOCK_MAX_PKT_BUF_SIZE || hdr.len > buf.readableLength - VSOCK_HDR.size) {
        this.drop(`tx packet claims ${hdr.len} payload bytes, chain holds ${buf.readableLength - VSOCK_HDR.size}`);
        continue;
      }
      if (hdr.srcCid !== this.guestCid) {
        this.drop(`tx packet from CID ${hdr.srcCid}, the guest is ${this.guestCid}`);
        continue;
      }
      const payload = new Uint8Array(hdr.len);
      buf.read(VSOCK_HDR.size, payload);
      this.stats.txPackets++;
      this.backend.fromGuest(hdr, payload);
    }
    if (done) ctx.signalUsed(VSOCK_TX_QUEUE);
  }

  private processRx(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[VSOCK_RX_QUEUE]!;
    let done = 0;
    while (this.backend.hasPending() && q.pending(ctx.memory) > 0) {
      const c = q.pop(ctx.memory)!;
      done++;
      if (c.error) {
        this.drop(c.error.message);
        q.addUsed(ctx.memory, c.head, 0);
        continue;
      }
      const buf = new ChainBuffers(ctx.memory, c.descriptors);
      if (buf.writableLength < VSOCK_HDR.size) {
        this.drop(`rx buffer of ${buf.writableLength} bytes`);
        q.addUsed(ctx.memory, c.head, 0);
        continue;
      }
      const pkt = this.backend.toGuest(Math.min(buf.writableLength - VSOCK_HDR.size, VSOCK_MAX_PKT_BUF_SIZE));
      if (!pkt) {
        // hasPending() promised a packet: give the buffer back empty rather than leak it.
        q.addUsed(ctx.memory, c.head, 0);
        break;
      }
      const len = pkt.payload?.length ?? 0;
      buf.write(0, encodeHeader({ ...pkt.hdr, len }));
      if (len) buf.write(VSOCK_HDR.size, pkt.payload!);
      q.addUsed(ctx.memory, c.head, VSOCK_HDR.size + len);
      this.stats.rxPackets++;
    }
    if (done) ctx.signalUsed(VSOCK_RX_QUEUE);
  }

  private drop(why: string): void {
    this.stats.dropped++;
    this.log?.(`virtio-vsock: dropped: ${why}`);
  }
}
