import { describe, it, expect } from 'vitest';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { EmbeddedDns, answer, parseQuestion, splitTcpMessages } from '../../../src/network/dns.js';

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind({ address: '127.0.0.1', port: 0 }, r));
  const p = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return p;
}

describe('embedded DNS', () => {
  it('answers its names, relays the rest to the upstream, SERVFAIL when none answers', async () => {
    // an upstream that knows one name
    const up = dgram.createSocket('udp4');
    const upPort = await freePort();
    await new Promise<void>((r) => up.bind({ address: '127.0.0.1', port: upPort }, r));
    up.on('message', (m, ri) => {
      const q = parseQuestion(m)!;
      up.send(q.name === 'far.example' ? answer(m, q, ['192.0.2.7']) : answer(m, q, [], 3), ri.port, ri.address);
    });
    const asked: string[] = [];
    let upstream = [`127.0.0.1:${upPort}`];
    const dns = new EmbeddedDns(
      (from, name) => {
        asked.push(`${from} ${name}`);
        return name === 'db' ? ['10.1.0.5', '10.1.0.6'] : undefined;
      },
      () => {},
      (from) => (asked.push(`upstream for ${from}`), upstream),
    );
    const port = await freePort();
    await dns.start('127.0.0.1', port);
    try {
      const r = new Resolver({ timeout: 500, tries: 1 });
      r.setServers([`127.0.0.1:${port}`]);
      expect((await r.resolve4('db')).sort()).toEqual(['10.1.0.5', '10.1.0.6']);
      expect(asked).toEqual(['127.0.0.1 db']);
      await expect(r.resolve6('db')).rejects.toMatchObject({ code: 'ENODATA' });
      expect(await r.resolve4('far.example')).toEqual(['192.0.2.7']);
      await expect(r.resolve4('nowhere.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
      upstream = [];
      await expect(r.resolve4('far.example')).rejects.toMatchObject({ code: 'ESERVFAIL' });
    } finally {
      dns.stop();
      up.close();
    }
  });
});

/** A query for `name` (type A), with the id given. */
function query(id: number, name: string): Buffer {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2);
  head.writeUInt16BE(1, 4);
  return Buffer.concat([head, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

function framed(m: Buffer): Buffer {
  const l = Buffer.alloc(2);
  l.writeUInt16BE(m.length);
  return Buffer.concat([l, m]);
}

/** The A records of an answer (no compression but the question pointer, as ours). */
function addresses(reply: Buffer): string[] {
  const q = parseQuestion(reply)!;
  const out: string[] = [];
  for (let i = 0, off = q.end; i < reply.readUInt16BE(6); i++, off += 16) out.push([...reply.subarray(off + 12, off + 16)].join('.'));
  return out;
}

describe('embedded DNS over TCP', () => {
  it('splits a stream into length-prefixed messages, keeping a partial one', () => {
    const a = query(1, 'a');
    const b = query(2, 'bb');
    const stream = Buffer.concat([framed(a), framed(b)]);
    expect(splitTcpMessages(stream).messages.map((m) => m.readUInt16BE(0))).toEqual([1, 2]);
    const part = splitTcpMessages(stream.subarray(0, stream.length - 3));
    expect(part.messages).toHaveLength(1);
    expect(part.rest.length).toBe(framed(b).length - 3);
    expect(splitTcpMessages(Buffer.from([0])).rest.length).toBe(1);
  });

  it('answers its names and forwards the rest over TCP, several queries on one connection', async () => {
    // an upstream on TCP only: a forward over UDP would get no answer
    const up = net.createServer((c) => {
      let buf = Buffer.alloc(0);
      c.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        const { messages, rest } = splitTcpMessages(buf);
        buf = Buffer.from(rest);
        for (const m of messages) {
          const q = parseQuestion(m)!;
          c.write(framed(answer(m, q, q.name === 'far.example' ? ['192.0.2.9'] : [], q.name === 'far.example' ? 0 : 3)));
        }
      });
    });
    await new Promise<void>((r) => up.listen({ host: '127.0.0.1', port: 0 }, r));
    const upPort = (up.address() as net.AddressInfo).port;
    const port = await freePort();
    const dns = new EmbeddedDns(
      (_from, name) => (name === 'db' ? ['10.1.0.5'] : undefined),
      () => {},
      () => [`127.0.0.1:${upPort}`],
    );
    // TCP and UDP share the port number; a free UDP port may be a taken TCP one, rarely
    await dns.start('127.0.0.1', port);
    try {
      const c = net.connect({ host: '127.0.0.1', port });
      const replies: Buffer[] = [];
      let buf = Buffer.alloc(0);
      const got = new Promise<void>((resolve) =>
        c.on('data', (d) => {
          buf = Buffer.concat([buf, d]);
          const { messages, rest } = splitTcpMessages(buf);
          buf = Buffer.from(rest);
          replies.push(...messages.map((m) => Buffer.from(m)));
          if (replies.length === 3) resolve();
        }),
      );
      // two queries in one segment, the third split across two
      const third = framed(query(3, 'nowhere.example'));
      c.write(Buffer.concat([framed(query(1, 'db')), framed(query(2, 'far.example')), third.subarray(0, 5)]));
      setTimeout(() => c.write(third.subarray(5)), 20);
      await got;
      c.destroy();
      const byId = new Map(replies.map((r) => [r.readUInt16BE(0), r]));
      expect(addresses(byId.get(1)!)).toEqual(['10.1.0.5']);
      expect(addresses(byId.get(2)!)).toEqual(['192.0.2.9']);
      expect(byId.get(3)!.readUInt16BE(2) & 0xf).toBe(3);
    } finally {
      dns.stop();
      up.close();
    }
  });
});
