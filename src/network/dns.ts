/**
 * The embedded DNS server of a user-defined network (Docker's resolver.go): containers on the
 * network resolve each other's names, aliases and short ids; any other question is forwarded
 * to the host's nameservers and the answer relayed. UDP, on the network's gateway address: the
 * daemon cannot open a socket inside each container's namespace (Docker's 127.0.0.11) without
 * a native helper, and the gateway is reachable from every container on the network, internal
 * ones included (it is the host's own address, not forwarded traffic).
 */
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';

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
    return readFileSync(resolvConf, 'utf8').split('\n').map((l) => /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(l)?.[1]).filter((x): x is string => !!x);
  } catch {
    return [];
  }
}

/** `lookup(from, name)`: the addresses of `name` as the container at `from` may see them; undefined: not ours. */
export type Lookup = (from: string, name: string) => string[] | undefined;

export class EmbeddedDns {
  private sock: dgram.Socket | undefined;

  constructor(private readonly lookup: Lookup, private readonly log: (m: string) => void, private readonly upstream: () => string[] = hostNameservers) {}

  async start(address: string, port = 53): Promise<void> {
    const sock = dgram.createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address, port }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    sock.on('error', (e) => this.log(`embedded DNS on ${address}: ${e.message}`));
    sock.on('message', (msg, rinfo) => this.handle(sock, msg, rinfo));
    this.sock = sock;
  }

  stop(): void {
    this.sock?.close();
    this.sock = undefined;
  }

  private handle(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const q = parseQuestion(msg);
    if (!q || q.cls !== CLASS_IN) return;
    const ips = this.lookup(rinfo.address, q.name.replace(/\.$/, ''));
    if (ips) {
      // ours: A records; any other type of a name we own has no records (never forwarded)
      sock.send(answer(msg, q, q.type === TYPE_A ? ips : []), rinfo.port, rinfo.address);
      return;
    }
    void this.forward(msg).then((reply) => {
      sock.send(reply ?? answer(msg, q, [], 2 /* SERVFAIL */), rinfo.port, rinfo.address);
    });
  }

  /** Relays the query to the first upstream that answers. */
  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const server of this.upstream()) {
      // "ip" or "ip:port" (tests)
      const [ns, port = '53'] = server.split(':');
      const reply = await new Promise<Buffer | undefined>((resolve) => {
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
        s.on('message', (b) => done(b));
        s.send(msg, Number(port), ns, (e) => {
          if (e) done(undefined); // unreachable: the next one
        });
      });
      if (reply) return reply;
    }
    return undefined;
  }
}
