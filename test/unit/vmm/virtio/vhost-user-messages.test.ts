import { describe, it, expect } from 'vitest';
import {
  VhostUserRequest as Q,
  VhostUserError,
  parseHeader,
  parsePayload,
  encodeMessage,
  encodeReply,
  encodeU64,
  encodeMemory,
  encodeConfig,
  parseReplyHeader,
  vhostUserHeader,
  vhostVringState,
  vhostVringAddr,
  vhostUserMemoryRegion,
  vhostUserMemory,
  vhostUserConfig,
  VHOST_USER_VERSION,
  VHOST_USER_REPLY_MASK,
  VHOST_USER_NEED_REPLY_MASK,
  VHOST_USER_VRING_NOFD_MASK,
  VHOST_USER_MAX_PAYLOAD,
  requestName,
} from '../../../../src/vmm/devices/virtio/vhost-user/messages.js';

/** Header + payload of an encoded message, parsed as the backend does. */
function parse(bytes: Uint8Array, fds: number[] = []) {
  const h = parseHeader(bytes.subarray(0, 12));
  return parsePayload(h, bytes.subarray(12), fds);
}
const region = (gpa: number, size: number) => ({
  guest_phys_addr: BigInt(gpa),
  memory_size: BigInt(size),
  userspace_addr: 0x7f00_0000_0000n + BigInt(gpa),
  mmap_offset: BigInt(gpa),
});

describe('vhost-user message layouts (docs/interop/vhost-user.rst)', () => {
  it('has the spec sizes and offsets', () => {
    expect(vhostUserHeader.size).toBe(12);
    expect([vhostUserHeader.offsetOf('request'), vhostUserHeader.offsetOf('flags'), vhostUserHeader.offsetOf('size')]).toEqual([0, 4, 8]);
    expect(vhostVringState.size).toBe(8);
    expect(vhostVringAddr.size).toBe(40);
    expect(
      ['index', 'flags', 'desc_user_addr', 'used_user_addr', 'avail_user_addr', 'log_guest_addr'].map((f) => vhostVringAddr.offsetOf(f)),
    ).toEqual([0, 4, 8, 16, 24, 32]);
    expect(vhostUserMemory.size).toBe(8);
    expect(vhostUserMemoryRegion.size).toBe(32);
    expect(['guest_phys_addr', 'memory_size', 'userspace_addr', 'mmap_offset'].map((f) => vhostUserMemoryRegion.offsetOf(f))).toEqual([
      0, 8, 16, 24,
    ]);
    expect(vhostUserConfig.size).toBe(12);
    expect(VHOST_USER_MAX_PAYLOAD).toBe(12 + 256);
    expect(Q.VHOST_USER_GET_FEATURES).toBe(1);
    expect(Q.VHOST_USER_SET_MEM_TABLE).toBe(5);
    expect(Q.VHOST_USER_GET_VRING_BASE).toBe(11);
    expect(Q.VHOST_USER_SET_VRING_ENABLE).toBe(18);
    expect(Q.VHOST_USER_GET_CONFIG).toBe(24);
    expect(Q.VHOST_USER_GET_STATUS).toBe(40);
  });
});

describe('parse', () => {
  it('decodes every request shape we serve', () => {
    expect(parse(encodeMessage(Q.VHOST_USER_GET_FEATURES))).toMatchObject({ request: Q.VHOST_USER_GET_FEATURES, needReply: false });
    expect(parse(encodeMessage(Q.VHOST_USER_SET_FEATURES, encodeU64(0x1_4000_0000n)))).toMatchObject({ value: 0x1_4000_0000n });
    expect(parse(encodeMessage(Q.VHOST_USER_SET_VRING_NUM, vhostVringState.pack({ index: 1, num: 1024 })))).toMatchObject({
      state: { index: 1, num: 1024 },
    });
    const addr = {
      index: 0,
      flags: 0,
      desc_user_addr: 0x7f0000001000n,
      used_user_addr: 0x7f0000003000n,
      avail_user_addr: 0x7f0000002000n,
      log_guest_addr: 0n,
    };
    expect(parse(encodeMessage(Q.VHOST_USER_SET_VRING_ADDR, vhostVringAddr.pack(addr)))).toMatchObject({ addr });
    expect(parse(encodeMessage(Q.VHOST_USER_SET_VRING_KICK, encodeU64(1n)), [42])).toMatchObject({ index: 1, noFd: false, fd: 42 });
    expect(parse(encodeMessage(Q.VHOST_USER_SET_VRING_CALL, encodeU64(VHOST_USER_VRING_NOFD_MASK | 2n)))).toMatchObject({
      index: 2,
      noFd: true,
      fd: -1,
    });
    const mem = parse(
      encodeMessage(
        Q.VHOST_USER_SET_MEM_TABLE,
        encodeMemory([region(0, 1 << 20), region(1 << 20, 1 << 20)]),
        VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK,
      ),
      [7, 8],
    );
    expect(mem).toMatchObject({
      needReply: true,
      regions: [
        { guest_phys_addr: 0n, fd: 7 },
        { guest_phys_addr: 1n << 20n, mmap_offset: 1n << 20n, fd: 8 },
      ],
    });
    const cfg = parse(encodeMessage(Q.VHOST_USER_GET_CONFIG, encodeConfig({ offset: 0, size: 8, flags: 0 })));
    expect(cfg).toMatchObject({ config: { offset: 0, size: 8, flags: 0 } });
  });

  it('encodes replies that a front end recognises', () => {
    const r = encodeReply(Q.VHOST_USER_GET_FEATURES, encodeU64(5n));
    const h = parseReplyHeader(r, Q.VHOST_USER_GET_FEATURES);
    expect(h).toEqual({ request: Q.VHOST_USER_GET_FEATURES, flags: VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, size: 8 });
    expect(() => parseReplyHeader(r, Q.VHOST_USER_GET_CONFIG)).toThrow(/expected a reply to VHOST_USER_GET_CONFIG/);
  });

  const bad: [string, () => unknown, RegExp][] = [
    ['a short header', () => parseHeader(new Uint8Array(11)), /header of 11 bytes, need 12/],
    ['version 2', () => parseHeader(encodeMessage(Q.VHOST_USER_SET_OWNER, undefined, 2)), /protocol version 2/],
    ['a reply', () => parseHeader(encodeReply(Q.VHOST_USER_GET_FEATURES, encodeU64(0n))), /a reply where a request was expected/],
    [
      'unknown flags',
      () => parseHeader(encodeMessage(Q.VHOST_USER_SET_OWNER, undefined, VHOST_USER_VERSION | 0x100)),
      /unknown flags 0x101/,
    ],
    ['an unknown request', () => parseHeader(encodeMessage(77)), /unknown request 77/],
    [
      'a request not served',
      () => parseHeader(encodeMessage(Q.VHOST_USER_IOTLB_MSG, new Uint8Array(8))),
      /VHOST_USER_IOTLB_MSG is not supported/,
    ],
    [
      'a wrong size for the request',
      () => parseHeader(encodeMessage(Q.VHOST_USER_SET_VRING_ADDR, new Uint8Array(32))),
      /SET_VRING_ADDR: payload of 32 bytes, expected 40/,
    ],
    [
      'a payload on a GET',
      () => parseHeader(encodeMessage(Q.VHOST_USER_GET_FEATURES, new Uint8Array(8))),
      /GET_FEATURES: payload of 8 bytes, expected 0/,
    ],
    [
      'an oversized memory table',
      () => {
        const m = encodeMessage(Q.VHOST_USER_SET_MEM_TABLE);
        new DataView(m.buffer).setUint32(8, 1 << 30, true);
        return parseHeader(m);
      },
      /payload of 1073741824 bytes, expected 8..264/,
    ],
    [
      'an oversized config',
      () => parseHeader(encodeMessage(Q.VHOST_USER_GET_CONFIG, new Uint8Array(12 + 257))),
      /payload of 269 bytes, expected 12..268/,
    ],
    [
      'too many regions',
      () =>
        parse(
          encodeMessage(
            Q.VHOST_USER_SET_MEM_TABLE,
            (() => {
              const b = encodeMemory([region(0, 4096)]);
              new DataView(b.buffer).setUint32(0, 9, true);
              return b;
            })(),
          ),
          [1],
        ),
      /9 regions, expected 1..8/,
    ],
    ['zero regions', () => parse(encodeMessage(Q.VHOST_USER_SET_MEM_TABLE, encodeMemory([]))), /0 regions/],
    [
      'regions and size disagree',
      () =>
        parse(
          encodeMessage(
            Q.VHOST_USER_SET_MEM_TABLE,
            (() => {
              const b = encodeMemory([region(0, 4096), region(4096, 4096)]);
              new DataView(b.buffer).setUint32(0, 1, true);
              return b;
            })(),
          ),
          [1, 2],
        ),
      /72 bytes for 1 regions, expected 40/,
    ],
    [
      'region fds missing',
      () => parse(encodeMessage(Q.VHOST_USER_SET_MEM_TABLE, encodeMemory([region(0, 4096), region(4096, 4096)])), [3]),
      /1 file descriptors, expected 2/,
    ],
    ['a kick without its fd', () => parse(encodeMessage(Q.VHOST_USER_SET_VRING_KICK, encodeU64(0n))), /0 file descriptors, expected 1/],
    ['an fd where none belongs', () => parse(encodeMessage(Q.VHOST_USER_SET_OWNER), [5]), /1 file descriptors, expected 0/],
    ['unknown vring bits', () => parse(encodeMessage(Q.VHOST_USER_SET_VRING_CALL, encodeU64(1n << 20n)), [5]), /unknown bits/],
    [
      'a config size beyond its payload',
      () =>
        parse(
          encodeMessage(
            Q.VHOST_USER_GET_CONFIG,
            (() => {
              const b = encodeConfig({ offset: 0, size: 8, flags: 0 });
              new DataView(b.buffer).setUint32(4, 9, true);
              return b;
            })(),
          ),
        ),
      /config size 9 in a payload of 20 bytes/,
    ],
    [
      'a payload shorter than the header says',
      () => parsePayload({ request: Q.VHOST_USER_SET_FEATURES, flags: 1, size: 8 }, new Uint8Array(4), []),
      /4 payload bytes, header says 8/,
    ],
  ];
  it.each(bad)('refuses %s with a clear error', (_what, fn, why) => {
    expect(fn).toThrow(VhostUserError);
    expect(fn).toThrow(why);
  });

  it('names requests', () => {
    expect(requestName(Q.VHOST_USER_SET_VRING_CALL)).toBe('VHOST_USER_SET_VRING_CALL');
    expect(requestName(1234)).toBe('request 1234');
  });
});
