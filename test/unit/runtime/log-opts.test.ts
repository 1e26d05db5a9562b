import { describe, it, expect } from 'vitest';
import { parseHumanSize, parseLogOpts, parseLogOptFlags, resolveLogConfig } from '../../../src/runtime/log-opts.js';

describe("json-file log options (Docker's keys and messages)", () => {
  it('parses max-size in decimal units as go-units FromHumanSize', () => {
    expect(parseHumanSize('100')).toBe(100);
    expect(parseHumanSize('100k')).toBe(100_000);
    expect(parseHumanSize('10m')).toBe(10_000_000);
    expect(parseHumanSize('10MB')).toBe(10_000_000);
    expect(parseHumanSize('1.5g')).toBe(1_500_000_000);
    expect(parseHumanSize('2 kib')).toBe(2000);
    expect(() => parseHumanSize('ten')).toThrow("invalid size: 'ten'");
    expect(() => parseHumanSize('-1m')).toThrow("invalid size: '-1m'");
  });
  it("no options, or max-file alone: no rotation (Docker's default)", () => {
    expect(parseLogOpts(undefined)).toBeUndefined();
    expect(parseLogOpts({})).toBeUndefined();
    expect(parseLogOpts({ 'max-file': '3' })).toBeUndefined();
  });
  it('max-size with max-file defaulting to 1', () => {
    expect(parseLogOpts({ 'max-size': '10m' })).toEqual({ maxSize: 10_000_000, maxFiles: 1 });
    expect(parseLogOpts({ 'max-size': '100k', 'max-file': '3', compress: 'false' })).toEqual({ maxSize: 100_000, maxFiles: 3 });
  });
  it("refuses with Docker's messages", () => {
    expect(() => parseLogOpts({ 'max-sise': '1m' })).toThrow("unknown log opt 'max-sise' for json-file log driver");
    expect(() => parseLogOpts({ 'max-size': '0' })).toThrow('max-size must be a positive number');
    expect(() => parseLogOpts({ 'max-size': '1m', 'max-file': 'x' })).toThrow('strconv.Atoi: parsing "x": invalid syntax');
    expect(() => parseLogOpts({ 'max-size': '1m', 'max-file': '0' })).toThrow('max-file cannot be less than 1');
    expect(() => parseLogOpts({ 'max-size': '1m', compress: 'maybe' })).toThrow('strconv.ParseBool: parsing "maybe": invalid syntax');
    expect(() => parseLogOpts({ 'max-size': '1m', compress: 'true' })).toThrow(
      'compress cannot be true when max-file is less than 2 or max-size is not set',
    );
    expect(() => parseLogOpts({ 'max-size': '1m', 'max-file': '3', compress: 'true' })).toThrow("log opt 'compress' is not supported");
    expect(() => parseLogOpts({ tag: '{{.Name}}' })).toThrow("log opt 'tag' is not supported");
    expect(() => parseLogOpts({ 'max-size': '0' })).toThrow(expect.objectContaining({ status: 400 }));
  });
  it("merges the daemon defaults under the container's own options", () => {
    expect(resolveLogConfig(undefined, { 'max-size': '1m', 'max-file': '2' })).toEqual({
      logConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2' } },
      rotate: { maxSize: 1_000_000, maxFiles: 2 },
    });
    expect(resolveLogConfig({ Type: '', Config: { 'max-file': '5' } }, { 'max-size': '1m', 'max-file': '2' }).rotate).toEqual({
      maxSize: 1_000_000,
      maxFiles: 5,
    });
    expect(resolveLogConfig({ Type: 'json-file' }).rotate).toBeUndefined();
    expect(() => resolveLogConfig({ Type: 'syslog' })).toThrow('logging driver "syslog" is not supported');
  });
  it('parses --log-opt flags', () => {
    expect(parseLogOptFlags(['max-size=10m', 'max-file=3'])).toEqual({ 'max-size': '10m', 'max-file': '3' });
    expect(() => parseLogOptFlags(['max-size'])).toThrow('invalid key value pair format in log opts: max-size');
  });
});

describe('ContainerManager: log options at create', () => {
  it("applies the daemon default under the container's options and gives the writer the rotation", async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const path = await import('node:path');
    const { Readable } = await import('node:stream');
    const { ContainerManager } = await import('../../../src/runtime/manager.js');
    const { MemoryIsolation } = await import('../../fixtures/fake-isolation.js');
    const { FakeImageStore, busyboxDockerArchive } = await import('../../fixtures/fake-images.js');
    const dataRoot = await mkdtemp(path.join(tmpdir(), 'tvm-logopts-'));
    try {
      const images = new FakeImageStore();
      await images.load(Readable.from([await busyboxDockerArchive()]));
      const m = new ContainerManager({
        dataRoot,
        images,
        isolations: { container: new MemoryIsolation() },
        defaultIsolation: 'container',
        logOpts: { 'max-size': '10m', 'max-file': '2' },
      });
      await m.init();
      const a = await m.create({ Image: 'busybox', Cmd: ['true'] });
      expect(m.get(a.Id).hostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '2' } });
      expect(m.get(a.Id).spec.logRotate).toEqual({ maxSize: 10_000_000, maxFiles: 2 });
      const b = await m.create({
        Image: 'busybox',
        Cmd: ['true'],
        HostConfig: { LogConfig: { Type: 'json-file', Config: { 'max-size': '100k' } } },
      });
      expect(m.get(b.Id).spec.logRotate).toEqual({ maxSize: 100_000, maxFiles: 2 });
      await expect(m.create({ Image: 'busybox', Cmd: ['true'], HostConfig: { LogConfig: { Config: { bogus: '1' } } } })).rejects.toThrow(
        "unknown log opt 'bogus' for json-file log driver",
      );
      const none = new ContainerManager({
        dataRoot: path.join(dataRoot, 'x'),
        images,
        isolations: { container: new MemoryIsolation() },
        defaultIsolation: 'container',
      });
      await none.init();
      const c = await none.create({ Image: 'busybox', Cmd: ['true'] });
      expect(none.get(c.Id).spec.logRotate).toBeUndefined();
    } finally {
      await rm(dataRoot, { recursive: true, force: true, maxRetries: 10, retryDelay: 20 });
    }
  });
});
