/**
 * Docker's embedded DNS at 127.0.0.11 with the real docker CLI against a real tvm daemon in a
 * network namespace this test makes: resolv.conf as Docker writes it, peer names over UDP
 * (busybox nslookup, and the libc resolver through ping) and over TCP (a client run inside the
 * container's namespace), and a forwarded name answered by a fake upstream server this test
 * runs on an address it adds to that namespace's loopback. No query leaves the namespace.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { embeddedResolvConf } from '../../../src/runtime/host/etc-files.js';

const UPSTREAM = '10.239.53.53';

/** DNS helpers shared by the fake upstream and the TCP client (each run as `node -e`, in another namespace). */
const DNS_JS = `
const net = require('node:net'), dgram = require('node:dgram');
function qname(m) { const l = []; let o = 12; while (m[o]) { l.push(m.toString('latin1', o + 1, o + 1 + m[o])); o += 1 + m[o]; } return { name: l.join('.').toLowerCase(), end: o + 5, type: m.readUInt16BE(o + 1) }; }
function reply(m, ips, rcode) {
  const q = qname(m); const h = Buffer.from(m.subarray(0, q.end));
  h.writeUInt16BE(0x8180 | rcode, 2); h.writeUInt16BE(ips.length, 6); h.writeUInt16BE(0, 8); h.writeUInt16BE(0, 10);
  return Buffer.concat([h, ...ips.map((ip) => Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...ip.split('.').map(Number)]))]);
}
function framed(m) { const l = Buffer.alloc(2); l.writeUInt16BE(m.length); return Buffer.concat([l, m]); }
function query(id, name) {
  const h = Buffer.alloc(12); h.writeUInt16BE(id, 0); h.writeUInt16BE(0x0100, 2); h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0, 0, 1, 0, 1])]);
}
function addrs(r) { const q = qname(r); const out = []; for (let i = 0, o = q.end; i < r.readUInt16BE(6); i++, o += 16) out.push([...r.subarray(o + 12, o + 16)].join('.')); return out; }
`;

/** Knows outside.example (A only); logs each question with its protocol. */
const UPSTREAM_JS = `${DNS_JS}
const [addr] = process.argv.slice(1);
const answer = (m, proto) => { const q = qname(m); console.log(proto + ' ' + q.name); return reply(m, q.name === 'outside.example' && q.type === 1 ? ['192.0.2.77'] : [], q.name === 'outside.example' ? 0 : 3); };
const u = dgram.createSocket('udp4');
u.on('message', (m, ri) => u.send(answer(m, 'udp'), ri.port, ri.address));
const t = net.createServer((c) => { let b = Buffer.alloc(0); c.on('data', (d) => { b = Buffer.concat([b, d]); while (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) { const m = b.subarray(2, 2 + b.readUInt16BE(0)); b = b.subarray(2 + m.length); c.write(framed(answer(m, 'tcp'))); } }); c.on('error', () => {}); });
u.bind(53, addr, () => t.listen(53, addr, () => console.log('ready')));
`;

/** Asks 127.0.0.11 over TCP for each name, on one connection; prints "name ip,ip" per answer. */
const TCP_CLIENT_JS = `${DNS_JS}
const names = process.argv.slice(1);
const c = net.connect({ host: '127.0.0.11', port: 53 }, () => c.write(Buffer.concat(names.map((n, i) => framed(query(i + 1, n))))));
let b = Buffer.alloc(0); let left = names.length;
c.setTimeout(5000, () => { console.error('timeout'); process.exit(1); });
c.on('data', (d) => { b = Buffer.concat([b, d]); while (b.length >= 2 && b.length >= 2 + b.readUInt16BE(0)) { const m = b.subarray(2, 2 + b.readUInt16BE(0)); b = b.subarray(2 + m.length); console.log(names[m.readUInt16BE(0) - 1] + ' ' + addrs(m).join(',')); if (--left === 0) c.end(); } });
`;

describe('embedded DNS at 127.0.0.11 (docker CLI, daemon in its own network namespace)', () => {
  let d: TestDaemon;
  let tmp: string;
  let upstream: ResultPromise | undefined;
  let upstreamLog = '';
  const run = (args: string[]) => d.docker(args);
  const netnsOfDaemon = () => path.join(path.dirname(d.dataRoot), 'netns');
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.exitCode, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.231.0.1/24'] });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-dns-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive());
    await ok(['load', '-i', path.join(tmp, 'busybox.tar')]);
    // the fake upstream, on an address of the daemon's namespace (its "host")
    const add = await execa('nsenter', [`--net=${netnsOfDaemon()}`, 'ip', 'addr', 'add', `${UPSTREAM}/32`, 'dev', 'lo'], { reject: false });
    expect(add.exitCode, add.stderr).toBe(0);
    upstream = execa('nsenter', [`--net=${netnsOfDaemon()}`, process.execPath, '-e', UPSTREAM_JS, UPSTREAM], { reject: false });
    await new Promise<void>((resolve, reject) => {
      upstream!.stdout!.on('data', (b: Buffer) => {
        upstreamLog += b.toString();
        if (upstreamLog.includes('ready')) resolve();
      });
      // execa with reject: false never rejects: an exit, whatever its status, fails the wait
      void upstream!.then((r) => reject(new Error(`the fake upstream DNS exited: ${String(r.stderr)}`)));
    });
  }, 120_000);
  afterAll(async () => {
    if (upstream?.pid) process.kill(upstream.pid, 'SIGTERM');
    await upstream?.catch(() => undefined); // its exit status after our SIGTERM says nothing
    if (d) {
      if (process.env.TVM_NET_DEBUG) process.stderr.write(d.logs());
      const ids = (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await run(['rm', '-f', ...ids]);
      await run(['network', 'rm', 'dnsnet']);
      await d.destroy();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('writes resolv.conf as Docker does: 127.0.0.11 on a user network, --dns only on the default bridge', async () => {
    await ok(['network', 'create', '--subnet', '10.232.0.0/24', 'dnsnet']);
    const plain = await ok(['run', '--rm', '--network', 'dnsnet', 'busybox', 'cat', '/etc/resolv.conf']);
    expect(`${plain}\n`).toBe(embeddedResolvConf(await readFile('/etc/resolv.conf', 'utf8'), undefined, '127.0.0.11'));
    expect(plain).toMatch(/^nameserver 127\.0\.0\.11$/m);
    expect(plain.match(/^nameserver /gm)).toHaveLength(1);
    const given = await ok([
      'run',
      '--rm',
      '--network',
      'dnsnet',
      '--dns',
      UPSTREAM,
      '--dns-search',
      'corp.example',
      '--dns-option',
      'timeout:2',
      'busybox',
      'cat',
      '/etc/resolv.conf',
    ]);
    expect(given).toBe('search corp.example\nnameserver 127.0.0.11\noptions timeout:2 ndots:0');
    const bridge = await ok(['run', '--rm', '--dns', UPSTREAM, 'busybox', 'cat', '/etc/resolv.conf']);
    expect(bridge).toContain(`nameserver ${UPSTREAM}`);
    expect(bridge).not.toContain('127.0.0.11');
  });

  it('answers peer names over UDP and TCP at 127.0.0.11 and forwards the rest to --dns', async () => {
    await ok(['run', '-d', '--name', 'p1', '--network', 'dnsnet', '--network-alias', 'db', 'busybox', 'sleep', '300']);
    const c1 = await ok(['run', '-d', '--name', 'c1', '--network', 'dnsnet', '--dns', UPSTREAM, 'busybox', 'sleep', '300']);
    const p1Ip = await ok(['inspect', '-f', '{{.NetworkSettings.Networks.dnsnet.IPAddress}}', 'p1']);
    const nslookup = async (name: string) => (await run(['exec', 'c1', 'busybox', 'nslookup', name])).stdout;
    // UDP: busybox nslookup asks the nameserver of resolv.conf
    expect(await nslookup('p1')).toContain(`Address: ${p1Ip}`);
    expect(await nslookup('db')).toContain(`Address: ${p1Ip}`);
    expect(await nslookup('p1.dnsnet')).toContain(`Address: ${p1Ip}`);
    // the libc resolver (busybox-static's getaddrinfo) through resolv.conf
    expect(await ok(['exec', 'c1', 'busybox', 'ping', '-c', '1', '-W', '2', 'db'])).toContain(`PING db (${p1Ip})`);
    // not ours: forwarded to the container's --dns server
    expect(await nslookup('outside.example')).toContain('Address: 192.0.2.77');
    expect(upstreamLog).toContain('udp outside.example');
    // TCP, from inside the container's namespace
    const tcp = await execa(
      'nsenter',
      [`--net=${path.join(d.execRoot, 'netns', c1)}`, process.execPath, '-e', TCP_CLIENT_JS, 'p1', 'outside.example', 'nowhere.example'],
      { reject: false },
    );
    expect(tcp.exitCode, tcp.stderr).toBe(0);
    expect(tcp.stdout.split('\n').sort()).toEqual(['nowhere.example ', 'outside.example 192.0.2.77', `p1 ${p1Ip}`]);
    expect(upstreamLog).toContain('tcp outside.example');
  });

  it('keeps answering at 127.0.0.11 after the network it led to is disconnected', async () => {
    await ok(['network', 'create', '--subnet', '10.233.0.0/24', 'dnsnet2']);
    await ok(['run', '-d', '--name', 'p2', '--network', 'dnsnet2', 'busybox', 'sleep', '300']);
    await ok(['run', '-d', '--name', 'm1', '--network', 'dnsnet', 'busybox', 'sleep', '300']);
    await ok(['network', 'connect', 'dnsnet2', 'm1']);
    const p2Ip = await ok(['inspect', '-f', '{{.NetworkSettings.Networks.dnsnet2.IPAddress}}', 'p2']);
    expect((await run(['exec', 'm1', 'busybox', 'nslookup', 'p2'])).stdout).toContain(`Address: ${p2Ip}`);
    await ok(['network', 'disconnect', 'dnsnet', 'm1']);
    expect((await run(['exec', 'm1', 'busybox', 'nslookup', 'p2'])).stdout).toContain(`Address: ${p2Ip}`);
    await ok(['rm', '-f', 'm1', 'p2']);
    await ok(['network', 'rm', 'dnsnet2']);
  });

  it('a container on the default bridge connected to a user network while it runs gets 127.0.0.11, as Docker rebuilds its resolv.conf', async () => {
    await ok(['run', '-d', '--name', 'p3', '--network', 'dnsnet', 'busybox', 'sleep', '300']);
    await ok(['run', '-d', '--name', 'b1', 'busybox', 'sleep', '300']);
    expect(await ok(['exec', 'b1', 'cat', '/etc/resolv.conf'])).not.toContain('127.0.0.11');
    await ok(['network', 'connect', 'dnsnet', 'b1']);
    const conf = await ok(['exec', 'b1', 'cat', '/etc/resolv.conf']);
    expect(`${conf}\n`).toBe(embeddedResolvConf(await readFile('/etc/resolv.conf', 'utf8'), undefined, '127.0.0.11'));
    const p3Ip = await ok(['inspect', '-f', '{{.NetworkSettings.Networks.dnsnet.IPAddress}}', 'p3']);
    expect((await run(['exec', 'b1', 'busybox', 'nslookup', 'p3'])).stdout).toContain(`Address: ${p3Ip}`);
    await ok(['rm', '-f', 'b1', 'p3']);
  });
});
