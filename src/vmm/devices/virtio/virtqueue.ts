/**
 * A split virtqueue (virtio 1.2 §2.7): descriptor table, driver area (available ring) and
 * device area (used ring) in guest memory, all addressed by the guest. Everything read from
 * those areas is guest-controlled: every index is checked against the queue size, every
 * buffer against guest RAM, chains against loops, before a device sees a single byte.
 *
 * Memory ordering: guest RAM is a shared mapping the vCPUs write concurrently. x86-64 is TSO:
 * loads are not reordered with loads nor stores with stores, so reading avail.idx before the
 * ring entries, and writing the used element before used.idx, needs no barrier (V8 does not
 * reorder typed-array accesses across each other). The one store->load pair that TSO may
 * reorder is "publish used.idx, then read used_event / avail.flags" (and "write avail_event,
 * then re-read avail.idx"): there `fullFence()` issues a seq-cst read-modify-write, a locked
 * instruction, which is a full barrier for all memory on x86 (the spec's virtio_mb).
 */
import { TvmError, type ErrorCode } from '../../../errors.js';
import type { GuestRam } from '../../memory.js';

// Descriptor flags (virtio_ring.h).
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
export const VIRTQ_USED_F_NO_NOTIFY = 1;

// Ring feature bits (virtio_ring.h / virtio_config.h).
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;

/** struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next. */
export const VIRTQ_DESC = { size: 16, addr: 0, len: 8, flags: 12, next: 14 } as const;
/** struct virtq_avail: le16 flags, le16 idx, le16 ring[N], then le16 used_event. */
export const VIRTQ_AVAIL = { flags: 0, idx: 2, ring: 4, entrySize: 2 } as const;
/** struct virtq_used: le16 flags, le16 idx, virtq_used_elem ring[N], then le16 avail_event. */
export const VIRTQ_USED = { flags: 0, idx: 2, ring: 4 } as const;
/** struct virtq_used_elem: le32 id, le32 len. */
export const VIRTQ_USED_ELEM = { size: 8, id: 0, len: 4 } as const;

/** Largest queue size the split ring allows (a power of 2, §2.7). */
export const VIRTQ_MAX_SIZE = 32768;

export const availRingBytes = (n: number): number => VIRTQ_AVAIL.ring + 2 * n + 2;
export const usedRingBytes = (n: number): number => VIRTQ_USED.ring + VIRTQ_USED_ELEM.size * n + 2;

export class VirtqueueError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_VIRTQUEUE') {
    super(code, message, 500);
  }
}

export interface VirtqueueState {
  size: number;
  ready: boolean;
  descTable: number;
  availRing: number;
  usedRing: number;
  nextAvail: number;
  nextUsed: number;
  eventIdx: boolean;
  indirect: boolean;
  /** used.idx at the last interrupt decision, null before the first */
  signalledUsed: number | null;
}

export interface Descriptor {
  addr: number;
  len: number;
  /** device-writable (VIRTQ_DESC_F_WRITE) */
  writable: boolean;
}

/** One chain taken off the available ring; `head` goes back in the used ring. */
export type AvailableChain =
  { head: number; descriptors: Descriptor[]; error?: undefined } | { head: number; descriptors?: undefined; error: VirtqueueError };

const fenceWord = new Int32Array(new SharedArrayBuffer(4));
/** A full memory barrier (a locked RMW on x86-64). */
export function fullFence(): void {
  Atomics.add(fenceWord, 0, 0);
}

const u16 = (m: GuestRam, a: number): number => {
  const b = m.slice(a, 2);
  return b[0]! | (b[1]! << 8);
};
/**
 * The ring indexes and event words (avail.idx, used.idx, used_event, avail_event, avail.flags)
 * are written by the guest's vCPUs while we read them (and the other way round): each is one
 * naturally aligned 16-bit word accessed with Atomics, so it is never torn into two byte
 * accesses or cached, whatever the JIT does. The rings are 2-byte aligned (checked at
 * QueueReady), and the host is little-endian like virtio's le16.
 */
const idxView = (m: GuestRam, a: number): Uint16Array => {
  const b = m.slice(a, 2);
  if ((b.byteOffset & 1) !== 0) throw new VirtqueueError(`ring index at 0x${a.toString(16)} is not 2-byte aligned`, 'ERR_VIRTQUEUE_BROKEN');
  return new Uint16Array(b.buffer, b.byteOffset, 1);
};
const loadIdx = (m: GuestRam, a: number): number => Atomics.load(idxView(m, a), 0);
const storeIdx = (m: GuestRam, a: number, v: number): void => void Atomics.store(idxView(m, a), 0, v & 0xffff);
const view = (m: GuestRam, a: number, len: number): DataView => {
  const b = m.slice(a, len);
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
};

/**
 * The queue's registers as the transport sets them (QueueNum, QueueDesc/Driver/Device,
 * QueueReady) plus the device's private cursors.
 */
export class Virtqueue {
  size: number;
  ready = false;
  descTable = 0;
  availRing = 0;
  usedRing = 0;
  /** next available-ring slot the device will read (free-running u16) */
  nextAvail = 0;
  /** next used-ring slot the device will write (free-running u16) */
  nextUsed = 0;
  /** negotiated VIRTIO_RING_F_EVENT_IDX */
  eventIdx = false;
  /** negotiated VIRTIO_RING_F_INDIRECT_DESC */
  indirect = false;
  /** used.idx at the last interrupt decision (for event-idx suppression) */
  private signalledUsed = 0;
  private signalledValid = false;

  constructor(readonly maxSize: number) {
    if (!Number.isInteger(maxSize) || maxSize < 1 || maxSize > VIRTQ_MAX_SIZE || (maxSize & (maxSize - 1)) !== 0) {
      throw new VirtqueueError(`queue max size ${maxSize}: a power of 2 up to ${VIRTQ_MAX_SIZE}`);
    }
    this.size = maxSize;
  }

  /** The queue as a plain record (snapshots). */
  saveState(): VirtqueueState {
    return {
      size: this.size,
      ready: this.ready,
      descTable: this.descTable,
      availRing: this.availRing,
      usedRing: this.usedRing,
      nextAvail: this.nextAvail,
      nextUsed: this.nextUsed,
      eventIdx: this.eventIdx,
      indirect: this.indirect,
      signalledUsed: this.signalledValid ? this.signalledUsed : null,
    };
  }

  /** Restores a saved queue; a ready queue must still be valid against `memory`. */
  restoreState(s: VirtqueueState, memory: GuestRam): void {
    const u16ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff;
    const addrOk = (n: unknown) => Number.isSafeInteger(n) && (n as number) >= 0;
    if (
      !u16ok(s.nextAvail) ||
      !u16ok(s.nextUsed) ||
      !addrOk(s.descTable) ||
      !addrOk(s.availRing) ||
      !addrOk(s.usedRing) ||
      !Number.isInteger(s.size) ||
      (s.signalledUsed !== null && !u16ok(s.signalledUsed))
    ) {
      throw new VirtqueueError('saved queue state has out-of-range fields', 'ERR_VIRTQUEUE_STATE');
    }
    const before = this.saveState();
    Object.assign(this, {
      size: s.size,
      ready: s.ready === true,
      descTable: s.descTable,
      availRing: s.availRing,
      usedRing: s.usedRing,
      nextAvail: s.nextAvail,
      nextUsed: s.nextUsed,
      eventIdx: s.eventIdx === true,
      indirect: s.indirect === true,
    });
    this.signalledValid = s.signalledUsed !== null;
    this.signalledUsed = s.signalledUsed ?? 0;
    const why = this.ready ? this.invalidReason(memory) : null;
    if (why) {
      this.restoreState(before, memory);
      throw new VirtqueueError(`saved queue state: ${why}`, 'ERR_VIRTQUEUE_STATE');
    }
  }

  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descTable = this.availRing = this.usedRing = 0;
    this.nextAvail = this.nextUsed = 0;
    this.eventIdx = this.indirect = false;
    this.signalledUsed = 0;
    this.signalledValid = false;
  }

  /**
   * Why the queue as configured cannot be used (null when it can): size a power of 2 within
   * max, areas aligned as §2.7 requires (16/2/4) and inside guest RAM.
   */
  invalidReason(memory: GuestRam): string | null {
    const n = this.size;
    if (n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) return `size ${n} is not a power of 2 in 1..${this.maxSize}`;
    if (this.descTable % 16 !== 0) return `descriptor table 0x${this.descTable.toString(16)} is not 16-byte aligned`;
    if (this.availRing % 2 !== 0) return `driver area 0x${this.availRing.toString(16)} is not 2-byte aligned`;
    if (this.usedRing % 4 !== 0) return `device area 0x${this.usedRing.toString(16)} is not 4-byte aligned`;
    for (const [what, addr, len] of [
      ['descriptor table', this.descTable, VIRTQ_DESC.size * n],
      ['driver area', this.availRing, availRingBytes(n)],
      ['device area', this.usedRing, usedRingBytes(n)],
    ] as const) {
      try {
        memory.slice(addr, len);
      } catch {
        return `${what} 0x${addr.toString(16)}+${len} is outside guest RAM`;
      }
    }
    return null;
  }

  /** avail.idx - nextAvail, refusing a driver that claims more than `size` new entries. */
  pending(memory: GuestRam): number {
    const n = (loadIdx(memory, this.availRing + VIRTQ_AVAIL.idx) - this.nextAvail) & 0xffff;
    if (n > this.size) throw new VirtqueueError(`avail.idx moved ${n} entries ahead on a queue of ${this.size}`, 'ERR_VIRTQUEUE_BROKEN');
    return n;
  }

  /**
   * Takes the next chain off the available ring, or undefined when empty. A malformed chain
   * comes back with `error` (the device completes it with nothing written); a head index out
   * of range cannot be returned at all and throws ERR_VIRTQUEUE_BROKEN (device needs reset).
   */
  pop(memory: GuestRam): AvailableChain | undefined {
    if (!this.ready || this.pending(memory) === 0) return undefined;
    const slot = this.nextAvail % this.size;
    const head = u16(memory, this.availRing + VIRTQ_AVAIL.ring + 2 * slot);
    if (head >= this.size)
      throw new VirtqueueError(`available ring slot ${slot} holds head ${head} on a queue of ${this.size}`, 'ERR_VIRTQUEUE_BROKEN');
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    if (this.eventIdx) {
      // avail_event: notify us when the driver passes this index.
      storeIdx(memory, this.usedRing + VIRTQ_USED.ring + VIRTQ_USED_ELEM.size * this.size, this.nextAvail);
      // The next pending() must see an avail.idx the driver wrote before it read avail_event;
      // otherwise a buffer added in between would get neither a notification nor a look.
      fullFence();
    }
    try {
      return { head, descriptors: this.walk(memory, head) };
    } catch (e) {
      if (e instanceof VirtqueueError) return { head, error: e };
      throw e;
    }
  }

  /** Validates and flattens the chain starting at `head` (indirect tables expanded). */
  private walk(memory: GuestRam, head: number): Descriptor[] {
    const out: Descriptor[] = [];
    let total = 0;
    const add = (d: Descriptor): void => {
      if (d.len === 0) throw new VirtqueueError(`descriptor chain ${head}: zero-length buffer`);
      try {
        memory.slice(d.addr, d.len);
      } catch {
        throw new VirtqueueError(`descriptor chain ${head}: buffer 0x${d.addr.toString(16)}+${d.len} is outside guest RAM`);
      }
      if (out.length && out[out.length - 1]!.writable && !d.writable)
        throw new VirtqueueError(`descriptor chain ${head}: a device-readable buffer follows a device-writable one`);
      total += d.len;
      if (total > 0xffff_ffff) throw new VirtqueueError(`descriptor chain ${head}: longer than 4 GiB`);
      out.push(d);
    };
    let table = this.descTable;
    let tableSize = this.size;
    let index = head;
    let seen = 0;
    let inIndirect = false;
    for (;;) {
      if (++seen > tableSize) throw new VirtqueueError(`descriptor chain ${head}: longer than its table (${tableSize}): a loop`);
      const v = view(memory, table + VIRTQ_DESC.size * index, VIRTQ_DESC.size);
      const addr = Number(v.getBigUint64(VIRTQ_DESC.addr, true));
      const len = v.getUint32(VIRTQ_DESC.len, true);
      const flags = v.getUint16(VIRTQ_DESC.flags, true);
      const next = v.getUint16(VIRTQ_DESC.next, true);
      if (flags & VIRTQ_DESC_F_INDIRECT) {
        if (!this.indirect) throw new VirtqueueError(`descriptor chain ${head}: INDIRECT without VIRTIO_RING_F_INDIRECT_DESC`);
        if (inIndirect) throw new VirtqueueError(`descriptor chain ${head}: INDIRECT inside an indirect table`);
        if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError(`descriptor chain ${head}: INDIRECT together with NEXT`);
        if (len === 0 || len % VIRTQ_DESC.size !== 0 || len / VIRTQ_DESC.size > VIRTQ_MAX_SIZE)
          throw new VirtqueueError(`descriptor chain ${head}: indirect table of ${len} bytes`);
        if (addr % 16 !== 0)
          throw new VirtqueueError(`descriptor chain ${head}: indirect table 0x${addr.toString(16)} is not 16-byte aligned`);
        try {
          memory.slice(addr, len);
        } catch {
          throw new VirtqueueError(`descriptor chain ${head}: indirect table 0x${addr.toString(16)}+${len} is outside guest RAM`);
        }
        table = addr;
        tableSize = len / VIRTQ_DESC.size;
        index = 0;
        seen = 0;
        inIndirect = true;
        continue;
      }
      add({ addr, len, writable: (flags & VIRTQ_DESC_F_WRITE) !== 0 });
      if (!(flags & VIRTQ_DESC_F_NEXT)) return out;
      if (next >= tableSize) throw new VirtqueueError(`descriptor chain ${head}: next index ${next} is outside its table of ${tableSize}`);
      index = next;
    }
  }

  /** Returns a chain to the driver: used.ring[nextUsed] = {head, len}, then used.idx++. */
  addUsed(memory: GuestRam, head: number, len: number): void {
    if (head >= this.size) throw new VirtqueueError(`used: head ${head} outside a queue of ${this.size}`);
    const slot = this.nextUsed % this.size;
    const e = view(memory, this.usedRing + VIRTQ_USED.ring + VIRTQ_USED_ELEM.size * slot, VIRTQ_USED_ELEM.size);
    e.setUint32(VIRTQ_USED_ELEM.id, head, true);
    e.setUint32(VIRTQ_USED_ELEM.len, len >>> 0, true);
    this.nextUsed = (this.nextUsed + 1) & 0xffff;
    // TSO keeps the element stores before this one.
    storeIdx(memory, this.usedRing + VIRTQ_USED.idx, this.nextUsed);
  }

  /**
   * Whether the driver wants an interrupt for what was added since the last call
   * (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX: §2.7.7.2).
   */
  needsInterrupt(memory: GuestRam): boolean {
    fullFence();
    const newUsed = this.nextUsed;
    const old = this.signalledUsed;
    const valid = this.signalledValid;
    this.signalledUsed = newUsed;
    this.signalledValid = true;
    if (!this.eventIdx) return (loadIdx(memory, this.availRing + VIRTQ_AVAIL.flags) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    if (!valid) return true;
    const usedEvent = loadIdx(memory, this.availRing + VIRTQ_AVAIL.ring + 2 * this.size);
    // vring_need_event: new crossed used_event since old.
    return ((newUsed - usedEvent - 1) & 0xffff) < ((newUsed - old) & 0xffff);
  }
}

/**
 * A popped chain's buffers seen as two byte streams (virtio 1.x has no framing assumptions:
 * VIRTIO_F_ANY_LAYOUT is implied by VERSION_1): the device-readable bytes and the
 * device-writable bytes, each addressed by offset across descriptor boundaries.
 */
export class ChainBuffers {
  readonly readable: Uint8Array[] = [];
  readonly writable: Uint8Array[] = [];
  readonly readableLength: number;
  readonly writableLength: number;

  constructor(memory: GuestRam, descriptors: readonly Descriptor[]) {
    for (const d of descriptors) (d.writable ? this.writable : this.readable).push(memory.slice(d.addr, d.len));
    this.readableLength = this.readable.reduce((n, b) => n + b.length, 0);
    this.writableLength = this.writable.reduce((n, b) => n + b.length, 0);
  }

  /** Copies readable bytes [offset, offset+dst.length) into dst; returns the count copied. */
  read(offset: number, dst: Uint8Array): number {
    return copyAcross(this.readable, offset, dst, 'from');
  }

  /** Copies src into writable bytes at offset; returns the count copied. */
  write(offset: number, src: Uint8Array): number {
    return copyAcross(this.writable, offset, src, 'to');
  }
}

function copyAcross(bufs: Uint8Array[], offset: number, data: Uint8Array, dir: 'from' | 'to'): number {
  let done = 0;
  let skip = offset;
  for (const b of bufs) {
    if (done === data.length) break;
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    const n = Math.min(b.length - skip, data.length - done);
    if (dir === 'from') data.set(b.subarray(skip, skip + n), done);
    else b.set(data.subarray(done, done + n), skip);
    done += n;
    skip = 0;
  }
  return done;
}
