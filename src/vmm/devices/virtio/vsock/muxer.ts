/**
 * The host side of virtio-vsock, exposed on unix sockets the Firecracker way:
 *
 * - host -> guest: connect to `<uds>`, write `CONNECT <port>\n`; the muxer picks a host port,
 *   sends the guest a REQUEST for <port> and, once the guest answers RESPONSE, writes
 *   `OK <hostport>\n`; from then on the socket is the stream. A refused or unanswered request
 *   closes the socket.
 * - guest -> host: a REQUEST for host port P connects to `<uds>_P`; RST if nobody listens.
 *
 * This is how the daemon reaches the guest agent. Everything runs on the VMM's main thread
 * (sockets on the event loop, queues on notifications): no locks.
 */
import net from 'node:net';
import { rmSync } from 'node:fs';
import { InvalidParameterError, TvmError } from '../../../../errors.js';
import type { VsockBackend } from './device.js';
import { VsockConnection, connKey } from './connection.js';
import {
  VIRTIO_VSOCK_OP_REQUEST,
  VIRTIO_VSOCK_OP_RST,
  VIRTIO_VSOCK_TYPE_STREAM,
  VMADDR_CID_HOST,
  type VsockHeader,
  type VsockPacket,
} from './packet.js';

/** Longest handshake line we wait for ("CONNECT 4294967295\n" is 19 bytes). */
const MAX_HANDSHAKE = 32;
/** Host ports the muxer hands out for host-initiated connections (Firecracker-like range). */
const LOCAL_PORT_FIRST = 1 << 30;
const LOCAL_PORT_LAST = 0xffff_fffe;
/** Connections per VM (Firecracker's limit is of the same order): bounds host memory per guest. */
export const VSOCK_MAX_CONNECTIONS = 1024;

export interface VsockMuxerOptions {
  /** the unix socket host processes connect to; guest-initiated connections go to `<uds>_<port>` */
  udsPath: string;
  /** how long a host-initiated connection waits for the guest's RESPONSE (default 5 s) */
  connectTimeoutMs?: number;
  /** how long a host connection may take to send its `CONNECT <port>` line (default 5 s) */
  handshakeTimeoutMs?: number;
  log?: (line: string) => void;
}

export class VsockMuxer implements VsockBackend {
  private guestCid = 0n;
  private kick: () => void = () => {};
  private readonly conns = new Map<string, VsockConnection>();
  /** connections with packets for the guest, in the order they asked */
  private readonly pendingConns = new Set<VsockConnection>();
  /** RSTs for packets that matched no connection */
  private readonly orphanRsts: VsockHeader[] = [];
  private nextLocalPort = LOCAL_PORT_FIRST;
  private server?: net.Server;
  private readonly hostSockets = new Set<net.Socket>();

  constructor(private readonly opts: VsockMuxerOptions) {
    validateUdsPath(opts.udsPath);
  }

  attach(kick: () => void, guestCid: bigint): void {
    this.kick = kick;
    this.guestCid = guestCid;
  }

  /** Starts listening on udsPath (a stale socket file there is replaced). */
  async listen(): Promise<void> {
    rmSync(this.opts.udsPath, { force: true });
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.accept(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new TvmError('ERR_VSOCK_LISTEN', `vsock: cannot listen on ${this.opts.udsPath}: ${e.message}`, 500, { cause: e })),
      );
      server.listen(this.opts.udsPath, () => resolve());
    });
    this.server = server;
  }

  async close(): Promise<void> {
    for (const c of [...this.conns.values()]) c.forget();
    for (const s of this.hostSockets) s.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((r) => server.close(() => r()));
    rmSync(this.opts.udsPath, { force: true });
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  private log(line: string): void {
    this.opts.log?.(`vsock: ${line}`);
  }

  private events = {
    pending: (c: VsockConnection) => {
      this.pendingConns.add(c);
      this.kick();
    },
    done: (c: VsockConnection) => {
      if (this.conns.get(c.key) === c) this.conns.delete(c.key);
    },
    log: (l: string) => this.log(l),
  };

  // ---- host-initiated ----

  private accept(s: net.Socket): void {
    this.hostSockets.add(s);
    s.once('close', () => this.hostSockets.delete(s));
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => this.refuse(s, 'no CONNECT line in time'), this.opts.handshakeTimeoutMs ?? 5000);
    timer.unref();
    s.once('close', () => clearTimeout(timer));
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) {
        if (buf.length > MAX_HANDSHAKE) this.refuse(s, 'handshake line too long');
        return;
      }
      s.off('data', onData);
      clearTimeout(timer);
      s.pause();
      const line = buf.subarray(0, nl).toString('latin1');
      const m = /^CONNECT ([0-9]{1,10})$/.exec(line);
      const port = m ? Number(m[1]) : NaN;
      if (!m || port > 0xffff_ffff) return this.refuse(s, `bad handshake ${JSON.stringify(line.slice(0, MAX_HANDSHAKE))}`);
      this.connectToGuest(s, port, buf.subarray(nl + 1));
    };
    s.on('data', onData);
  }

  private refuse(s: net.Socket, why: string): void {
    this.log(`host connection refused: ${why}`);
    s.destroy();
  }

  private allocLocalPort(peerPort: number): number {
    for (let i = 0; i <= LOCAL_PORT_LAST - LOCAL_PORT_FIRST; i++) {
      const p = this.nextLocalPort;
      this.nextLocalPort = p >= LOCAL_PORT_LAST ? LOCAL_PORT_FIRST : p + 1;
      if (!this.conns.has(connKey(p, peerPort))) return p;
    }
    throw new TvmError('ERR_VSOCK_PORTS', 'vsock: no free host port');
  }

  private connectToGuest(s: net.Socket, port: number, initial: Buffer): void {
    if (this.conns.size >= VSOCK_MAX_CONNECTIONS) return this.refuse(s, `${VSOCK_MAX_CONNECTIONS} connections open`);
    const local = this.allocLocalPort(port);
    const c = new VsockConnection(this.guestCid, local, port, 'request-guest', this.events);
    this.conns.set(c.key, c);
    c.attachSocket(s, Buffer.from(initial));
    s.pause(); // no data flows until the guest accepts
    const timer = setTimeout(() => {
      if (c.state === 'request-guest') {
        c.reset(`guest did not answer a connection to port ${port}`);
      }
    }, this.opts.connectTimeoutMs ?? 5000);
    timer.unref();
    c.onResponse = () => {
      clearTimeout(timer);
      s.write(`OK ${local}\n`);
      s.resume();
    };
    s.once('close', () => clearTimeout(timer));
    c.sendRequest();
  }

  // ---- guest-initiated and every guest packet ----

  fromGuest(hdr: VsockHeader, payload: Uint8Array): void {
    if (hdr.type !== VIRTIO_VSOCK_TYPE_STREAM) return this.rstFor(hdr, `socket type ${hdr.type}`);
    if (hdr.dstCid !== BigInt(VMADDR_CID_HOST)) return this.rstFor(hdr, `destination CID ${hdr.dstCid}`);
    const c = this.conns.get(connKey(hdr.dstPort, hdr.srcPort));
    if (hdr.op === VIRTIO_VSOCK_OP_REQUEST) {
      if (c) return c.reset(`second REQUEST from guest port ${hdr.srcPort}`);
      return this.connectToHost(hdr);
    }
    if (!c) return this.rstFor(hdr, `op ${hdr.op} for no connection ${hdr.dstPort}:${hdr.srcPort}`);
    c.fromGuest(hdr, payload);
  }

  private connectToHost(hdr: VsockHeader): void {
    if (this.conns.size >= VSOCK_MAX_CONNECTIONS) return this.rstFor(hdr, `${VSOCK_MAX_CONNECTIONS} connections open`);
    const c = new VsockConnection(this.guestCid, hdr.dstPort, hdr.srcPort, 'connect-host', this.events);
    c.fromGuestCredit(hdr);
    this.conns.set(c.key, c);
    const path = `${this.opts.udsPath}_${hdr.dstPort}`;
    const s = net.connect({ path, allowHalfOpen: true });
    this.hostSockets.add(s);
    s.once('close', () => this.hostSockets.delete(s));
    s.once('connect', () => {
      if (c.state !== 'connect-host') return void s.destroy();
      c.attachSocket(s);
      c.accept();
    });
    s.once('error', (e) => {
      if (c.state === 'connect-host') c.reset(`nothing listens on ${path}: ${e.message}`);
    });
  }

  /** Answers a packet that has no connection with RST (never an RST for an RST). */
  private rstFor(hdr: VsockHeader, why: string): void {
    if (hdr.op === VIRTIO_VSOCK_OP_RST) return;
    this.log(`RST to guest port ${hdr.srcPort}: ${why}`);
    this.orphanRsts.push({
      srcCid: BigInt(VMADDR_CID_HOST),
      dstCid: this.guestCid,
      srcPort: hdr.dstPort,
      dstPort: hdr.srcPort,
      len: 0,
      type: VIRTIO_VSOCK_TYPE_STREAM,
      op: VIRTIO_VSOCK_OP_RST,
      flags: 0,
      bufAlloc: 0,
      fwdCnt: 0,
    });
    this.kick();
  }

  hasPending(): boolean {
    if (this.orphanRsts.length) return true;
    for (const c of this.pendingConns) {
      if (c.hasPending()) return true;
      this.pendingConns.delete(c);
    }
    return false;
  }

  toGuest(maxPayload: number): VsockPacket | undefined {
    const rst = this.orphanRsts.shift();
    if (rst) return { hdr: rst };
    for (const c of this.pendingConns) {
      const p = c.next(maxPayload);
      // Round robin: a connection with more to send goes to the back.
      this.pendingConns.delete(c);
      if (c.hasPending()) this.pendingConns.add(c);
      if (p) return p;
    }
    return undefined;
  }

  reset(): void {
    for (const c of [...this.conns.values()]) c.forget();
    this.conns.clear();
    this.pendingConns.clear();
    this.orphanRsts.length = 0;
  }
}

export function validateUdsPath(p: string): void {
  // sun_path is 108 bytes including the NUL; guest-initiated names add "_<port>".
  if (Buffer.byteLength(p) + 11 > 107) throw new InvalidParameterError(`vsock socket path ${p} is too long for a unix socket`);
}
