import { describe, it, expect } from 'vitest';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { EmbeddedDns, parseQuestion } from '../../../src/network/dns.js';

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
    const { answer } = await import('../../../src/network/dns.js');
    up.on('message', (m, ri) => {
      const q = parseQuestion(m)!;
      up.send(q.name === 'far.example' ? answer(m, q, ['192.0.2.7']) : answer(m, q, [], 3), ri.port, ri.address);
    });
    const asked: string[] = [];
    let upstream = [`127.0.0.1:${upPort}`];
    const dns = new EmbeddedDns((from, name) => {
      asked.push(`${from} ${name}`);
      return name === 'db' ? ['10.1.0.5', '10.1.0.6'] : undefined;
    }, () => {}, () => upstream);
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
