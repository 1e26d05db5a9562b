/**
 * The embedded DNS server of a user-defined network (Docker's resolver.go): containers on the
 * network resolve each other's names, aliases and short ids; any other question is forwarded
 * to the asking container's `--dns` servers, else the host's, and the answer relayed. It
 * listens on the network's gateway address, UDP and TCP, in the daemon's namespace; each
 * container reaches it as Docker's 127.0.0.11:53 through a DNAT in its own namespace
 * (dns-netns.ts). Forwarding from the daemon's side is what lets a host resolver on 127.x
 * (systemd-resolved, dnsmasq) serve containers, as Docker's HostLoopback servers do.
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';

const TYPE_A = 1;
const CLASS_IN = 1;
const TTL = 600;
const FORWARD_TIMEOUT_MS = 3000;

export interface Question {
  name: string;
  type: number;
  cls: number;
  /** byte offset just past the question */
  end: number;
}

/** The first question of a query (names without compression, as resolvers send them). */
export function parseQuestion(msg: Buffer): Question | undefined {
  if (msg.length < 12 || msg.readUInt16BE(4) < 1) return undefined;
  const labels: string[] = [];
  let off = 12;
  for (;;) {
    if (off >= msg.length) return undefined;
    const len = msg[off]!;
    if (len === 0) {
      off++;
      break;
    }
    if (len > 63 || off + 1 + len > msg.length) return undefined;
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  if (off + 4 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(off), cls: msg.readUInt16BE(off + 2), end: off + 4 };
}

/** A response to `query` with these A records (none: NOERROR/NXDOMAIN as `rcode` says). */
export function answer(query: Buffer, q: Question, ips: string[], rcode = 0): Buffer {
  const head = Buffer.from(query.subarray(0, q.end));
  // QR, opcode kept, AA, RD kept, RA; one question, our answers, no authority/additional
  head.writeUInt16BE(0x8000 | (query.readUInt16BE(2) & 0x7900) | 0x0400 | 0x0080 | rcode, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(ips.length, 6);
  head.writeUInt16BE(0, 8);
  head.writeUInt16BE(0, 10);
  const rrs = ips.map((ip) => {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(CLASS_IN, 4);
    rr.writeUInt32BE(TTL, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((b, i) => (rr[12 + i] = Number(b)));
    return rr;
  });
  return Buffer.concat([head, ...rrs]);
}

/** The host's nameservers (what Docker's resolver forwards to). */
export function hostNameservers(resolvConf = '/etc/resolv.conf'): string[] {
  try {
    return readFileSync(resolvConf, 'utf8')
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1])
      .filter((x): x is string => !!x);
  } catch {
    // no resolv.conf on the host: nothing to forward to (the container gets SERVFAIL)
    return [];
  }
}

/** `lookup(from, name)`: the addresses of `name` as the container at `from` may see them; undefined: not ours. */
export type Lookup = (from: string, name: string) => string[] | undefined;

/** `upstream(from)`: where the container at `from` has other names resolved ("ip" or "ip:port"). */
export type Upstream = (from: string) => string[];

/**
 * Splits a TCP stream into DNS messages (each after a two-byte length, RFC 1035 4.2.2); what
 * is left is the start of a message still to come.
 */
export function splitTcpMessages(buf: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const len = buf.readUInt16BE(off);
    if (off + 2 + len > buf.length) break;
    messages.push(buf.subarray(off + 2, off + 2 + len));
    off += 2 + len;
  }
  return { messages, rest: buf.subarray(off) };
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

function hostPort(server: string): { host: string; port: number } {
  const [host, port = '53'] = server.split(':');
  return { host: host!, port: Number(port) };
}

/** A TCP connection that sent nothing for this long is closed (a client holds it only for its queries). */
const TCP_IDLE_MS = 10_000;

export class EmbeddedDns {
  private sock: dgram.Socket | undefined;
  private tcp: net.Server | undefined;
  private readonly conns = new Set<net.Socket>();

  constructor(
    private readonly lookup: Lookup,
    private readonly log: (m: string) => void,
    private readonly upstream: Upstream = () => hostNameservers(),
  ) {}

  /** UDP and TCP on `address:port`; neither is left open when the other cannot bind. */
  async start(address: string, port = 53): Promise<void> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address, port }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    const tcp = net.createServer((c) => this.serveTcp(c));
    try {
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen({ host: address, port }, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      sock.close();
      throw e;
    }
    sock.on('error', (e) => this.log(`embedded DNS on ${address} (udp): ${e.message}`));
    sock.on('message', (msg, rinfo) => {
      this.reply(msg, rinfo.address, 'udp').then(
        (r) => {
          if (r) sock.send(r, rinfo.port, rinfo.address);
        },
        (e: Error) => this.log(`embedded DNS on ${address} (udp): answering ${rinfo.address}: ${e.message}`),
      );
    });
    tcp.on('error', (e) => this.log(`embedded DNS on ${address} (tcp): ${e.message}`));
    this.sock = sock;
    this.tcp = tcp;
  }

  stop(): void {
    this.sock?.close();
    this.sock = undefined;
    this.tcp?.close();
    this.tcp = undefined;
    for (const c of this.conns) c.destroy();
    this.conns.clear();
  }

  private serveTcp(c: net.Socket): void {
    this.conns.add(c);
    let pending = Buffer.alloc(0);
    c.setTimeout(TCP_IDLE_MS, () => c.destroy());
    // a client that resets mid-answer is no error of ours
    c.on('error', () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    c.on('data', (chunk) => {
      const { messages, rest } = splitTcpMessages(Buffer.concat([pending, chunk]));
      pending = Buffer.from(rest);
      for (const m of messages) {
        const from = c.remoteAddress?.replace(/^::ffff:/, '') ?? '';
        this.reply(Buffer.from(m), from, 'tcp').then(
          (r) => {
            if (r && !c.destroyed) c.write(framed(r));
          },
          (e: Error) => this.log(`embedded DNS (tcp): answering ${from}: ${e.message}`),
        );
      }
    });
  }

  /** The answer to one query from `from`; undefined: not a query we answer at all. */
  private async reply(msg: Buffer, from: string, proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    const q = parseQuestion(msg);
    if (!q || q.cls !== CLASS_IN) return undefined;
    const ips = this.lookup(from, q.name.replace(/\.$/, ''));
    // ours: A records; any other type of a name we own has no records (never forwarded)
    if (ips) return answer(msg, q, q.type === TYPE_A ? ips : []);
    return (await this.forward(msg, this.upstream(from), proto)) ?? answer(msg, q, [], 2 /* SERVFAIL */);
  }

  /**
   * Relays the query to the first upstream that answers, over the protocol it came by (a
   * truncated UDP answer makes the client ask again over TCP).
   */
  private async forward(msg: Buffer, servers: string[], proto: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    for (const server of servers) {
      const reply = proto === 'udp' ? await forwardUdp(msg, server) : await forwardTcp(msg, server);
      if (reply) return reply;
    }
    return undefined;
  }
}

/** One query to one server over UDP; undefined: no answer in time (the caller tries the next). */
function forwardUdp(msg: Buffer, server: string): Promise<Buffer | undefined> {
  const { host, port } = hostPort(server);
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    let over = false;
    const done = (b: Buffer | undefined) => {
      if (over) return;
      over = true;
      clearTimeout(t);
      s.close();
      resolve(b);
    };
    const t = setTimeout(() => done(undefined), FORWARD_TIMEOUT_MS);
    s.on('error', () => done(undefined));
    // only the answer to this query's id: a late answer to an earlier one is not it
    s.on('message', (b) => {
      if (b.length >= 2 && b.readUInt16BE(0) === msg.readUInt16BE(0)) done(b);
    });
    s.send(msg, port, host, (e) => {
      if (e) done(undefined); // unreachable: the next one
    });
  });
}

/** One query to one server over TCP; undefined: refused, reset or no answer in time. */
function forwardTcp(msg: Buffer, server: string): Promise<Buffer | undefined> {
  const { host, port } = hostPort(server);
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let over = false;
    const done = (b: Buffer | undefined) => {
      if (over) return;
      over = true;
      s.destroy();
      resolve(b);
    };
    s.setTimeout(FORWARD_TIMEOUT_MS, () => done(undefined));
    s.on('error', () => done(undefined));
    s.on('close', () => done(undefined));
    s.on('connect', () => s.write(framed(msg)));
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      const { messages } = splitTcpMessages(buf);
      if (messages.length > 0) done(Buffer.from(messages[0]!));
    });
  });
}
