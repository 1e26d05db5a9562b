/**
 * A vhost-user back end (QEMU docs/interop/vhost-user.rst) serving one of our VirtioDevices to
 * a front end (QEMU) over a connected unix socket: the front end is the vCPU and the
 * virtio-mmio transport; rings and guest RAM are shared; kicks arrive on eventfds and
 * interrupts leave on eventfds. The device model is the same one MmioTransport serves.
 *
 * Threading: nothing here blocks. One NotifyPoller thread waits on the socket (one-shot,
 * re-armed after each read) and on every kick eventfd; everything else runs on this thread.
 * The socket is read with MSG_DONTWAIT until EAGAIN, a message possibly arriving in pieces.
 * Ring re-scans the control path asks for (enable, activation) are deferred with setImmediate,
 * so the control messages already queued, and any reply QEMU waits for with a vCPU stopped,
 * are answered before device work runs.
 *
 * Malformed input from the front end (a bad header, a size or fd count that does not fit the
 * request, an unknown request, a ring outside guest RAM, a hang-up mid-message) is logged and
 * ends the connection: every fd and mapping is released and `onClose(err)` says why.
 */
import * as libc from '../../../../kvm/libc.js';
import * as sock from '../../../../kvm/socket.js';
import { InvalidParameterError } from '../../../../errors.js';
import type { GuestRam } from '../../../memory.js';
import type { RamRegion } from '../../../layout.js';
import { NotifyPoller } from '../notify-poller.js';
import { bit, type ActivateContext, type VirtioDevice } from '../mmio.js';
import {
  Virtqueue,
  VirtqueueError,
  VIRTIO_F_VERSION_1,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED,
} from '../virtqueue.js';
import { VhostUserMemory } from './memory.js';
import {
  VhostUserError,
  VhostUserRequest as Q,
  parseHeader,
  parsePayload,
  encodeReply,
  encodeU64,
  encodeConfig,
  requestName,
  vhostUserHeader,
  vhostVringState,
  VHOST_USER_F_PROTOCOL_FEATURES,
  VHOST_USER_PROTOCOL_F_CONFIG,
  VHOST_USER_PROTOCOL_F_REPLY_ACK,
  type VhostUserHeader,
  type VhostUserMessage,
  type VhostVringAddr,
} from './messages.js';

export interface VhostUserBackendOptions {
  /** our connected end of a socketpair (QEMU holds the other) */
  fd: number;
  device: VirtioDevice;
  /** queues served over vhost-user (vsock: 2, its event queue stays in QEMU); default all */
  queues?: number;
  log?: (line: string) => void;
  /** the peer hung up (no error) or a fatal protocol error ended the connection */
  onClose?: (err?: Error) => void;
  /**
   * a notify poller shared with the VM's other backends (one thread for all; the caller
   * closes it after the backends); default: one of its own
   */
  poller?: NotifyPoller;
}

/** Ring features our Virtqueue implements, offered with every device's own. */
const RING_FEATURES = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC);
/**
 * REPLY_ACK always; CONFIG for devices with a config space (blk and vsock refuse to start
 * without it; QEMU warns when a device without one, rng, is offered it).
 */
export function protocolFeaturesFor(device: VirtioDevice): bigint {
  return bit(VHOST_USER_PROTOCOL_F_REPLY_ACK) | (device.configSize > 0 ? bit(VHOST_USER_PROTOCOL_F_CONFIG) : 0n);
}

interface Ring {
  readonly q: Virtqueue;
  kickFd: number;
  callFd: number;
  errFd: number;
  /** has a kick fd (the spec's "started"); GET_VRING_BASE stops it */
  started: boolean;
  enabled: boolean;
  /** the front end's ring addresses, translated again when the memory table changes */
  addr?: VhostVringAddr;
}

/** A connected pair: `ours` for the backend, `theirs` (inheritable) for QEMU's `-chardev socket,fd=`. */
export function vhostUserSocketPair(): { ours: number; theirs: number } {
  const [ours, theirs] = sock.socketpair();
  try {
    sock.setCloexec(theirs, false);
  } catch (e) {
    libc.close(ours);
    libc.close(theirs);
    throw e;
  }
  return { ours, theirs };
}

export class VhostUserBackend {
  readonly offered: bigint;
  readonly protocolOffered: bigint;
  acked = 0n;
  protocolAcked = 0n;
  /** messages handled, counted by name (diagnostics and tests) */
  readonly handled = new Map<string, number>();
  private readonly rings: Ring[];
  private readonly poller: NotifyPoller;
  private readonly ownsPoller: boolean;
  private memory?: VhostUserMemory;
  /** what the device holds: follows `memory` when a new table replaces it */
  private readonly ram: GuestRam;
  private active = false;
  /** a ring could not be trusted: nothing runs until the rings are stopped and restarted */
  private broken = false;
  /** bumped at every activation and stop: a deferred re-scan of an older one does nothing */
  private generation = 0;
  private started = false;
  private closed = false;
  private closing?: Promise<void>;
  // The message being read: header, then payload, and the fds that came with them.
  private readonly header = new Uint8Array(vhostUserHeader.size);
  private headerGot = 0;
  private hdr?: VhostUserHeader;
  private payload = new Uint8Array(0);
  private payloadGot = 0;
  private fds: number[] = [];

  constructor(private readonly o: VhostUserBackendOptions) {
    const n = o.queues ?? o.device.queueMaxSizes.length;
    if (!Number.isInteger(n) || n < 1 || n > o.device.queueMaxSizes.length) {
      throw new InvalidParameterError(`vhost-user: ${n} queues for a device with ${o.device.queueMaxSizes.length}`);
    }
    this.offered = o.device.features | RING_FEATURES | bit(VHOST_USER_F_PROTOCOL_FEATURES);
    this.protocolOffered = protocolFeaturesFor(o.device);
    // QEMU sizes every ring itself (1024 entries) whatever the device prefers.
    this.rings = Array.from({ length: n }, () => ({
      q: new Virtqueue(VIRTQ_MAX_SIZE),
      kickFd: -1,
      callFd: -1,
      errFd: -1,
      started: false,
      enabled: false,
    }));
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the getters below have their own `this`
    const self = this;
    this.ram = {
      get size() {
        return self.memory?.size ?? 0;
      },
      get regions(): readonly RamRegion[] {
        return self.memory?.regions ?? [];
      },
      slice: (gpa, len) => {
        if (!self.memory) throw new VhostUserError('guest memory: no SET_MEM_TABLE yet');
        return self.memory.slice(gpa, len);
      },
    };
    this.ownsPoller = o.poller === undefined;
    this.poller = o.poller ?? new NotifyPoller((e) => this.fail(e instanceof Error ? e : new Error(String(e))));
  }

  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.poller.addReadable(
      this.o.fd,
      this.guarded(() => this.onReadable()),
    );
  }

  /** Releases every fd, mapping and the poller thread; the device is reset if it was running. Idempotent. */
  close(): Promise<void> {
    this.closing ??= this.release();
    return this.closing;
  }

  private async release(): Promise<void> {
    this.closed = true;
    this.deactivate();
    this.poller.remove(this.o.fd);
    for (const r of this.rings) {
      this.setKick(r, -1);
      r.callFd = replaceFd(r.callFd, -1);
      r.errFd = replaceFd(r.errFd, -1);
    }
    for (const fd of this.fds.splice(0)) libc.close(fd);
    this.memory?.close();
    this.memory = undefined;
    libc.close(this.o.fd);
    if (this.ownsPoller) await this.poller.close();
  }

  /** A handler's failure ends this connection only, also on a poller shared with other devices. */
  private guarded(f: () => void): () => void {
    return () => {
      try {
        f();
      } catch (e) {
        this.fail(e instanceof Error ? e : new Error(String(e)));
      }
    };
  }

  private log(line: string): void {
    this.o.log?.(`vhost-user (device ${this.o.device.deviceId}): ${line}`);
  }

  /** Ends the connection after a protocol error (logged, reported once through onClose). */
  private fail(err: Error): void {
    if (this.closed) return;
    this.log(`closing: ${err.message}`);
    // both outcomes go to onClose: nothing is left to reject
    void this.close().then(
      () => this.o.onClose?.(err),
      (e: Error) => this.o.onClose?.(e),
    );
  }

  private hangUp(): void {
    if (this.closed) return;
    this.log('front end hung up');
    // both outcomes go to onClose: nothing is left to reject
    void this.close().then(
      () => this.o.onClose?.(),
      (e: Error) => this.o.onClose?.(e),
    );
  }

  // ---- reading ----

  private onReadable(): void {
    try {
      while (!this.closed && this.readSome()) {
        if (this.hdr && this.payloadGot === this.hdr.size) this.dispatch();
      }
    } catch (e) {
      this.fail(e as Error);
    }
  }

  /** Reads what is there of the current message; false when nothing more is (EAGAIN or end). */
  private readSome(): boolean {
    const inHeader = !this.hdr;
    const dst = inHeader ? this.header.subarray(this.headerGot) : this.payload.subarray(this.payloadGot);
    if (!inHeader && dst.length === 0) return true;
    const r = sock.recvmsg(this.o.fd, dst);
    this.fds.push(...r.fds);
    if (r.bytes < 0) return false;
    if (r.bytes === 0) {
      if (this.headerGot || this.hdr)
        throw new VhostUserError(`front end hung up in the middle of a message (${this.hdr ? requestName(this.hdr.request) : 'header'})`);
      this.hangUp();
      return false;
    }
    if (inHeader) {
      this.headerGot += r.bytes;
      if (this.headerGot === this.header.length) {
        this.hdr = parseHeader(this.header);
        this.payload = new Uint8Array(this.hdr.size);
        this.payloadGot = 0;
      }
    } else {
      this.payloadGot += r.bytes;
    }
    return true;
  }

  private dispatch(): void {
    const h = this.hdr!;
    const fds = this.fds;
    this.hdr = undefined;
    this.headerGot = 0;
    this.fds = [];
    let msg: VhostUserMessage;
    try {
      msg = parsePayload(h, this.payload, fds);
    } catch (e) {
      for (const fd of fds) libc.close(fd);
      throw e;
    }
    const name = requestName(h.request);
    this.handled.set(name, (this.handled.get(name) ?? 0) + 1);
    const replied = this.handle(msg);
    // REPLY_ACK: success is u64 0 (a failure has already ended the connection).
    if (msg.needReply && !replied) this.reply(h.request, encodeU64(0n));
  }

  private reply(request: number, payload: Uint8Array): void {
    const m = encodeReply(request, payload);
    const n = sock.sendmsg(this.o.fd, m);
    // Replies are a few bytes and QEMU reads each before sending on; a full socket means a broken peer.
    if (n !== m.length) throw new VhostUserError(`${requestName(request)}: reply not sent (${n} of ${m.length} bytes)`);
  }

  // ---- requests ----

  /** Handles one message, taking ownership of its fds; true when it sent its own reply. */
  private handle(m: VhostUserMessage): boolean {
    switch (m.request) {
      case Q.VHOST_USER_GET_FEATURES:
        this.reply(m.request, encodeU64(this.offered));
        return true;
      case Q.VHOST_USER_SET_FEATURES:
        if (m.value & ~this.offered) throw new VhostUserError(`SET_FEATURES: 0x${(m.value & ~this.offered).toString(16)} were not offered`);
        this.acked = m.value;
        return false;
      case Q.VHOST_USER_GET_PROTOCOL_FEATURES:
        this.reply(m.request, encodeU64(this.protocolOffered));
        return true;
      case Q.VHOST_USER_SET_PROTOCOL_FEATURES:
        if (m.value & ~this.protocolOffered)
          throw new VhostUserError(`SET_PROTOCOL_FEATURES: 0x${(m.value & ~this.protocolOffered).toString(16)} were not offered`);
        this.protocolAcked = m.value;
        return false;
      case Q.VHOST_USER_GET_QUEUE_NUM:
        this.reply(m.request, encodeU64(BigInt(this.rings.length)));
        return true;
      case Q.VHOST_USER_SET_OWNER:
        return false;
      case Q.VHOST_USER_RESET_OWNER:
      case Q.VHOST_USER_RESET_DEVICE:
        this.deactivate();
        for (const r of this.rings) this.stopRing(r);
        this.acked = 0n;
        return false;
      case Q.VHOST_USER_SET_MEM_TABLE: {
        const mem = VhostUserMemory.map(m.regions);
        const old = this.memory;
        this.memory = mem;
        old?.close();
        for (const r of this.rings) if (r.addr) this.placeRing(r, r.addr);
        return false;
      }
      case Q.VHOST_USER_SET_VRING_NUM: {
        const r = this.stoppedRing(m.request, m.state.index);
        const n = m.state.num;
        if (n < 1 || n > VIRTQ_MAX_SIZE || (n & (n - 1)) !== 0)
          throw new VhostUserError(`SET_VRING_NUM: ring ${m.state.index} size ${n} is not a power of 2 up to ${VIRTQ_MAX_SIZE}`);
        r.q.size = n;
        return false;
      }
      case Q.VHOST_USER_SET_VRING_BASE: {
        const r = this.stoppedRing(m.request, m.state.index);
        if (m.state.num > 0xffff)
          throw new VhostUserError(`SET_VRING_BASE: ring ${m.state.index} base ${m.state.num} is not a split-ring index`);
        r.q.nextAvail = m.state.num;
        return false;
      }
      case Q.VHOST_USER_SET_VRING_ADDR:
        this.placeRing(this.stoppedRing(m.request, m.addr.index), m.addr);
        return false;
      case Q.VHOST_USER_SET_VRING_KICK: {
        const r = this.ringOrClose(m.request, m.index, m.fd);
        if (m.noFd) throw new VhostUserError(`SET_VRING_KICK: ring ${m.index} without a kick fd (polling) is not supported`);
        this.setKick(r, m.fd);
        r.started = true;
        this.maybeActivate();
        return false;
      }
      case Q.VHOST_USER_SET_VRING_CALL: {
        const r = this.ringOrClose(m.request, m.index, m.fd);
        r.callFd = replaceFd(r.callFd, m.fd);
        return false;
      }
      case Q.VHOST_USER_SET_VRING_ERR: {
        const r = this.ringOrClose(m.request, m.index, m.fd);
        r.errFd = replaceFd(r.errFd, m.fd);
        return false;
      }
      case Q.VHOST_USER_SET_VRING_ENABLE: {
        const r = this.ring(m.request, m.state.index);
        if (m.state.num > 1) throw new VhostUserError(`SET_VRING_ENABLE: ring ${m.state.index} state ${m.state.num}`);
        r.enabled = m.state.num === 1;
        if (r.enabled) {
          if (this.active) this.rescan([m.state.index]);
          else this.maybeActivate();
        }
        return false;
      }
      case Q.VHOST_USER_GET_VRING_BASE: {
        const i = m.state.index;
        const r = this.ring(m.request, i);
        // QEMU stops every ring together; the device must not touch one that has stopped.
        this.deactivate();
        const next = r.q.nextAvail;
        this.stopRing(r);
        this.reply(m.request, vhostVringState.pack({ index: i, num: next }));
        return true;
      }
      case Q.VHOST_USER_GET_CONFIG: {
        const { offset, size, flags } = m.config;
        const data = new Uint8Array(size);
        const have = this.o.device.configSize;
        // QEMU asks for its struct's size, which may exceed ours: the rest reads as zero.
        if (offset < have) this.o.device.readConfig(offset, data.subarray(0, Math.min(size, have - offset)));
        this.reply(m.request, encodeConfig({ offset, size, flags, payload: data }));
        return true;
      }
      case Q.VHOST_USER_SET_CONFIG: {
        const { offset, size, payload } = m.config;
        if (offset + size > this.o.device.configSize)
          throw new VhostUserError(`SET_CONFIG: ${size} bytes at ${offset} beyond the device's ${this.o.device.configSize}`);
        this.o.device.writeConfig(offset, payload);
        return false;
      }
    }
  }

  private ring(request: number, index: number): Ring {
    const r = this.rings[index];
    if (!r) throw new VhostUserError(`${requestName(request)}: ring ${index}, the backend serves ${this.rings.length}`);
    return r;
  }

  private ringOrClose(request: number, index: number, fd: number): Ring {
    try {
      return this.ring(request, index);
    } catch (e) {
      if (fd >= 0) libc.close(fd);
      throw e;
    }
  }

  /** Ring geometry may only change while the ring is stopped (vhost-user.rst, "Starting and stopping rings"). */
  private stoppedRing(request: number, index: number): Ring {
    const r = this.ring(request, index);
    if (r.started) throw new VhostUserError(`${requestName(request)}: ring ${index} is running`);
    return r;
  }

  /** Translates the front end's ring addresses to guest-physical and checks them against RAM. */
  private placeRing(r: Ring, a: VhostVringAddr): void {
    if (!this.memory) throw new VhostUserError(`SET_VRING_ADDR: ring ${a.index} before SET_MEM_TABLE`);
    r.addr = a;
    try {
      r.q.descTable = this.memory.gpaOfUserAddr(a.desc_user_addr);
      r.q.availRing = this.memory.gpaOfUserAddr(a.avail_user_addr);
      r.q.usedRing = this.memory.gpaOfUserAddr(a.used_user_addr);
    } catch (e) {
      throw new VhostUserError(`SET_VRING_ADDR: ring ${a.index}: ${(e as Error).message}`);
    }
    const why = r.q.invalidReason(this.memory);
    if (why) throw new VhostUserError(`SET_VRING_ADDR: ring ${a.index}: ${why}`);
  }

  private setKick(r: Ring, fd: number): void {
    if (r.kickFd >= 0) this.poller.remove(r.kickFd);
    r.kickFd = replaceFd(r.kickFd, fd);
    if (fd >= 0) {
      const index = this.rings.indexOf(r);
      this.poller.add(
        fd,
        this.guarded(() => this.kicked(index)),
      );
    }
  }

  /** GET_VRING_BASE or a reset: no kicks, no interrupts, cursors from scratch at the next start. */
  private stopRing(r: Ring): void {
    this.setKick(r, -1);
    r.started = false;
    // QEMU sends NUM, BASE and ADDR again before it restarts a ring.
    r.q.reset();
    r.addr = undefined;
  }

  // ---- the device ----

  /** Activates the device once every served ring has a kick fd, is enabled and memory is mapped. */
  private maybeActivate(): void {
    if (this.active || this.closed || !this.memory) return;
    if (!this.rings.every((r) => r.started && r.enabled)) return;
    const eventIdx = (this.acked & bit(VIRTIO_RING_F_EVENT_IDX)) !== 0n;
    const indirect = (this.acked & bit(VIRTIO_RING_F_INDIRECT_DESC)) !== 0n;
    this.rings.forEach((r, i) => {
      const why = r.q.invalidReason(this.ram);
      if (why) throw new VhostUserError(`ring ${i}: ${why}`);
      r.q.eventIdx = eventIdx;
      r.q.indirect = indirect;
      // Where the device left off is what it last published (libvhost-user does the same).
      const u = this.ram.slice(r.q.usedRing + VQ_USED_IDX, 2);
      r.q.nextUsed = u[0]! | (u[1]! << 8);
      r.q.ready = true;
    });
    this.active = true;
    this.broken = false;
    this.generation++;
    const ctx: ActivateContext = {
      memory: this.ram,
      queues: this.rings.map((r) => r.q),
      features: this.acked & ~bit(VHOST_USER_F_PROTOCOL_FEATURES),
      signalUsed: (i) => this.signalUsed(i),
      needsReset: (why) => this.needsReset(why),
    };
    this.o.device.activate(ctx);
    this.log(`device active on ${this.rings.length} rings`);
    // A kick can come before SET_VRING_ENABLE; look at every ring once.
    this.rescan(this.rings.map((_, i) => i));
  }

  private deactivate(): void {
    this.generation++;
    if (!this.active) return;
    this.active = false;
    this.o.device.reset();
  }

  private rescan(indexes: number[]): void {
    const gen = this.generation;
    setImmediate(() => {
      if (gen !== this.generation) return;
      for (const i of indexes) this.kicked(i);
    });
  }

  private kicked(index: number): void {
    const r = this.rings[index];
    if (!r || !this.active || this.broken || !r.enabled || this.closed) return;
    try {
      this.o.device.notify(index);
    } catch (e) {
      if (e instanceof VirtqueueError) this.needsReset(`ring ${index}: ${e.message}`);
      else this.fail(e as Error);
    }
  }

  private signalUsed(index: number): void {
    const r = this.rings[index];
    if (!r || !this.active || !r.q.needsInterrupt(this.ram)) return;
    if (r.callFd >= 0) libc.eventfdSignal(r.callFd);
  }

  private needsReset(why: string): void {
    // No back channel to raise DEVICE_NEEDS_RESET: the rings stay dead until QEMU restarts them.
    this.log(`device needs reset: ${why}`);
    this.broken = true;
  }
}

const VQ_USED_IDX = VIRTQ_USED.idx;

/** Closes `old` (if any) and returns `next`. */
function replaceFd(old: number, next: number): number {
  if (old >= 0 && old !== next) libc.close(old);
  return next;
}
