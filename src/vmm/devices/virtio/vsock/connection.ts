/**
 * One vsock stream connection between a guest port and a host unix socket, with the
 * virtio-vsock credit protocol (virtio 1.2 §5.10.6.3): each side advertises its receive
 * buffer (buf_alloc) and how much of what it received it has consumed (fwd_cnt); a sender
 * may have at most peer_buf_alloc - (tx_cnt - peer_fwd_cnt) bytes in flight.
 *
 * Here "consumed" means written to the host socket (the kernel took it), so a slow host
 * reader stops the guest sender instead of growing our memory; symmetrically the host
 * socket is paused while the guest has no credit for us.
 */
import type { Socket } from 'node:net';
import {
  VIRTIO_VSOCK_OP_CREDIT_REQUEST,
  VIRTIO_VSOCK_OP_CREDIT_UPDATE,
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RESPONSE,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_OP_RW,
  VIRTIO_VSOCK_OP_SHUTDOWN,
  VIRTIO_VSOCK_SHUTDOWN_RCV,
  VIRTIO_VSOCK_SHUTDOWN_SEND,
  VIRTIO_VSOCK_TYPE_STREAM,
  VMADDR_CID_HOST,
  type VsockHeader,
  type VsockPacket,
} from './packet.js';

/** Our receive buffer per connection, advertised as buf_alloc. */
export const CONN_BUF_ALLOC = 256 * 1024;
/** Host bytes buffered for the guest before the host socket is paused. */
export const CONN_TX_HIGH_WATER = 256 * 1024;

export type ConnState =
  /** host-initiated: REQUEST queued or sent, waiting for the guest's RESPONSE */
  | 'request-guest'
  /** guest-initiated: connecting to the host's listener */
  | 'connect-host'
  | 'established'
  /** RST queued; gone once it is sent */
  | 'closing';

export interface ConnEvents {
  /** the connection has packets for the guest */
  pending: (c: VsockConnection) => void;
  /** the connection is finished and can be forgotten */
  done: (c: VsockConnection) => void;
  log?: (line: string) => void;
}

export class VsockConnection {
  state: ConnState;
  socket?: Socket;
  /** control ops to send, in order (before data) */
  private control: { op: number; flags: number }[] = [];
  /** host bytes not yet sent to the guest */
  private toGuest: Buffer[] = [];
  private toGuestBytes = 0;
  /** bytes sent to the guest as RW */
  private txCnt = 0;
  private peerBufAlloc = 0;
  private peerFwdCnt = 0;
  /** bytes received from the guest, and how many of them the host socket took */
  private rxCnt = 0;
  private fwdCnt = 0;
  /** fwd_cnt as last told to the guest */
  private fwdCntSent = 0;
  private creditRequested = false;
  /** SHUTDOWN flags the guest sent / we sent */
  peerShutdown = 0;
  localShutdown = 0;
  /** SHUTDOWN(SEND) to send once the queued data is out */
  private shutdownAfterData = false;
  private paused = false;
  /** host-initiated: called when the guest accepts (the muxer writes `OK <port>`) */
  onResponse?: () => void;

  constructor(
    readonly guestCid: bigint,
    /** host-side port (src_port of our packets) */
    readonly localPort: number,
    /** guest-side port */
    readonly peerPort: number,
    state: ConnState,
    private readonly ev: ConnEvents,
  ) {
    this.state = state;
  }

  get key(): string {
    return connKey(this.localPort, this.peerPort);
  }

  // ---- towards the guest ----

  private queue(op: number, flags = 0): void {
    this.control.push({ op, flags });
    this.ev.pending(this);
  }

  sendRequest(): void {
    this.queue(VIRTIO_VSOCK_OP_REQUEST);
  }

  /** Abort: RST to the guest, host socket destroyed. */
  reset(why: string): void {
    if (this.state === 'closing') return;
    this.ev.log?.(`vsock ${this.key}: reset: ${why}`);
    this.state = 'closing';
    this.control = [];
    this.toGuest = [];
    this.toGuestBytes = 0;
    this.socket?.destroy();
    this.queue(VIRTIO_VSOCK_OP_RST);
  }

  /** Closed from the guest's side (RST received, or device reset): nothing more to send. */
  forget(): void {
    this.state = 'closing';
    this.control = [];
    this.toGuest = [];
    this.socket?.destroy();
    this.ev.done(this);
  }

  private peerFree(): number {
    return this.peerBufAlloc - ((this.txCnt - this.peerFwdCnt) >>> 0);
  }

  hasPending(): boolean {
    if (this.control.length) return true;
    if (this.state !== 'established') return false;
    if (this.toGuestBytes > 0 && this.peerFree() > 0) return true;
    if (this.toGuestBytes > 0 && !this.creditRequested) return true; // a CREDIT_REQUEST to send
    return this.shutdownAfterData && this.toGuestBytes === 0;
  }

  private header(op: number, len: number, flags: number): VsockHeader {
    this.fwdCntSent = this.fwdCnt;
    return {
      srcCid: BigInt(VMADDR_CID_HOST),
      dstCid: this.guestCid,
      srcPort: this.localPort,
      dstPort: this.peerPort,
      len,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      op,
      flags,
      bufAlloc: CONN_BUF_ALLOC,
      fwdCnt: this.fwdCnt >>> 0,
    };
  }

  /** The next packet for the guest, or undefined. */
  next(maxPayload: number): VsockPacket | undefined {
    const c = this.control.shift();
    if (c) {
      if (c.op === VIRTIO_VSOCK_OP_RST) this.ev.done(this);
      return { hdr: this.header(c.op, 0, c.flags) };
    }
    if (this.state !== 'established') return undefined;
    if (this.toGuestBytes > 0) {
      const credit = this.peerFree();
      if (credit <= 0) {
        if (this.creditRequested) return undefined;
        this.creditRequested = true;
        return { hdr: this.header(VIRTIO_VSOCK_OP_CREDIT_REQUEST, 0, 0) };
      }
      const n = Math.min(credit, maxPayload, this.toGuestBytes);
      const payload = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const head = this.toGuest[0]!;
        const take = Math.min(head.length, n - filled);
        head.copy(payload, filled, 0, take);
        filled += take;
        if (take === head.length) this.toGuest.shift();
        else this.toGuest[0] = head.subarray(take);
      }
      this.toGuestBytes -= n;
      this.txCnt = (this.txCnt + n) >>> 0;
      if (this.paused && this.toGuestBytes < CONN_TX_HIGH_WATER / 2) {
        this.paused = false;
        this.socket?.resume();
      }
      return { hdr: this.header(VIRTIO_VSOCK_OP_RW, n, 0), payload };
    }
    if (this.shutdownAfterData) {
      this.shutdownAfterData = false;
      this.localShutdown |= VIRTIO_VSOCK_SHUTDOWN_SEND;
      const both = this.bothSidesDone();
      const pkt = { hdr: this.header(VIRTIO_VSOCK_OP_SHUTDOWN, 0, VIRTIO_VSOCK_SHUTDOWN_SEND) };
      if (both) this.finish();
      return pkt;
    }
    return undefined;
  }

  // ---- from the host socket ----

  /** Wires the host socket once it is connected (both directions). */
  attachSocket(socket: Socket, initial?: Buffer): void {
    this.socket = socket;
    if (initial?.length) this.fromHost(initial);
    socket.on('data', (b: Buffer) => this.fromHost(b));
    socket.on('end', () => {
      // The host will send nothing more: tell the guest after what is queued.
      if (this.state === 'closing') return;
      this.shutdownAfterData = true;
      this.ev.pending(this);
    });
    socket.on('error', (e) => this.ev.log?.(`vsock ${this.key}: host socket: ${e.message}`));
    socket.on('close', () => {
      if (
        this.state !== 'closing' &&
        !(this.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND && this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND)
      ) {
        if (this.shutdownAfterData || this.toGuestBytes > 0) return; // the data and SHUTDOWN go first; RST follows via finish()
        this.reset('host socket closed');
      }
    });
  }

  private fromHost(b: Buffer): void {
    if (this.state === 'closing' || this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) return;
    this.toGuest.push(b);
    this.toGuestBytes += b.length;
    if (this.toGuestBytes >= CONN_TX_HIGH_WATER && !this.paused) {
      this.paused = true;
      this.socket?.pause();
    }
    if (this.state === 'established') this.ev.pending(this);
  }

  // ---- from the guest ----

  /** Every guest packet carries its receive buffer and consumption count. */
  fromGuestCredit(hdr: VsockHeader): void {
    this.peerBufAlloc = hdr.bufAlloc;
    this.peerFwdCnt = hdr.fwdCnt;
    if (this.peerFree() > 0) this.creditRequested = false;
  }

  /** Guest-initiated: the host socket connected; answer the REQUEST. */
  accept(): void {
    this.queue(VIRTIO_VSOCK_OP_RESPONSE);
    this.established();
  }

  established(): void {
    this.state = 'established';
    if (this.toGuestBytes > 0 || this.shutdownAfterData) this.ev.pending(this);
  }

  /** A packet the guest sent on this connection (not REQUEST: the muxer handles those). */
  fromGuest(hdr: VsockHeader, payload: Uint8Array): void {
    this.fromGuestCredit(hdr);
    switch (hdr.op) {
      case VIRTIO_VSOCK_OP_RESPONSE:
        if (this.state !== 'request-guest') return this.reset(`RESPONSE in state ${this.state}`);
        this.established();
        this.onResponse?.();
        return;
      case VIRTIO_VSOCK_OP_RST:
        return this.forget();
      case VIRTIO_VSOCK_OP_RW: {
        if (this.state !== 'established') return this.reset(`RW in state ${this.state}`);
        if (this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) return this.reset('RW after the guest shut down sending');
        const free = CONN_BUF_ALLOC - ((this.rxCnt - this.fwdCnt) >>> 0);
        if (hdr.len > free) return this.reset(`guest sent ${hdr.len} bytes with ${free} bytes of credit`);
        this.rxCnt = (this.rxCnt + hdr.len) >>> 0;
        const n = hdr.len;
        this.socket!.write(Buffer.from(payload), (err) => {
          if (err) return;
          this.fwdCnt = (this.fwdCnt + n) >>> 0;
          this.maybeCreditUpdate();
        });
        break;
      }
      case VIRTIO_VSOCK_OP_SHUTDOWN: {
        if (this.state !== 'established') return this.reset(`SHUTDOWN in state ${this.state}`);
        this.peerShutdown |= hdr.flags & (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND);
        if (this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_RCV) {
          this.toGuest = [];
          this.toGuestBytes = 0;
        }
        if (this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) this.socket?.end();
        if (this.peerShutdown === (VIRTIO_VSOCK_SHUTDOWN_RCV | VIRTIO_VSOCK_SHUTDOWN_SEND) || this.bothSidesDone()) this.finish();
        break;
      }
      case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
        this.queue(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
        break;
      case VIRTIO_VSOCK_OP_CREDIT_UPDATE:
        break;
      default:
        return this.reset(`unknown op ${hdr.op}`);
    }
    if (this.state === 'established' && this.hasPending()) this.ev.pending(this);
  }

  private bothSidesDone(): boolean {
    return (this.peerShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0 && (this.localShutdown & VIRTIO_VSOCK_SHUTDOWN_SEND) !== 0;
  }

  /**
   * Orderly close: the host socket is ended (writes already queued still go out, then it is
   * destroyed) and an RST tells the guest the connection is gone (what Linux expects after
   * a SHUTDOWN with both flags).
   */
  private finish(): void {
    if (this.state === 'closing') return;
    this.state = 'closing';
    const s = this.socket;
    if (s && !s.destroyed) s.end(() => s.destroy());
    this.toGuest = [];
    this.toGuestBytes = 0;
    this.control = this.control.filter((c) => c.op !== VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    this.queue(VIRTIO_VSOCK_OP_RST);
  }

  /** Tell the guest about freed space once its view of our free space is below a quarter. */
  private maybeCreditUpdate(): void {
    if (this.state !== 'established') return;
    const peerView = CONN_BUF_ALLOC - ((this.rxCnt - this.fwdCntSent) >>> 0);
    if (peerView < CONN_BUF_ALLOC / 4 && this.fwdCnt !== this.fwdCntSent) {
      if (!this.control.some((c) => c.op === VIRTIO_VSOCK_OP_CREDIT_UPDATE)) this.queue(VIRTIO_VSOCK_OP_CREDIT_UPDATE);
    }
  }
}

export const connKey = (localPort: number, peerPort: number): string => `${localPort}:${peerPort}`;
