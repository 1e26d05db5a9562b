import { describe, it, expect } from 'vitest';
import { encodeFrame, encodeHeader, FrameDecoder, HEADER_SIZE, STREAM_STDERR, STREAM_STDOUT } from '../../../src/api/stream-header.js';
import { splitVersion, versionError, compareVersions, API_VERSION, MIN_API_VERSION } from '../../../src/api/version.js';
import { parseFilters, checkFilterKeys } from '../../../src/api/filters.js';
import { mapError } from '../../../src/api/errors.js';
import { qbool } from '../../../src/api/hijack.js';
import { goFileMode } from '../../../src/api/archive-stat.js';
import { humanDuration } from '../../../src/api/container-json.js';
import { ConflictError, NotFoundError, NotImplementedError } from '../../../src/errors.js';
import { NotModifiedError } from '../../../src/runtime/state-machine.js';

describe('multiplexed stream header', () => {
  it('pins the 8-byte layout: stream id, 3 zero bytes, big-endian length', () => {
    expect(HEADER_SIZE).toBe(8);
    expect([...encodeHeader(STREAM_STDERR, 0x01020304)]).toEqual([2, 0, 0, 0, 1, 2, 3, 4]);
    expect([...encodeFrame(STREAM_STDOUT, 'hi')]).toEqual([1, 0, 0, 0, 0, 0, 0, 2, 0x68, 0x69]);
  });
  it('decodes frames split across chunks', () => {
    const d = new FrameDecoder();
    const all = Buffer.concat([encodeFrame(1, 'hello'), encodeFrame(2, 'err'), encodeFrame(1, '')]);
    const out = [];
    for (let i = 0; i < all.length; i += 3) out.push(...d.push(all.subarray(i, i + 3)));
    expect(out.map((f) => [f.stream, f.payload.toString()])).toEqual([
      [1, 'hello'],
      [2, 'err'],
      [1, ''],
    ]);
    expect(d.pending).toBe(0);
  });
  it('rejects malformed headers', () => {
    expect(() => new FrameDecoder().push(Buffer.from([9, 0, 0, 0, 0, 0, 0, 0]))).toThrow('bad stream id 9');
    expect(() => new FrameDecoder().push(Buffer.from([1, 1, 0, 0, 0, 0, 0, 0]))).toThrow('bad padding');
    expect(() => encodeHeader(1, -1)).toThrow();
  });
});

describe('API version negotiation', () => {
  it('splits the /v1.xx prefix', () => {
    expect(splitVersion('/v1.50/containers/json?all=1')).toEqual({ version: '1.50', url: '/containers/json?all=1' });
    expect(splitVersion('/_ping')).toEqual({ version: undefined, url: '/_ping' });
    expect(splitVersion('/v1.24')).toEqual({ version: '1.24', url: '/' });
    expect(splitVersion('/version')).toEqual({ version: undefined, url: '/version' });
  });
  it("accepts [min, max] and refuses the rest with Docker's messages", () => {
    expect(versionError(API_VERSION)).toBeUndefined();
    expect(versionError(MIN_API_VERSION)).toBeUndefined();
    expect(versionError('1.41')).toBeUndefined();
    expect(versionError('1.99')?.message).toBe(`client version 1.99 is too new. Maximum supported API version is ${API_VERSION}`);
    expect(versionError('1.12')?.message).toBe(
      `client version 1.12 is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`,
    );
    expect(compareVersions('1.9', '1.10')).toBeLessThan(0);
  });
});

describe('filters', () => {
  it('parses both Docker filter encodings', () => {
    expect(parseFilters('{"status":{"running":true,"exited":false}}')).toEqual({ status: ['running'] });
    expect(parseFilters('{"label":["a=b"]}')).toEqual({ label: ['a=b'] });
    expect(parseFilters(undefined)).toEqual({});
  });
  it('rejects malformed filters and unknown keys', () => {
    expect(() => parseFilters('{bad')).toThrow(/invalid filter/);
    expect(() => parseFilters('[1]')).toThrow(/not a JSON object/);
    expect(() => parseFilters('{"a":{"b":"yes"}}')).toThrow(/booleans/);
    expect(() => checkFilterKeys({ colour: [] }, ['status'])).toThrow("invalid filter 'colour'");
  });
});

describe('error mapping', () => {
  it('maps typed errors to Docker statuses', () => {
    expect(mapError(new NotFoundError('No such container: x'))).toEqual({ status: 404, message: 'No such container: x' });
    expect(mapError(new ConflictError('busy'))).toEqual({ status: 409, message: 'busy' });
    expect(mapError(new NotImplementedError('later')).status).toBe(501);
    expect(mapError(new NotModifiedError('same')).status).toBe(304);
    expect(mapError(new Error('bug')).status).toBe(500);
    expect(mapError(Object.assign(new Error('body/Image must be string'), { validation: [], validationContext: 'body' }))).toEqual({
      status: 400,
      message: 'invalid JSON: Image must be string',
    });
  });

  it('words host resource errors as Docker does (op path: description)', async () => {
    const { writeFile } = await import('node:fs/promises');
    // a real errno error from Node, to pin the shape of its message
    const enoent = await writeFile('/nonexistent-dir/x', 'y').catch((e: unknown) => e);
    expect(
      mapError(Object.assign(enoent as Error, { code: 'ENOSPC', message: "ENOSPC: no space left on device, open '/nonexistent-dir/x'" })),
    ).toEqual({ status: 500, message: 'open /nonexistent-dir/x: no space left on device' });
    const noPath = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    expect(mapError(noPath)).toEqual({ status: 500, message: 'write: no space left on device' });
    expect(
      mapError(Object.assign(new Error("EROFS: read-only file system, mkdir '/d'"), { code: 'EROFS', syscall: 'mkdir', path: '/d' })),
    ).toEqual({ status: 500, message: 'mkdir /d: read-only file system' });
  });
});

describe('small helpers', () => {
  it('reads Docker booleans', () => {
    expect(qbool('1')).toBe(true);
    expect(qbool('true')).toBe(true);
    expect(qbool('0')).toBe(false);
    expect(qbool('false')).toBe(false);
    expect(qbool('')).toBe(false);
    expect(qbool(undefined, true)).toBe(true);
  });
  it('encodes Go file modes for docker cp', () => {
    expect(goFileMode({ type: 'directory', mode: 0o755 })).toBe(2 ** 31 + 0o755);
    expect(goFileMode({ type: 'symlink', mode: 0o777 })).toBe(2 ** 27 + 0o777);
    expect(goFileMode({ type: 'file', mode: 0o4755 })).toBe(2 ** 23 + 0o755);
  });
  it("prints Docker's human durations", () => {
    expect(humanDuration(200)).toBe('Less than a second');
    expect(humanDuration(5000)).toBe('5 seconds');
    expect(humanDuration(65_000)).toBe('About a minute');
    expect(humanDuration(3 * 3600_000)).toBe('3 hours');
  });
});

import { parseDetachKeys, detachFilter } from '../../../src/api/detach-keys.js';

describe('detach keys', () => {
  it("parses Docker's key specs", () => {
    expect([...parseDetachKeys('ctrl-p,ctrl-q')]).toEqual([0x10, 0x11]);
    expect([...parseDetachKeys('ctrl-a,x')]).toEqual([0x01, 0x78]);
    expect(() => parseDetachKeys('ctrl-,')).toThrow('Invalid detach keys (ctrl-,) provided');
  });
  it('passes input through and detaches on the sequence, releasing broken partial matches', async () => {
    let detached = 0;
    const f = detachFilter(Buffer.from([0x10, 0x11]), () => detached++);
    const out: Buffer[] = [];
    f.on('data', (c: Buffer) => out.push(c));
    f.write(Buffer.from([0x61, 0x10]));
    f.write(Buffer.from([0x62, 0x10]));
    f.write(Buffer.from([0x11, 0x63]));
    await new Promise((r) => setImmediate(r));
    expect([...Buffer.concat(out)]).toEqual([0x61, 0x10, 0x62]);
    expect(detached).toBe(1);
  });
});
