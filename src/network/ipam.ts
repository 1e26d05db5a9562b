/**
 * IPv4 address management for bridge networks: CIDR parsing and Docker's validation of a
 * network's IPAM config (subnet, gateway, ip-range), pool selection that avoids the host's
 * routes and other networks, and per-network address allocation (static or next free).
 * Pure functions over plain records, so the store can persist them as they are.
 */
import { ConflictError, InvalidParameterError, TvmError, type ErrorCode } from '../errors.js';

export interface Cidr {
  /** network address as an unsigned 32-bit number */
  base: number;
  prefix: number;
}

/** What a network's IPAM keeps (Docker's IPAM.Config entry, normalized). */
export interface IpamConfig {
  Subnet: string;
  Gateway: string;
  /** allocation range inside the subnet (absent: the whole subnet) */
  IPRange?: string;
}

/** 403: Docker's ForbiddenError (overlapping pools, addresses taken). */
export class ForbiddenError extends TvmError {
  constructor(message: string, code: ErrorCode = 'ERR_FORBIDDEN') {
    super(code, message, 403);
  }
}

export function parseIp(s: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return undefined;
  const parts = m.slice(1).map(Number);
  if (parts.some((p, i) => p > 255 || (m[i + 1]!.length > 1 && m[i + 1]!.startsWith('0')))) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function formatIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "a.b.c.d/n" as written (host bits kept in `addr`). */
export function parseCidr(s: string): { addr: number; prefix: number } | undefined {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
  if (!m) return undefined;
  const addr = parseIp(m[1]!);
  const prefix = Number(m[2]);
  if (addr === undefined || prefix > 32) return undefined;
  return { addr, prefix };
}

export function cidr(s: string): Cidr {
  const c = parseCidr(s);
  if (!c) throw new InvalidParameterError(`invalid CIDR address: ${s}`);
  return { base: (c.addr & maskOf(c.prefix)) >>> 0, prefix: c.prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.base)}/${c.prefix}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return (ip & maskOf(c.prefix)) >>> 0 === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return (a.base & maskOf(p)) >>> 0 === (b.base & maskOf(p)) >>> 0;
}

/**
 * Docker's ValidateIPAM for one IPv4 config: every problem listed, under "invalid network
 * config:", as the daemon answers (400).
 */
export function validateIpamConfig(cfg: { Subnet?: string; Gateway?: string; IPRange?: string }): void {
  const errs: string[] = [];
  const sub = cfg.Subnet ?? '';
  const parsed = parseCidr(sub);
  if (!parsed) {
    errs.push(`invalid subnet ${sub}: invalid CIDR block notation`);
  } else {
    const c = { base: (parsed.addr & maskOf(parsed.prefix)) >>> 0, prefix: parsed.prefix };
    if (c.base !== parsed.addr) errs.push(`invalid subnet ${sub}: it should be ${formatCidr(c)}`);
    if (cfg.IPRange) {
      const r = parseCidr(cfg.IPRange);
      if (!r) errs.push(`invalid ip-range ${cfg.IPRange}: invalid CIDR block notation`);
      else {
        const rc = { base: (r.addr & maskOf(r.prefix)) >>> 0, prefix: r.prefix };
        if (rc.base !== r.addr) errs.push(`invalid ip-range ${cfg.IPRange}: it should be ${formatCidr(rc)}`);
        if (r.prefix < c.prefix || !contains(c, rc.base))
          errs.push(`invalid ip-range ${cfg.IPRange}: parent subnet ${formatCidr(c)} does not contain this IP range`);
      }
    }
    if (cfg.Gateway) {
      const g = parseIp(cfg.Gateway);
      if (g === undefined) errs.push(`invalid gateway ${cfg.Gateway}: invalid address`);
      else if (!contains(c, g)) errs.push(`invalid gateway ${cfg.Gateway}: parent subnet ${formatCidr(c)} does not contain this address`);
    }
    if (c.prefix > 30) errs.push(`invalid subnet ${sub}: too small for a bridge network (at most /30)`);
  }
  if (errs.length > 0) throw new InvalidParameterError(`invalid network config:\n${errs.join('\n')}`);
}

/** Docker's default address pools: 172.17-31.0.0/16, then 192.168.0.0/16 in /20s. */
export const DEFAULT_POOLS: { base: string; size: number }[] = [
  { base: '172.17.0.0/16', size: 16 },
  { base: '172.18.0.0/16', size: 16 },
  { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 },
  { base: '172.24.0.0/14', size: 16 },
  { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** `--default-address-pool base=10.10.0.0/16,size=24` */
export function parseAddressPool(s: string): { base: string; size: number } {
  const kv = Object.fromEntries(
    s.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()];
    }),
  );
  const base = kv.base ?? '';
  const sz = Number(kv.size);
  const c = parseCidr(base);
  if (!c || !Number.isInteger(sz) || sz < c.prefix || sz > 30)
    throw new InvalidParameterError(
      `invalid default address pool ${JSON.stringify(s)}: want base=<cidr>,size=<prefix length, at least the base's, at most 30>`,
    );
  return { base, size: sz };
}

/**
 * The first subnet of the pools that overlaps neither a network we have nor a route of the
 * host (Docker's "not to clash with the host's routes").
 */
export function pickSubnet(pools: { base: string; size: number }[], taken: Cidr[]): Cidr {
  for (const pool of pools) {
    const p = cidr(pool.base);
    const step = 2 ** (32 - pool.size);
    for (let b = p.base; b < p.base + size(p); b += step) {
      const cand = { base: b >>> 0, prefix: pool.size };
      if (!taken.some((t) => overlaps(t, cand))) return cand;
    }
  }
  throw new ForbiddenError(
    'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network',
    'ERR_NO_POOL',
  );
}

/** A network's addresses in use: ip -> owner (container id, or "gateway"). */
export type Allocations = Record<string, string>;

function rangeOf(cfg: IpamConfig): Cidr {
  return cidr(cfg.IPRange ?? cfg.Subnet);
}

/**
 * Allocates `requested` (static --ip) or the next free address of the range; the network and
 * broadcast addresses and the gateway are never handed out. Mutates `used`.
 */
export function allocate(cfg: IpamConfig, used: Allocations, owner: string, requested?: string): string {
  const sub = cidr(cfg.Subnet);
  if (requested !== undefined) {
    const ip = parseIp(requested);
    if (ip === undefined) throw new InvalidParameterError(`invalid IPv4 address: ${requested}`);
    if (!contains(sub, ip) || ip === sub.base || ip === sub.base + size(sub) - 1) {
      throw new InvalidParameterError(`no configured subnet or ip-range contain the IP address ${requested}`);
    }
    if (used[requested] !== undefined && used[requested] !== owner)
      throw new ForbiddenError('Address already in use', 'ERR_ADDRESS_IN_USE');
    used[requested] = owner;
    return requested;
  }
  const r = rangeOf(cfg);
  const first = Math.max(r.base, sub.base + 1);
  const last = Math.min(r.base + size(r) - 1, sub.base + size(sub) - 2);
  for (let ip = first; ip <= last; ip++) {
    const s = formatIp(ip);
    if (used[s] === undefined) {
      used[s] = owner;
      return s;
    }
  }
  throw new ConflictError(`no available IPv4 addresses on this network's address pools: ${cfg.Subnet}`, 'ERR_NO_ADDRESS');
}

export function release(used: Allocations, owner: string): void {
  for (const [ip, o] of Object.entries(used)) if (o === owner) delete used[ip];
}

/** Normalizes a validated config: subnet masked, gateway defaulting to the subnet's first address. */
export function completeConfig(cfg: { Subnet: string; Gateway?: string; IPRange?: string }): IpamConfig {
  const sub = cidr(cfg.Subnet);
  const out: IpamConfig = { Subnet: formatCidr(sub), Gateway: cfg.Gateway || formatIp(sub.base + 1) };
  if (cfg.IPRange) out.IPRange = cfg.IPRange;
  return out;
}

/** A MAC derived from the address, as Docker's bridge driver does (02:42 + the IPv4 bytes). */
export function macFor(ip: string): string {
  const n = parseIp(ip) ?? 0;
  return ['02', '42', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
