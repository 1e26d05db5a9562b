/**
 * virtio-net (virtio 1.2 §5.1, "Network Device"): one receive and one transmit queue, packets
 * to and from a `FramePort` (a tap device in the container's network namespace, net-tap.ts).
 * A packet is a `virtio_net_hdr_v1` (12 bytes: with VERSION_1 it is that header whatever
 * MRG_RXBUF says, §5.1.6) and an Ethernet frame, the layout of a virtio-net buffer and of a tap
 * opened with IFF_VNET_HDR, so packets pass through unchanged but for checks.
 *
 * Features offered: VIRTIO_NET_F_MAC (the config space holds the container's MAC), and the
 * checksum and TSO offloads both ways (CSUM, GUEST_CSUM, HOST_TSO4/6, GUEST_TSO4/6): the
 * guest's stack under TCG is the slow part, and 64 KiB segments cost it a fraction of 1500-byte
 * frames. The tap is told (TUNSETOFFLOAD) which of them the driver accepted, so it never hands
 * over what the guest cannot take. Not offered: MRG_RXBUF (Linux then posts receive buffers of
 * a whole 64 KiB segment with GUEST_TSO, of a whole frame without), ECN and UFO, CTRL_VQ,
 * STATUS (the link is always up), MQ. num_buffers is 1 on every received packet.
 *
 * Flow control: a received packet is taken from the port only when the guest has posted a
 * receive buffer for it. With none posted, the port's watch is dropped (packets wait in the
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
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_MQ = 22;

/** struct virtio_net_hdr_v1: u8 flags, u8 gso_type, le16 hdr_len, le16 gso_size, le16 csum_start, le16 csum_offset, le16 num_buffers. */
export const VIRTIO_NET_HDR = {
  size: 12,
  flags: 0,
  gso_type: 1,
  hdr_len: 2,
  gso_size: 4,
  csum_start: 6,
  csum_offset: 8,
  num_buffers: 10,
} as const;
export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
/** struct virtio_net_config: u8 mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu. */
export const VIRTIO_NET_CONFIG = { size: 12, mac: 0, status: 6, max_virtqueue_pairs: 8, mtu: 10 } as const;

export const NET_RX_QUEUE = 0;
export const NET_TX_QUEUE = 1;
export const NET_QUEUE_SIZE = 256;
/** Largest frame either way: a 64 KiB TSO segment and its Ethernet header (and a VLAN tag). */
export const NET_MAX_FRAME = 65536 + 18;
/** Packets moved per wake-up at most (the event loop gets its turn; the tap's watch fires again). */
export const NET_RX_BURST = 256;
const ETH_HLEN = 14;

/** The offloads the guest accepts on what it receives (the tap's TUNSETOFFLOAD). */
export interface RxOffloads {
  csum: boolean;
  tso4: boolean;
  tso6: boolean;
}

/** Where packets (header + frame) go and come from: the tap; memory in tests. */
export interface FramePort {
  /** one packet out; false when the port dropped it */
  send(packet: Uint8Array): boolean;
  /** the next waiting packet into `buf`: its length, or -1 when none waits */
  receive(buf: Uint8Array): number;
  /** what received packets may leave to the guest (none until a driver accepts some) */
  setOffloads(o: RxOffloads): void;
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
  readonly features =
    bit(VIRTIO_NET_F_MAC) |
    bit(VIRTIO_NET_F_CSUM) |
    bit(VIRTIO_NET_F_GUEST_CSUM) |
    bit(VIRTIO_NET_F_GUEST_TSO4) |
    bit(VIRTIO_NET_F_GUEST_TSO6) |
    bit(VIRTIO_NET_F_HOST_TSO4) |
    bit(VIRTIO_NET_F_HOST_TSO6);
  readonly queueMaxSizes = [NET_QUEUE_SIZE, NET_QUEUE_SIZE];
  readonly configSize = VIRTIO_NET_CONFIG.size;
  readonly stats: NetStats = { rxFrames: 0, rxBytes: 0, rxDropped: 0, txFrames: 0, txBytes: 0, txDropped: 0 };
  /** the NIC's MAC, "02:42:..." (QEMU's virtio-net is given it too) */
  readonly mac: string;
  private readonly config = new Uint8Array(VIRTIO_NET_CONFIG.size);
  private readonly packet = new Uint8Array(VIRTIO_NET_HDR.size + NET_MAX_FRAME);
  private ctx?: ActivateContext;
  /** what the driver accepted */
  private acked = 0n;
  /** the port is watched (false: no receive buffer was posted, waiting for a kick) */
  private watching = false;

  constructor(private readonly o: { port: FramePort; mac: string; log?: (line: string) => void }) {
    this.mac = o.mac.toLowerCase();
    this.config.set(parseMac(o.mac), VIRTIO_NET_CONFIG.mac);
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
    this.acked = ctx.features;
    const has = (f: number) => (ctx.features & bit(f)) !== 0n;
    // the spec ties GUEST_TSO* to GUEST_CSUM; the tap's TSO needs its CSUM likewise
    const csum = has(VIRTIO_NET_F_GUEST_CSUM);
    this.o.port.setOffloads({ csum, tso4: csum && has(VIRTIO_NET_F_GUEST_TSO4), tso6: csum && has(VIRTIO_NET_F_GUEST_TSO6) });
    this.watch(true);
  }

  reset(): void {
    this.ctx = undefined;
    this.acked = 0n;
    this.watch(false);
  }

  notify(index: number): void {
    const ctx = this.ctx;
    if (!ctx) return;
    if (index === NET_TX_QUEUE) {
      serveQueue(
        ctx,
        NET_TX_QUEUE,
        (buf) => this.transmit(buf),
        (e) => {
          this.stats.txDropped++;
          this.o.log?.(`virtio-net: tx: ${e.message}`);
        },
      );
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
    const len = buf.readableLength;
    if (len < VIRTIO_NET_HDR.size + ETH_HLEN || len > this.packet.length) {
      this.stats.txDropped++;
      this.o.log?.(`virtio-net: tx: a chain of ${len} bytes is not a header and a frame`);
      return 0;
    }
    const p = this.packet.subarray(0, len);
    buf.read(0, p);
    const why = this.refusedHeader(p);
    if (why) {
      this.stats.txDropped++;
      this.o.log?.(`virtio-net: tx: ${why}`);
      return 0;
    }
    if (this.o.port.send(p)) {
      this.stats.txFrames++;
      this.stats.txBytes += len - VIRTIO_NET_HDR.size;
    } else {
      this.stats.txDropped++;
    }
    return 0;
  }

  /** Why the driver's header asks for what was not negotiated (the tap would refuse it or worse), or null. */
  private refusedHeader(p: Uint8Array): string | null {
    const has = (f: number) => (this.acked & bit(f)) !== 0n;
    if (p[VIRTIO_NET_HDR.flags]! & VIRTIO_NET_HDR_F_NEEDS_CSUM && !has(VIRTIO_NET_F_CSUM))
      return 'a partial checksum without VIRTIO_NET_F_CSUM';
    if (p[VIRTIO_NET_HDR.flags]! & ~(VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID))
      return `header flags 0x${p[VIRTIO_NET_HDR.flags]!.toString(16)}`;
    switch (p[VIRTIO_NET_HDR.gso_type]) {
      case VIRTIO_NET_HDR_GSO_NONE:
        return null;
      case VIRTIO_NET_HDR_GSO_TCPV4:
        return has(VIRTIO_NET_F_HOST_TSO4) ? null : 'a TSOv4 segment without VIRTIO_NET_F_HOST_TSO4';
      case VIRTIO_NET_HDR_GSO_TCPV6:
        return has(VIRTIO_NET_F_HOST_TSO6) ? null : 'a TSOv6 segment without VIRTIO_NET_F_HOST_TSO6';
      default:
        return `gso_type ${p[VIRTIO_NET_HDR.gso_type]} was not negotiated`;
    }
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
        const len = this.o.port.receive(this.packet);
        if (len < 0) break;
        if (len < VIRTIO_NET_HDR.size + ETH_HLEN) {
          this.stats.rxDropped++;
          continue;
        }
        // the tap leaves num_buffers alone (its header is the 10-byte legacy one plus room)
        this.packet[VIRTIO_NET_HDR.num_buffers] = 1;
        this.packet[VIRTIO_NET_HDR.num_buffers + 1] = 0;
        // the packet goes into the first well-formed chain; malformed ones are completed empty
        for (let c = q.pop(ctx.memory); c; c = q.pop(ctx.memory)) {
          used++;
          if (c.error) {
            this.o.log?.(`virtio-net: rx: ${c.error.message}`);
            q.addUsed(ctx.memory, c.head, 0);
            continue;
          }
          const buf = new ChainBuffers(ctx.memory, c.descriptors);
          if (buf.readableLength > 0 || buf.writableLength < len) {
            // a receive chain is device-writable only and holds a header and a whole frame
            this.stats.rxDropped++;
            this.o.log?.(`virtio-net: rx: a chain of ${buf.writableLength} writable bytes for a ${len}-byte packet`);
            q.addUsed(ctx.memory, c.head, 0);
            break;
          }
          buf.write(0, this.packet.subarray(0, len));
          q.addUsed(ctx.memory, c.head, len);
          this.stats.rxFrames++;
          this.stats.rxBytes += len - VIRTIO_NET_HDR.size;
          break;
        }
      }
    } finally {
      if (used) ctx.signalUsed(NET_RX_QUEUE);
    }
  }
}
