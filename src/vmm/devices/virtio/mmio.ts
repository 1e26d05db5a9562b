/**
 * The virtio-mmio transport, version 2 ("modern", virtio 1.2 §4.2.2): the register file of
 * one device window as a state machine. It knows nothing of what the device does: it
 * negotiates features, holds the queue registers, walks the device-status state machine and
 * hands the device its queues at DRIVER_OK. A device is a `VirtioDevice`.
 *
 * Invalid driver actions (out-of-order status, features not offered, queue registers written
 * after FEATURES_OK was refused or after DRIVER_OK) are ignored and reported through `log`,
 * as the spec leaves the device's reaction open; a device that cannot go on sets
 * DEVICE_NEEDS_RESET and raises a configuration-change interrupt.
 */
import type { BusDevice } from '../bus.js';
import type { GuestRam } from '../../memory.js';
import { FormatError } from '../../../errors.js';
import {
  ChainBuffers,
  Virtqueue,
  VirtqueueError,
  type VirtqueueState,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
} from './virtqueue.js';

/** Register offsets (virtio_mmio.h). */
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

/** "virt" little-endian. */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
export const VIRTIO_MMIO_VERSION_2 = 2;
/** VendorID: "tvm" in ASCII, little-endian (the spec leaves vendor ids to the implementer). */
export const TVM_VENDOR_ID = 0x006d7674;

export const VIRTIO_MMIO_INT_VRING = 1;
export const VIRTIO_MMIO_INT_CONFIG = 2;

/** Device status bits (virtio_config.h). */
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

/** Device type ids (virtio_ids.h). */
export const VIRTIO_ID_BLOCK = 2;
export const VIRTIO_ID_RNG = 4;
export const VIRTIO_ID_VSOCK = 19;

export const bit = (n: number): bigint => 1n << BigInt(n);

/** What a device gets at DRIVER_OK. */
export interface ActivateContext {
  memory: GuestRam;
  queues: readonly Virtqueue[];
  /** the features the driver accepted */
  features: bigint;
  /** marks used buffers on the queue (if the driver wants an interrupt) and raises the IRQ */
  signalUsed: (queue: number) => void;
  /** the device cannot go on: DEVICE_NEEDS_RESET + configuration interrupt */
  needsReset: (why: string) => void;
}

/**
 * Serves every available chain of one queue: a chain that failed validation is completed with
 * length 0 (after `refused`), a valid one with the byte count `handle` wrote into it; one
 * interrupt at the end if anything was used.
 */
export function serveQueue(ctx: ActivateContext, index: number, handle: (buf: ChainBuffers) => number, refused: (e: Error) => void): void {
  const q = ctx.queues[index]!;
  let done = 0;
  for (let c = q.pop(ctx.memory); c; c = q.pop(ctx.memory)) {
    done++;
    if (c.error) {
      refused(c.error);
      q.addUsed(ctx.memory, c.head, 0);
    } else {
      q.addUsed(ctx.memory, c.head, handle(new ChainBuffers(ctx.memory, c.descriptors)));
    }
  }
  if (done) ctx.signalUsed(index);
}

export interface VirtioDevice {
  readonly deviceId: number;
  /** features offered, VIRTIO_F_VERSION_1 included by the transport */
  readonly features: bigint;
  /** one entry per queue: its maximum size */
  readonly queueMaxSizes: readonly number[];
  readonly configSize: number;
  readConfig(offset: number, data: Uint8Array): void;
  writeConfig(offset: number, data: Uint8Array): void;
  activate(ctx: ActivateContext): void;
  /** the driver notified queue `index` (QueueNotify or its ioeventfd) */
  notify(index: number): void;
  /** back to the state before activate (status written 0) */
  reset(): void;
}

/** The transport as a plain, versioned record (snapshots); device state is the device's own. */
export interface MmioTransportState {
  version: 1;
  deviceId: number;
  status: number;
  interruptStatus: number;
  configGeneration: number;
  /** hex */
  driverFeatures: string;
  deviceFeaturesSel: number;
  driverFeaturesSel: number;
  queueSel: number;
  queues: VirtqueueState[];
}

export interface MmioTransportOptions {
  memory: GuestRam;
  raiseIrq: () => void;
  log?: (line: string) => void;
}

/** Transport-level features every device gets. */
const TRANSPORT_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);

/** rejected driver actions kept for diagnostics */
const MAX_REJECTED_KEPT = 64;

export class MmioTransport implements BusDevice {
  readonly queues: Virtqueue[];
  readonly offered: bigint;
  status = 0;
  interruptStatus = 0;
  configGeneration = 0;
  driverFeatures = 0n;
  private deviceFeaturesSel = 0;
  private driverFeaturesSel = 0;
  private queueSel = 0;
  private activated = false;
  /**
   * the last ignored driver actions, for tests and diagnostics: bounded, since a guest can
   * repeat a bad write forever (rejectedTotal counts them all)
   */
  readonly rejected: string[] = [];
  rejectedTotal = 0;

  constructor(
    readonly device: VirtioDevice,
    private readonly opts: MmioTransportOptions,
  ) {
    this.queues = device.queueMaxSizes.map((n) => new Virtqueue(n));
    this.offered = device.features | TRANSPORT_FEATURES;
  }

  get isActive(): boolean {
    return this.activated;
  }

  private reject(what: string): void {
    this.rejectedTotal++;
    this.rejected.push(what);
    if (this.rejected.length > MAX_REJECTED_KEPT) this.rejected.splice(0, this.rejected.length - MAX_REJECTED_KEPT);
    // the log is bounded too: the first ones, then every power of two
    const n = this.rejectedTotal;
    if (n <= MAX_REJECTED_KEPT || (n & (n - 1)) === 0)
      this.opts.log?.(`virtio-mmio (device ${this.device.deviceId}): ${what}${n > MAX_REJECTED_KEPT ? ` (${n} rejected so far)` : ''}`);
  }

  private has(s: number): boolean {
    return (this.status & s) === s;
  }

  private get queue(): Virtqueue | undefined {
    return this.queues[this.queueSel];
  }

  /** Queue registers may be written between FEATURES_OK and DRIVER_OK, on a queue not ready. */
  private queueWritable(reg: string): Virtqueue | undefined {
    const q = this.queue;
    if (!q) return (this.reject(`${reg} for queue ${this.queueSel}, which does not exist`), undefined);
    if (!this.has(VIRTIO_CONFIG_S_FEATURES_OK) || this.has(VIRTIO_CONFIG_S_DRIVER_OK) || this.status & VIRTIO_CONFIG_S_FAILED)
      return (this.reject(`${reg} in status 0x${this.status.toString(16)}`), undefined);
    if (q.ready) return (this.reject(`${reg} for queue ${this.queueSel} while it is ready`), undefined);
    return q;
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      if (off + data.length <= this.device.configSize) this.device.readConfig(off, data);
      else this.reject(`config read of ${data.length} at ${off} beyond ${this.device.configSize} bytes`);
      return;
    }
    if (data.length !== 4) return this.reject(`${data.length}-byte register read at 0x${offset.toString(16)}`);
    const v = this.readRegister(offset);
    new DataView(data.buffer, data.byteOffset, 4).setUint32(0, v >>> 0, true);
  }

  private readRegister(offset: number): number {
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.device.deviceId;
      case VIRTIO_MMIO_VENDOR_ID:
        return TVM_VENDOR_ID;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return this.deviceFeaturesSel > 1 ? 0 : Number((this.offered >> BigInt(32 * this.deviceFeaturesSel)) & 0xffff_ffffn);
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return this.queue?.maxSize ?? 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return this.queue?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return this.interruptStatus;
      case VIRTIO_MMIO_STATUS:
        return this.status;
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return this.configGeneration;
      default:
        this.reject(`read of write-only or unknown register 0x${offset.toString(16)}`);
        return 0;
    }
  }

  write(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const off = offset - VIRTIO_MMIO_CONFIG;
      if (!this.has(VIRTIO_CONFIG_S_DRIVER)) return this.reject(`config write before DRIVER`);
      if (off + data.length > this.device.configSize)
        return this.reject(`config write of ${data.length} at ${off} beyond ${this.device.configSize} bytes`);
      this.device.writeConfig(off, data);
      return;
    }
    if (data.length !== 4) return this.reject(`${data.length}-byte register write at 0x${offset.toString(16)}`);
    const v = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    this.writeRegister(offset, v);
  }

  private writeRegister(offset: number, v: number): void {
    const hi = (cur: number, val: number) => (cur % 2 ** 32) + val * 2 ** 32;
    const lo = (cur: number, val: number) => Math.floor(cur / 2 ** 32) * 2 ** 32 + val;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        this.deviceFeaturesSel = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        this.driverFeaturesSel = v;
        return;
      case VIRTIO_MMIO_DRIVER_FEATURES: {
        if (!this.has(VIRTIO_CONFIG_S_DRIVER) || this.has(VIRTIO_CONFIG_S_FEATURES_OK))
          return this.reject(`DriverFeatures in status 0x${this.status.toString(16)}`);
        if (this.driverFeaturesSel > 1) return this.reject(`DriverFeatures with selector ${this.driverFeaturesSel}`);
        const shift = BigInt(32 * this.driverFeaturesSel);
        this.driverFeatures = (this.driverFeatures & ~(0xffff_ffffn << shift)) | (BigInt(v) << shift);
        return;
      }
      case VIRTIO_MMIO_QUEUE_SEL:
        this.queueSel = v;
        return;
      case VIRTIO_MMIO_QUEUE_NUM: {
        const q = this.queueWritable('QueueNum');
        if (q) q.size = v;
        return;
      }
      case VIRTIO_MMIO_QUEUE_DESC_LOW: {
        const q = this.queueWritable('QueueDescLow');
        if (q) q.descTable = lo(q.descTable, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_DESC_HIGH: {
        const q = this.queueWritable('QueueDescHigh');
        if (q) q.descTable = hi(q.descTable, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW: {
        const q = this.queueWritable('QueueDriverLow');
        if (q) q.availRing = lo(q.availRing, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: {
        const q = this.queueWritable('QueueDriverHigh');
        if (q) q.availRing = hi(q.availRing, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_USED_LOW: {
        const q = this.queueWritable('QueueDeviceLow');
        if (q) q.usedRing = lo(q.usedRing, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_USED_HIGH: {
        const q = this.queueWritable('QueueDeviceHigh');
        if (q) q.usedRing = hi(q.usedRing, v);
        return;
      }
      case VIRTIO_MMIO_QUEUE_READY: {
        if (v === 0) {
          // Linux writes 0 when it tears a queue down (del_vq); only meaningful before DRIVER_OK here.
          const q = this.queue;
          if (q && !this.activated) q.ready = false;
          return;
        }
        const q = this.queueWritable('QueueReady');
        if (!q) return;
        const why = q.invalidReason(this.opts.memory);
        if (why) return this.reject(`QueueReady for queue ${this.queueSel}: ${why}`);
        q.ready = true;
        return;
      }
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        this.notify(v & 0xffff);
        return;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        this.interruptStatus &= ~v;
        return;
      case VIRTIO_MMIO_STATUS:
        this.writeStatus(v);
        return;
      default:
        this.reject(`write of read-only or unknown register 0x${offset.toString(16)}`);
    }
  }

  /** A queue notification, from QueueNotify or from its ioeventfd. */
  notify(index: number): void {
    if (!this.activated) return this.reject(`QueueNotify(${index}) before DRIVER_OK`);
    if (index >= this.queues.length) return this.reject(`QueueNotify(${index}): no such queue`);
    if (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    try {
      this.device.notify(index);
    } catch (e) {
      if (e instanceof VirtqueueError) this.needsReset(`queue ${index}: ${e.message}`);
      else throw e;
    }
  }

  /**
   * Status writes carry the whole byte (Linux ORs the new bit into what it read). Allowed:
   * 0 (reset); adding exactly the next bit of ACKNOWLEDGE -> DRIVER -> FEATURES_OK ->
   * DRIVER_OK; adding FAILED at any time.
   */
  private writeStatus(v: number): void {
    if (v === 0) return this.reset();
    const cur = this.status & ~VIRTIO_CONFIG_S_NEEDS_RESET;
    const added = v & ~cur;
    if ((v & cur) !== cur) return this.reject(`status 0x${v.toString(16)} clears bits of 0x${cur.toString(16)} (only 0 resets)`);
    if (added === VIRTIO_CONFIG_S_FAILED) {
      this.status |= VIRTIO_CONFIG_S_FAILED;
      return;
    }
    const next = [VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_DRIVER_OK].find(
      (b) => !(cur & b),
    );
    if (next === undefined || added !== next || cur & VIRTIO_CONFIG_S_FAILED)
      return this.reject(`status 0x${cur.toString(16)} -> 0x${v.toString(16)} is out of order`);
    if (added === VIRTIO_CONFIG_S_FEATURES_OK) {
      const unknown = this.driverFeatures & ~this.offered;
      if (unknown) return this.reject(`driver accepted features 0x${unknown.toString(16)} that were not offered: FEATURES_OK refused`);
      if (!(this.driverFeatures & bit(VIRTIO_F_VERSION_1)))
        return this.reject(`driver did not accept VIRTIO_F_VERSION_1 (legacy drivers are not supported): FEATURES_OK refused`);
    }
    if (added === VIRTIO_CONFIG_S_DRIVER_OK) return this.activate();
    this.status |= added;
  }

  private activate(): void {
    const notReady = this.queues.findIndex((q) => !q.ready);
    if (notReady >= 0) {
      // Every device of ours needs all its queues; a driver that skipped one gets FAILED-worthy silence.
      return this.reject(`DRIVER_OK with queue ${notReady} not ready`);
    }
    for (const q of this.queues) {
      q.eventIdx = (this.driverFeatures & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n;
      q.indirect = (this.driverFeatures & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n;
    }
    this.status |= VIRTIO_CONFIG_S_DRIVER_OK;
    this.activated = true;
    this.device.activate(this.activateContext());
  }

  private activateContext(): ActivateContext {
    return {
      memory: this.opts.memory,
      queues: this.queues,
      features: this.driverFeatures,
      signalUsed: (i) => this.signalUsed(i),
      needsReset: (why) => this.needsReset(why),
    };
  }

  private signalUsed(index: number): void {
    const q = this.queues[index];
    if (!q || !q.needsInterrupt(this.opts.memory)) return;
    this.interruptStatus |= VIRTIO_MMIO_INT_VRING;
    this.opts.raiseIrq();
  }

  /** A configuration change the driver must re-read (§4.2.2.1: ConfigGeneration changes). */
  configChanged(): void {
    this.configGeneration = (this.configGeneration + 1) >>> 0;
    if (!this.activated) return;
    this.interruptStatus |= VIRTIO_MMIO_INT_CONFIG;
    this.opts.raiseIrq();
  }

  needsReset(why: string): void {
    this.reject(`device needs reset: ${why}`);
    if (this.status & VIRTIO_CONFIG_S_NEEDS_RESET) return;
    this.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
    if (this.activated) {
      this.interruptStatus |= VIRTIO_MMIO_INT_CONFIG;
      this.opts.raiseIrq();
    }
  }

  saveState(): MmioTransportState {
    return {
      version: 1,
      deviceId: this.device.deviceId,
      status: this.status,
      interruptStatus: this.interruptStatus,
      configGeneration: this.configGeneration,
      driverFeatures: this.driverFeatures.toString(16),
      deviceFeaturesSel: this.deviceFeaturesSel,
      driverFeaturesSel: this.driverFeaturesSel,
      queueSel: this.queueSel,
      queues: this.queues.map((q) => q.saveState()),
    };
  }

  /**
   * Restores a saved transport into this fresh one (same device type, same guest memory) and,
   * if the driver had reached DRIVER_OK, activates the device on the restored queues. A record
   * that does not fit leaves the transport reset and throws.
   */
  restoreState(s: MmioTransportState): void {
    const bad = (why: string) => new FormatError(`virtio-mmio state for device ${this.device.deviceId}: ${why}`, 'ERR_VIRTIO_STATE');
    if (this.activated || this.status !== 0) throw bad('restore into a transport that is in use');
    if (s?.version !== 1) throw bad(`version ${String(s?.version)}, expected 1`);
    if (s.deviceId !== this.device.deviceId) throw bad(`saved from device type ${s.deviceId}`);
    if (!Array.isArray(s.queues) || s.queues.length !== this.queues.length)
      throw bad(`${s.queues?.length} queues, the device has ${this.queues.length}`);
    if (!/^[0-9a-f]{1,16}$/.test(s.driverFeatures)) throw bad(`driver features ${JSON.stringify(s.driverFeatures)}`);
    const features = BigInt(`0x${s.driverFeatures}`);
    if (features & ~this.offered) throw bad(`driver features 0x${s.driverFeatures} were not offered`);
    for (const n of [s.status, s.interruptStatus, s.configGeneration, s.deviceFeaturesSel, s.driverFeaturesSel, s.queueSel]) {
      if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw bad('register value out of range');
    }
    try {
      s.queues.forEach((q, i) => this.queues[i]!.restoreState(q, this.opts.memory));
    } catch (e) {
      this.reset();
      throw bad((e as Error).message);
    }
    this.driverFeatures = features;
    this.interruptStatus = s.interruptStatus;
    this.configGeneration = s.configGeneration;
    this.deviceFeaturesSel = s.deviceFeaturesSel;
    this.driverFeaturesSel = s.driverFeaturesSel;
    this.queueSel = s.queueSel;
    this.status = s.status & ~VIRTIO_CONFIG_S_DRIVER_OK;
    if (s.status & VIRTIO_CONFIG_S_DRIVER_OK) {
      if (this.queues.some((q) => !q.ready)) {
        this.reset();
        throw bad('DRIVER_OK with a queue not ready');
      }
      this.status |= VIRTIO_CONFIG_S_DRIVER_OK;
      this.activated = true;
      this.device.activate(this.activateContext());
    }
  }

  private reset(): void {
    if (this.activated) this.device.reset();
    this.activated = false;
    this.status = 0;
    this.interruptStatus = 0;
    this.driverFeatures = 0n;
    this.deviceFeaturesSel = this.driverFeaturesSel = this.queueSel = 0;
    for (const q of this.queues) q.reset();
  }
}
