/**
 * virtio-net (virtio 1.2 §5.1, "Network Device"): one receive and one transmit queue, frames
 * to and from a `FramePort` (a tap device in the container's network namespace, net-tap.ts).
 * No offloads: the guest checksums and segments everything itself, so every frame is a plain
 * Ethernet frame of at most the MTU and the header carries nothing but num_buffers.
 *
 * Features offered: VIRTIO_NET_F_MAC (the config space holds the container's MAC). Not
 * offered: CSUM/GUEST_CSUM and the TSO/UFO family (a tap without IFF_VNET_HDR gets finished
 * checksums and segments from the kernel), MRG_RXBUF (without it and without GUEST_TSO Linux
 * posts receive buffers of a full frame each), CTRL_VQ, STATUS (the link is always up), MQ.
 * With VERSION_1 the header is `struct virtio_net_hdr_v1`, 12 bytes, whatever MRG_RXBUF says
 * (§5.1.6: num_buffers is always there; the device sets it to 1 without MRG_RXBUF).
 *
 * Flow control: a received frame is taken from the port only when the guest has posted a
 * receive buffer for it. With none posted, the port's watch is dropped (the frames wait in the
 * tap's queue, which drops on overflow as a NIC does) and resumed by the next receive kick;
 * the ring's avail_event is left at the next index, so the driver kicks as soon as it posts.
 */
import { ChainBuffers, VirtqueueError } from './virtqueue.js';
import { bit, serveQueue, type ActivateContext, type VirtioDevice } from './mmio.js';
import { InvalidParameterError } from '../../../errors.js';

export const VIRTIO_ID_NET = 1;

// Feature bits (virtio_net.h).
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_MQ = 22;

/** struct virtio_net_hdr_v1: u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size, le16 csum_start, le16 csum_offset, le16 num_buffers. */
export const VIRTIO_NET_HDR = { size: 12, flags: 0, gso_type: 1, hdr_len: 2, gso_size: 4, csum_start: 6, csum_offset: 8, num_buffers: 10 } as const;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
/** struct virtio_net_config: u8 mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu. */
export const VIRTIO_NET_CONFIG = { size: 12, mac: 0, status: 6, max_virtqueue_pairs: 8, mtu: 10 } as const;

export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;
export const NET_QUEUE_SIZE = 256;
/** Largest frame either way: 1500 MTU + Ethernet header + a VLAN tag, with room to spare. */
export const NET_MAX_FRAME = 1536 + 64;
/** Frames moved per wake-up at most (the event loop gets its turn; the tap's watch fires again). */
export const NET_RX_BURST = 256;
const ETH_HLEN = 14;

/** Where frames go and come from (the tap; a socketpair in tests). */
export interface FramePort {
  /** one frame out; false when the port dropped it */
  send(frame: Uint8Array): boolean;
  /** the next waiting frame into `buf`: its length, or -1 when none waits */
  receive(buf: Uint8Array): number;
  /**
   * Calls `onReadable` (on this thread) whenever a frame may be waiting, until `watch(undefined)`.
   * The port keeps calling while frames wait, so a handler may stop short of draining it.
   */
  watch(onReadable: (() => void) | undefined): void;
  close(): void;
}

export interface NetStats {
  rxFrames: number;
  rxBytes: number;
  /** frames that fit no posted buffer or were shorter than an Ethernet header */
  rxDropped: number;
  txFrames: number;
  txBytes: number;
  /** chains refused (malformed, no header, oversized) or frames the port dropped */
  txDropped: number;
}

/** "02:42:ac:11:00:02" as 6 bytes; throws on anything else. */
export function parseMac(mac: string): Uint8Array {
  const m = /^([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})$/i.exec(mac);
  if (!m) throw new InvalidParameterError(`virtio-net: invalid MAC address ${JSON.stringify(mac)}`);
  return Uint8Array.from(m.slice(1, 7).map((x) => Number.parseInt(x, 16)));
}

export class NetDevice implements VirtioDevice {
  readonly deviceId = VIRTIO_ID_NET;
  readonly features = bit(VIRTIO_NET_F_MAC);
  readonly queueMaxSizes = [NET_QUEUE_SIZE, NET_QUEUE_SIZE];
  readonly configSize = VIRTIO_NET_CONFIG.size;
  readonly stats: NetStats = { rxFrames: 0, rxBytes: 0, rxDropped: 0, txFrames: 0, txBytes: 0, txDropped: 0 };
  /** the NIC's MAC, "02:42:..." (QEMU's virtio-net is given it too) */
  readonly mac: string;
  private readonly config = new Uint8Array(VIRTIO_NET_CONFIG.size);
  private readonly frame = new Uint8Array(NET_MAX_FRAME);
  private readonly header = new Uint8Array(VIRTIO_NET_HDR.size);
  private ctx?: ActivateContext;
  /** the port is watched (false: no receive buffer was posted, waiting for a kick) */
  private watching = false;

  constructor(private readonly o: { port: FramePort; mac: string; log?: (line: string) => void }) {
    this.mac = o.mac.toLowerCase();
    this.config.set(parseMac(o.mac), VIRTIO_NET_CONFIG.mac);
    // num_buffers is 1 on every frame without MRG_RXBUF; the rest of the header stays zero
    new DataView(this.header.buffer).setUint16(VIRTIO_NET_HDR.num_buffers, 1, true);
  }

  readConfig(offset: number, data: Uint8Array): void {
    data.set(this.config.subarray(offset, offset + data.length));
  }

  writeConfig(): void {
    // the MAC is driver-writable only with VIRTIO_NET_F_CTRL_MAC_ADDR (legacy), not offered
    this.o.log?.('virtio-net: config write ignored');
  }

  activate(ctx: ActivateContext): void {
    this.ctx = ctx;
    this.watch(true);
  }

  reset(): void {
    this.ctx = undefined;
    this.watch(false);
  }

  notify(index: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (index === NET_TX_QUEUE) {
      serveQueue(ctx, NET_TX_QUEUE, (buf) => this.transmit(buf), (e) => {
        this.stats.txDropped++;
        this.o.log?.(`virtio-net: tx: ${e.message}`);
      });
    } else if (index === NET_RX_QUEUE) {
      // new receive buffers: frames may flow again
      this.watch(true);
      this.receive();
    }
  }

  /** The port and the device are done with each other (the VM has ended). */
  close(): void {
    this.reset();
    this.o.port.close();
  }

  private watch(on: boolean): void {
    if (on === this.watching) return;
    this.watching = on;
    this.o.port.watch(on ? () => this.onReadable() : undefined);
  }

  /** The port's wake-up: outside any kick, so a ring that cannot be trusted is reported here. */
  private onReadable(): void {
    const ctx = this.ctx;
    try {
      this.receive();
    } catch (e) {
      if (!(e instanceof VirtqueueError) || !ctx) throw e;
      this.watch(false);
      ctx.needsReset(`virtio-net: rx: ${e.message}`);
    }
  }

  private transmit(buf: ChainBuffers): number {
    const len = buf.readableLength - VIRTIO_NET_HDR.size;
    if (len < ETH_HLEN || len > NET_MAX_FRAME) {
      this.stats.txDropped++;
      this.o.log?.(`virtio-net: tx: a chain of ${buf.readableLength} bytes is not a header and a frame`);
      return 0;
    }
    // no offloads were offered: a header asking for one is a driver we do not understand
    buf.read(0, this.header);
    if (this.header[VIRTIO_NET_HDR.gso_type] !== VIRTIO_NET_HDR_GSO_NONE || this.header[VIRTIO_NET_HDR.flags]! & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      this.stats.txDropped++;
      this.o.log?.('virtio-net: tx: a header asks for an offload that was not negotiated');
      this.resetHeader();
      return 0;
    }
    const f = this.frame.subarray(0, len);
    buf.read(VIRTIO_NET_HDR.size, f);
    if (this.o.port.send(f)) {
      this.stats.txFrames++;
      this.stats.txBytes += len;
    } else {
      this.stats.txDropped++;
    }
    return 0;
  }

  private resetHeader(): void {
    this.header.fill(0);
    new DataView(this.header.buffer).setUint16(VIRTIO_NET_HDR.num_buffers, 1, true);
  }

  /** Moves waiting frames into posted receive buffers, at most NET_RX_BURST per call. */
  private receive(): void {
    const ctx = this.ctx;
    if (!ctx) return;
    const q = ctx.queues[NET_RX_QUEUE]!;
    let used = 0;
    try {
      for (let n = 0; n < NET_RX_BURST; n++) {
        if (q.pending(ctx.memory) === 0) {
          // nowhere to put a frame: stop watching until the driver posts (its kick resumes us)
          this.watch(false);
          // a buffer posted between the check and the unwatch came with a kick we may have
          // taken before the unwatch: look once more
          if (q.pending(ctx.memory) === 0) break;
          this.watch(true);
        }
        const len = this.o.port.receive(this.frame);
        if (len < 0) break;
        if (len < ETH_HLEN) {
          this.stats.rxDropped++;
          continue;
        }
        // the frame goes into the first well-formed chain; malformed ones are completed empty
        for (let c = q.pop(ctx.memory); c; c = q.pop(ctx.memory)) {
          used++;
          if (c.error) {
            this.o.log?.(`virtio-net: rx: ${c.error.message}`);
            q.addUsed(ctx.memory, c.head, 0);
            continue;
          }
          const buf = new ChainBuffers(ctx.memory, c.descriptors);
          if (buf.readableLength > 0 || buf.writableLength < VIRTIO_NET_HDR.size + len) {
            // a receive chain is device-writable only and holds a header and a whole frame
            this.stats.rxDropped++;
            this.o.log?.(`virtio-net: rx: a chain of ${buf.writableLength} writable bytes for a ${len}-byte frame`);
            q.addUsed(ctx.memory, c.head, 0);
            break;
          }
          buf.write(0, this.header);
          buf.write(VIRTIO_NET_HDR.size, this.frame.subarray(0, len));
          q.addUsed(ctx.memory, c.head, VIRTIO_NET_HDR.size + len);
          this.stats.rxFrames++;
          this.stats.rxBytes += len;
          break;
        }
      }
    } finally {
      if (used) ctx.signalUsed(NET_RX_QUEUE);
    }
  }
}
