/**
 * vhost-user messages (QEMU docs/interop/vhost-user.rst): the 12-byte header and the payloads
 * of the requests this backend serves, with the spec's names. Everything from the socket is
 * the frontend's word: a header is checked (version, flags, size against the request) before
 * its payload is read, and a payload is decoded only when its size is exactly what the request
 * carries. Requests the spec defines but we do not serve, and unknown ones, are refused by
 * name or number.
 */
import { Layout, type FieldType, type Field } from '../../../../kvm/layout.js';
import { TvmError, type ErrorCode } from '../../../../errors.js';

const f = (offset: number, type: FieldType): Field => ({ offset, type });

export class VhostUserError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_VHOST_USER') {
    super(code, message, 500);
  }
}

/** Front-end requests ("master message types"). */
export const VhostUserRequest = {
  VHOST_USER_GET_FEATURES: 1,
  VHOST_USER_SET_FEATURES: 2,
  VHOST_USER_SET_OWNER: 3,
  VHOST_USER_RESET_OWNER: 4,
  VHOST_USER_SET_MEM_TABLE: 5,
  VHOST_USER_SET_LOG_BASE: 6,
  VHOST_USER_SET_LOG_FD: 7,
  VHOST_USER_SET_VRING_NUM: 8,
  VHOST_USER_SET_VRING_ADDR: 9,
  VHOST_USER_SET_VRING_BASE: 10,
  VHOST_USER_GET_VRING_BASE: 11,
  VHOST_USER_SET_VRING_KICK: 12,
  VHOST_USER_SET_VRING_CALL: 13,
  VHOST_USER_SET_VRING_ERR: 14,
  VHOST_USER_GET_PROTOCOL_FEATURES: 15,
  VHOST_USER_SET_PROTOCOL_FEATURES: 16,
  VHOST_USER_GET_QUEUE_NUM: 17,
  VHOST_USER_SET_VRING_ENABLE: 18,
  VHOST_USER_SEND_RARP: 19,
  VHOST_USER_NET_SET_MTU: 20,
  VHOST_USER_SET_BACKEND_REQ_FD: 21,
  VHOST_USER_IOTLB_MSG: 22,
  VHOST_USER_SET_VRING_ENDIAN: 23,
  VHOST_USER_GET_CONFIG: 24,
  VHOST_USER_SET_CONFIG: 25,
  VHOST_USER_CREATE_CRYPTO_SESSION: 26,
  VHOST_USER_CLOSE_CRYPTO_SESSION: 27,
  VHOST_USER_POSTCOPY_ADVISE: 28,
  VHOST_USER_POSTCOPY_LISTEN: 29,
  VHOST_USER_POSTCOPY_END: 30,
  VHOST_USER_GET_INFLIGHT_FD: 31,
  VHOST_USER_SET_INFLIGHT_FD: 32,
  VHOST_USER_GPU_SET_SOCKET: 33,
  VHOST_USER_RESET_DEVICE: 34,
  VHOST_USER_VRING_KICK: 35,
  VHOST_USER_GET_MAX_MEM_SLOTS: 36,
  VHOST_USER_ADD_MEM_REG: 37,
  VHOST_USER_REM_MEM_REG: 38,
  VHOST_USER_SET_STATUS: 39,
  VHOST_USER_GET_STATUS: 40,
} as const;
export type VhostUserRequestName = keyof typeof VhostUserRequest;
const NAMES = new Map<number, VhostUserRequestName>(Object.entries(VhostUserRequest).map(([k, v]) => [v, k as VhostUserRequestName]));
export const requestName = (r: number): string => NAMES.get(r) ?? `request ${r}`;

export const VHOST_USER_VERSION = 0x1;
export const VHOST_USER_VERSION_MASK = 0x3;
export const VHOST_USER_REPLY_MASK = 0x1 << 2;
export const VHOST_USER_NEED_REPLY_MASK = 0x1 << 3;
/** u64 payload of SET_VRING_KICK/CALL/ERR: the ring index, and "no fd follows". */
export const VHOST_USER_VRING_IDX_MASK = 0xffn;
export const VHOST_USER_VRING_NOFD_MASK = 0x1n << 8n;

/** Feature bit 30: the backend speaks GET/SET_PROTOCOL_FEATURES. */
export const VHOST_USER_F_PROTOCOL_FEATURES = 30;
export const VHOST_USER_PROTOCOL_F_MQ = 0;
export const VHOST_USER_PROTOCOL_F_REPLY_ACK = 3;
export const VHOST_USER_PROTOCOL_F_CONFIG = 9;

/** Regions one SET_MEM_TABLE carries at most (VHOST_MEMORY_BASELINE_NREGIONS). */
export const VHOST_MEMORY_BASELINE_NREGIONS = 8;
export const VHOST_USER_MAX_CONFIG_SIZE = 256;

export interface VhostUserHeader {
  request: number;
  flags: number;
  size: number;
}
export const vhostUserHeader = new Layout<VhostUserHeader>('VhostUserHeader', 12, {
  request: f(0, 'u32'),
  flags: f(4, 'u32'),
  size: f(8, 'u32'),
});
export interface VhostVringState {
  index: number;
  num: number;
}
export const vhostVringState = new Layout<VhostVringState>('struct vhost_vring_state', 8, {
  index: f(0, 'u32'),
  num: f(4, 'u32'),
});
export interface VhostVringAddr {
  index: number;
  flags: number;
  desc_user_addr: bigint;
  used_user_addr: bigint;
  avail_user_addr: bigint;
  log_guest_addr: bigint;
}
export const vhostVringAddr = new Layout<VhostVringAddr>('struct vhost_vring_addr', 40, {
  index: f(0, 'u32'),
  flags: f(4, 'u32'),
  desc_user_addr: f(8, 'u64'),
  used_user_addr: f(16, 'u64'),
  avail_user_addr: f(24, 'u64'),
  log_guest_addr: f(32, 'u64'),
});
export interface VhostUserMemoryRegion {
  guest_phys_addr: bigint;
  memory_size: bigint;
  userspace_addr: bigint;
  mmap_offset: bigint;
}
export const vhostUserMemoryRegion = new Layout<VhostUserMemoryRegion>('VhostUserMemoryRegion', 32, {
  guest_phys_addr: f(0, 'u64'),
  memory_size: f(8, 'u64'),
  userspace_addr: f(16, 'u64'),
  mmap_offset: f(24, 'u64'),
});
/** VhostUserMemory without its regions[]: they follow at offset 8. */
export const vhostUserMemory = new Layout<{ nregions: number; padding: number }>('VhostUserMemory', 8, {
  nregions: f(0, 'u32'),
  padding: f(4, 'u32'),
});
/** VhostUserConfig without its payload[]: `size` bytes follow at offset 12. */
export const vhostUserConfig = new Layout<{ offset: number; size: number; flags: number }>('VhostUserConfig', 12, {
  offset: f(0, 'u32'),
  size: f(4, 'u32'),
  flags: f(8, 'u32'),
});

const MEMORY_MAX = vhostUserMemory.size + vhostUserMemoryRegion.size * VHOST_MEMORY_BASELINE_NREGIONS;
const CONFIG_MAX = vhostUserConfig.size + VHOST_USER_MAX_CONFIG_SIZE;
/** The largest payload of any request we serve: a header claiming more is refused unread. */
export const VHOST_USER_MAX_PAYLOAD = Math.max(MEMORY_MAX, CONFIG_MAX);

type R = typeof VhostUserRequest;
/** A decoded front-end message. `fds` are the descriptors that came with it (owned by the receiver). */
export type VhostUserMessage = { flags: number; needReply: boolean } & (
  | {
      request:
        | R['VHOST_USER_GET_FEATURES']
        | R['VHOST_USER_GET_PROTOCOL_FEATURES']
        | R['VHOST_USER_GET_QUEUE_NUM']
        | R['VHOST_USER_SET_OWNER']
        | R['VHOST_USER_RESET_OWNER']
        | R['VHOST_USER_RESET_DEVICE'];
    }
  | { request: R['VHOST_USER_SET_FEATURES'] | R['VHOST_USER_SET_PROTOCOL_FEATURES']; value: bigint }
  | {
      request: R['VHOST_USER_SET_VRING_KICK'] | R['VHOST_USER_SET_VRING_CALL'] | R['VHOST_USER_SET_VRING_ERR'];
      index: number;
      noFd: boolean;
      fd: number;
    }
  | {
      request:
        R['VHOST_USER_SET_VRING_NUM'] | R['VHOST_USER_SET_VRING_BASE'] | R['VHOST_USER_GET_VRING_BASE'] | R['VHOST_USER_SET_VRING_ENABLE'];
      state: VhostVringState;
    }
  | { request: R['VHOST_USER_SET_VRING_ADDR']; addr: VhostVringAddr }
  | { request: R['VHOST_USER_SET_MEM_TABLE']; regions: (VhostUserMemoryRegion & { fd: number })[] }
  | {
      request: R['VHOST_USER_GET_CONFIG'] | R['VHOST_USER_SET_CONFIG'];
      config: { offset: number; size: number; flags: number; payload: Uint8Array };
    }
);

type Shape = 'none' | 'u64' | 'vring-fd' | 'state' | 'addr' | 'memory' | 'config';
const Q = VhostUserRequest;
/** The requests we serve and what each one carries. */
const SHAPES = new Map<number, Shape>([
  [Q.VHOST_USER_GET_FEATURES, 'none'],
  [Q.VHOST_USER_GET_PROTOCOL_FEATURES, 'none'],
  [Q.VHOST_USER_GET_QUEUE_NUM, 'none'],
  [Q.VHOST_USER_SET_OWNER, 'none'],
  [Q.VHOST_USER_RESET_OWNER, 'none'],
  [Q.VHOST_USER_RESET_DEVICE, 'none'],
  [Q.VHOST_USER_SET_FEATURES, 'u64'],
  [Q.VHOST_USER_SET_PROTOCOL_FEATURES, 'u64'],
  [Q.VHOST_USER_SET_VRING_KICK, 'vring-fd'],
  [Q.VHOST_USER_SET_VRING_CALL, 'vring-fd'],
  [Q.VHOST_USER_SET_VRING_ERR, 'vring-fd'],
  [Q.VHOST_USER_SET_VRING_NUM, 'state'],
  [Q.VHOST_USER_SET_VRING_BASE, 'state'],
  [Q.VHOST_USER_GET_VRING_BASE, 'state'],
  [Q.VHOST_USER_SET_VRING_ENABLE, 'state'],
  [Q.VHOST_USER_SET_VRING_ADDR, 'addr'],
  [Q.VHOST_USER_SET_MEM_TABLE, 'memory'],
  [Q.VHOST_USER_GET_CONFIG, 'config'],
  [Q.VHOST_USER_SET_CONFIG, 'config'],
]);
const FIXED: Partial<Record<Shape, number>> = { none: 0, u64: 8, 'vring-fd': 8, state: vhostVringState.size, addr: vhostVringAddr.size };

/**
 * Checks a header as it arrives, before its payload is read: version 1, not a reply, a request
 * we serve, a size that request can have.
 */
export function parseHeader(buf: Uint8Array): VhostUserHeader {
  if (buf.length < vhostUserHeader.size) throw new VhostUserError(`message header of ${buf.length} bytes, need ${vhostUserHeader.size}`);
  const h = vhostUserHeader.decode(buf);
  const name = requestName(h.request);
  if ((h.flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION)
    throw new VhostUserError(`${name}: protocol version ${h.flags & VHOST_USER_VERSION_MASK}, expected ${VHOST_USER_VERSION}`);
  if (h.flags & VHOST_USER_REPLY_MASK) throw new VhostUserError(`${name}: a reply where a request was expected`);
  if (h.flags & ~(VHOST_USER_VERSION_MASK | VHOST_USER_REPLY_MASK | VHOST_USER_NEED_REPLY_MASK))
    throw new VhostUserError(`${name}: unknown flags 0x${h.flags.toString(16)}`);
  const shape = SHAPES.get(h.request);
  if (!shape) throw new VhostUserError(NAMES.has(h.request) ? `${name} is not supported by this backend` : `unknown request ${h.request}`);
  const fixed = FIXED[shape];
  if (fixed !== undefined && h.size !== fixed) throw new VhostUserError(`${name}: payload of ${h.size} bytes, expected ${fixed}`);
  if (shape === 'memory' && (h.size < vhostUserMemory.size || h.size > MEMORY_MAX))
    throw new VhostUserError(`${name}: payload of ${h.size} bytes, expected ${vhostUserMemory.size}..${MEMORY_MAX}`);
  if (shape === 'config' && (h.size < vhostUserConfig.size || h.size > CONFIG_MAX))
    throw new VhostUserError(`${name}: payload of ${h.size} bytes, expected ${vhostUserConfig.size}..${CONFIG_MAX}`);
  return h;
}

/**
 * Decodes a whole message (header already passed parseHeader) with the descriptors that came
 * with it. Throws when the payload or the descriptor count does not fit the request; the
 * descriptors stay the caller's to close in that case.
 */
export function parsePayload(h: VhostUserHeader, payload: Uint8Array, fds: readonly number[]): VhostUserMessage {
  const name = requestName(h.request);
  if (payload.length !== h.size) throw new VhostUserError(`${name}: ${payload.length} payload bytes, header says ${h.size}`);
  const base = { flags: h.flags, needReply: (h.flags & VHOST_USER_NEED_REPLY_MASK) !== 0 };
  const shape = SHAPES.get(h.request)!;
  const wantFds = (n: number) => {
    if (fds.length !== n) throw new VhostUserError(`${name}: ${fds.length} file descriptors, expected ${n}`);
  };
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  switch (shape) {
    case 'none':
      wantFds(0);
      return { ...base, request: h.request } as VhostUserMessage;
    case 'u64':
      wantFds(0);
      return { ...base, request: h.request, value: view.getBigUint64(0, true) } as VhostUserMessage;
    case 'vring-fd': {
      const v = view.getBigUint64(0, true);
      if (v & ~(VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK))
        throw new VhostUserError(`${name}: payload 0x${v.toString(16)} has unknown bits`);
      const noFd = (v & VHOST_USER_VRING_NOFD_MASK) !== 0n;
      wantFds(noFd ? 0 : 1);
      return {
        ...base,
        request: h.request,
        index: Number(v & VHOST_USER_VRING_IDX_MASK),
        noFd,
        fd: noFd ? -1 : fds[0]!,
      } as VhostUserMessage;
    }
    case 'state':
      wantFds(0);
      return { ...base, request: h.request, state: vhostVringState.decode(payload) } as VhostUserMessage;
    case 'addr':
      wantFds(0);
      return { ...base, request: h.request, addr: vhostVringAddr.decode(payload) } as VhostUserMessage;
    case 'memory': {
      const { nregions } = vhostUserMemory.decode(payload);
      if (nregions < 1 || nregions > VHOST_MEMORY_BASELINE_NREGIONS)
        throw new VhostUserError(`${name}: ${nregions} regions, expected 1..${VHOST_MEMORY_BASELINE_NREGIONS}`);
      const need = vhostUserMemory.size + vhostUserMemoryRegion.size * nregions;
      if (payload.length !== need) throw new VhostUserError(`${name}: ${payload.length} bytes for ${nregions} regions, expected ${need}`);
      wantFds(nregions);
      const regions = [];
      for (let i = 0; i < nregions; i++) {
        const r = vhostUserMemoryRegion.decode(payload, vhostUserMemory.size + vhostUserMemoryRegion.size * i);
        regions.push({ ...r, fd: fds[i]! });
      }
      return { ...base, request: h.request, regions } as VhostUserMessage;
    }
    case 'config': {
      wantFds(0);
      const c = vhostUserConfig.decode(payload);
      if (c.size > VHOST_USER_MAX_CONFIG_SIZE || payload.length !== vhostUserConfig.size + c.size) {
        throw new VhostUserError(`${name}: config size ${c.size} in a payload of ${payload.length} bytes`);
      }
      return { ...base, request: h.request, config: { ...c, payload: payload.slice(vhostUserConfig.size) } } as VhostUserMessage;
    }
  }
}

/** One whole message: header + payload. `flags` defaults to a request of version 1. */
export function encodeMessage(request: number, payload: Uint8Array = new Uint8Array(0), flags = VHOST_USER_VERSION): Uint8Array {
  const out = new Uint8Array(vhostUserHeader.size + payload.length);
  vhostUserHeader.encode(out, { request, flags, size: payload.length });
  out.set(payload, vhostUserHeader.size);
  return out;
}

/** A reply to `request` (REPLY flag, version 1). */
export const encodeReply = (request: number, payload: Uint8Array): Uint8Array =>
  encodeMessage(request, payload, VHOST_USER_VERSION | VHOST_USER_REPLY_MASK);

export function encodeU64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}

export function encodeMemory(regions: readonly VhostUserMemoryRegion[]): Uint8Array {
  const b = new Uint8Array(vhostUserMemory.size + vhostUserMemoryRegion.size * regions.length);
  vhostUserMemory.encode(b, { nregions: regions.length, padding: 0 });
  regions.forEach((r, i) => vhostUserMemoryRegion.encode(b, r, vhostUserMemory.size + vhostUserMemoryRegion.size * i));
  return b;
}

export function encodeConfig(c: { offset: number; size: number; flags: number; payload?: Uint8Array }): Uint8Array {
  const b = new Uint8Array(vhostUserConfig.size + c.size);
  vhostUserConfig.encode(b, { offset: c.offset, size: c.size, flags: c.flags });
  if (c.payload) b.set(c.payload.subarray(0, c.size), vhostUserConfig.size);
  return b;
}

/** The reply's header, checked by a front end (tests): a reply to `request`. */
export function parseReplyHeader(buf: Uint8Array, request: number): VhostUserHeader {
  const h = vhostUserHeader.decode(buf);
  if (h.request !== request || !(h.flags & VHOST_USER_REPLY_MASK) || (h.flags & VHOST_USER_VERSION_MASK) !== VHOST_USER_VERSION) {
    throw new VhostUserError(`expected a reply to ${requestName(request)}, got ${requestName(h.request)} flags 0x${h.flags.toString(16)}`);
  }
  return h;
}
