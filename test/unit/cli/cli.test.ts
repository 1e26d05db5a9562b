import { describe, it, expect } from 'vitest';
import { Writable } from 'node:stream';
import { parseBytes, parseCpus, humanSize } from '../../../src/cli/units.js';
import { daemonHost, DEFAULT_DAEMON_HOST, TvmClient } from '../../../src/cli/client.js';
import { table, copyStream } from '../../../src/cli/output.js';
import { encodeFrame } from '../../../src/api/stream-header.js';
import { Readable } from 'node:stream';
import { parseHost } from '../../../src/daemon/listen.js';

const sink = () => {
  let text = '';
  const w = new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) });
  return { w, text: () => text };
};

describe('units', () => {
  it('parses memory sizes like docker (binary multiples)', () => {
    expect(parseBytes('512m')).toBe(512 * 1024 * 1024);
    expect(parseBytes('1g')).toBe(1024 ** 3);
    expect(parseBytes('6MB')).toBe(6 * 1024 * 1024);
    expect(parseBytes('100')).toBe(100);
    expect(parseBytes('1.5k')).toBe(1536);
    expect(() => parseBytes('lots')).toThrow("invalid size: 'lots'");
  });
  it('parses CPUs to NanoCpus', () => {
    expect(parseCpus('1.5')).toBe(1.5e9);
    expect(() => parseCpus('x')).toThrow(/--cpus/);
  });
  it('prints sizes like docker images', () => {
    expect(humanSize(2_024_000)).toBe('2.02MB');
    expect(humanSize(512)).toBe('512B');
  });
});

describe('client host', () => {
  it('honours TVM_HOST, then DOCKER_HOST, then the default socket', () => {
    expect(daemonHost({ TVM_HOST: 'unix:///a.sock', DOCKER_HOST: 'unix:///b.sock' })).toBe('unix:///a.sock');
    expect(daemonHost({ DOCKER_HOST: 'unix:///b.sock' })).toBe('unix:///b.sock');
    expect(daemonHost({})).toBe(DEFAULT_DAEMON_HOST);
    expect(DEFAULT_DAEMON_HOST).toBe('unix:///run/tvm/tvm.sock');
  });
  it('refuses unknown schemes', () => {
    expect(() => new TvmClient('ssh://host')).toThrow(/unsupported daemon host/);
  });
  it('versions every path', async () => {
    const c = new TvmClient('unix:///nonexistent.sock');
    expect(c.path('/containers/json', { all: true, filters: '{}', x: undefined })).toBe('/v1.50/containers/json?all=1&filters=%7B%7D');
    await expect(c.json('GET', '/_ping')).rejects.toThrow(
      'Cannot connect to the tvm daemon at unix:///nonexistent.sock. Is the daemon running? Start one with: tvm daemon',
    );
    await c.close();
  });
});

describe('output', () => {
  it("aligns tables with docker's 3-space gutters", () => {
    const s = sink();
    table(
      [
        ['A', 'BB', 'C'],
        ['long', 'x', ''],
      ],
      s.w,
    );
    expect(s.text()).toBe('A      BB   C\nlong   x\n');
  });
  it('demultiplexes framed output and passes raw TTY output', async () => {
    const out = sink();
    const err = sink();
    await copyStream(
      Readable.from([
        Buffer.concat([encodeFrame(1, 'o1'), encodeFrame(2, 'e1')]).subarray(0, 5),
        Buffer.concat([encodeFrame(1, 'o1'), encodeFrame(2, 'e1')]).subarray(5),
      ]),
      false,
      out.w,
      err.w,
    );
    expect([out.text(), err.text()]).toEqual(['o1', 'e1']);
    const raw = sink();
    await copyStream(Readable.from([Buffer.from('tty bytes')]), true, raw.w, err.w);
    expect(raw.text()).toBe('tty bytes');
  });
});

describe('daemon listeners', () => {
  it('parses -H addresses', () => {
    expect(parseHost('unix:///run/tvm/tvm.sock')).toEqual({ kind: 'unix', path: '/run/tvm/tvm.sock' });
    expect(parseHost('tcp://127.0.0.1:2376')).toEqual({ kind: 'tcp', host: '127.0.0.1', port: 2376 });
    expect(parseHost('tcp://localhost')).toEqual({ kind: 'tcp', host: 'localhost', port: 2376 });
    expect(() => parseHost('unix://relative.sock')).toThrow(/must be absolute/);
    expect(() => parseHost('fd://')).toThrow(/use unix:\/\/\/path or tcp:\/\/host:port/);
  });
});
