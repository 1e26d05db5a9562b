/**
 * Docker's seccomp profile format (moby profiles/seccomp: the JSON `--security-opt
 * seccomp=<file>` sends), parsed strictly by type, then resolved for one container: the rules
 * that apply to its capabilities, architecture and kernel, by syscall number.
 *
 * Semantics (as Docker + runc + libseccomp give them, made explicit):
 * - A rule applies unless an `excludes` matches (any listed cap held, or our arch listed) or an
 *   `includes` does not (every listed cap held, our arch listed, kernel >= minKernel).
 * - Syscall names unknown on x86_64 are skipped, as runc does (profiles list other arches' names).
 * - Per syscall, rules with argument conditions are tried in profile order (all of a rule's
 *   conditions must hold; the first rule that matches decides); if none matches, the last rule
 *   without conditions decides; else the default action.
 * - Only x86_64 syscalls are filtered: i386 and x32 entry points are killed (a stricter stance
 *   than Docker's, which also admits them when the profile lists those sub-architectures).
 */
import { release } from 'node:os';
import { InvalidParameterError } from '../errors.js';
import {
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_DATA,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
} from './bpf.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

export interface ProfileArg {
  index: number;
  value: number | bigint;
  valueTwo?: number | bigint;
  op: string;
}

export interface ProfileFilter {
  caps?: string[] | null;
  arches?: string[] | null;
  minKernel?: string | null;
}

export interface ProfileSyscall {
  name?: string;
  names?: string[] | null;
  action: string;
  errnoRet?: number | null;
  args?: ProfileArg[] | null;
  comment?: string;
  includes?: ProfileFilter | null;
  excludes?: ProfileFilter | null;
}

export interface ProfileJson {
  defaultAction: string;
  defaultErrnoRet?: number | null;
  architectures?: string[] | null;
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null;
  syscalls: ProfileSyscall[];
  flags?: string[] | null;
  listenerPath?: string;
  listenerMetadata?: string;
}

export type CmpOp = 'SCMP_CMP_NE' | 'SCMP_CMP_LT' | 'SCMP_CMP_LE' | 'SCMP_CMP_EQ' | 'SCMP_CMP_GE' | 'SCMP_CMP_GT' | 'SCMP_CMP_MASKED_EQ';
export const CMP_OPS: readonly CmpOp[] = [
  'SCMP_CMP_NE',
  'SCMP_CMP_LT',
  'SCMP_CMP_LE',
  'SCMP_CMP_EQ',
  'SCMP_CMP_GE',
  'SCMP_CMP_GT',
  'SCMP_CMP_MASKED_EQ',
];

export interface ArgCondition {
  index: number;
  op: CmpOp;
  /** 64-bit operands; for MASKED_EQ `value` is the mask and `valueTwo` the expected result */
  value: bigint;
  valueTwo: bigint;
}

export interface CondRule {
  conditions: ArgCondition[];
  /** the filter's return value (SECCOMP_RET_*) */
  ret: number;
}

export interface SyscallRules {
  conditional: CondRule[];
  /** return value when no conditional rule matches; undefined: the default action */
  otherwise?: number;
}

export interface ResolvedFilter {
  defaultRet: number;
  rules: Map<number, SyscallRules>;
  /** SECCOMP_FILTER_FLAG_* bits for seccomp(2) */
  flags: number;
}

/** SECCOMP_FILTER_FLAG_* (linux/seccomp.h) as Docker profiles name them. */
export const FILTER_FLAGS: Readonly<Record<string, number>> = {
  SECCOMP_FILTER_FLAG_TSYNC: 1,
  SECCOMP_FILTER_FLAG_LOG: 2,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 4,
};

const EPERM = 1;

function bad(msg: string): never {
  throw new InvalidParameterError(`invalid seccomp profile: ${msg}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function strArray(v: unknown, where: string): string[] | null | undefined {
  if (v === undefined || v === null) return v;
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) bad(`${where}: expected an array of strings`);
  return v as string[];
}

function optInt(v: unknown, where: string, min: number, max: number): number | null | undefined {
  if (v === undefined || v === null) return v;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) bad(`${where}: expected an integer in ${min}..${max}`);
  return v;
}

/** An unsigned 64-bit operand: a JSON number, or a decimal string (big values, see parseProfile). */
function u64(v: unknown, where: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'bigint' && v >= 0n && v < 1n << 64n) return v;
  if (typeof v === 'string' && /^\d+$/.test(v) && BigInt(v) < 1n << 64n) return BigInt(v);
  return bad(`${where}: expected an unsigned 64-bit integer, got ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`);
}

function filterOf(v: unknown, where: string): ProfileFilter | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) bad(`${where}: expected an object`);
  const f: ProfileFilter = {};
  const caps = strArray(v.caps, `${where}.caps`);
  const arches = strArray(v.arches, `${where}.arches`);
  if (caps) f.caps = caps;
  if (arches) f.arches = arches;
  if (v.minKernel !== undefined && v.minKernel !== null && v.minKernel !== '') {
    if (typeof v.minKernel !== 'string' || !/^\d+\.\d+(\.\d+)?$/.test(v.minKernel))
      bad(`${where}.minKernel: expected a kernel version like "4.8"`);
    f.minKernel = v.minKernel;
  }
  return f;
}

/**
 * Parses a profile's JSON text. Numbers above 2^53 (uint64 masks) would lose precision in
 * JSON.parse, so argument operands are lifted to strings first.
 */
export function parseProfile(text: string): ProfileJson {
  let raw: unknown;
  try {
    raw = JSON.parse(text.replace(/("value(?:Two)?"\s*:\s*)(\d{16,})/g, '$1"$2"'));
  } catch (e) {
    bad(`not JSON: ${(e as Error).message}`);
  }
  return validateProfile(raw);
}

/** Checks a parsed profile's shape; unknown keys are ignored, as Docker's decoder does. */
export function validateProfile(raw: unknown): ProfileJson {
  if (!isObj(raw)) bad('expected a JSON object');
  if (typeof raw.defaultAction !== 'string' || raw.defaultAction === '') bad('defaultAction: required');
  const p: ProfileJson = { defaultAction: raw.defaultAction, syscalls: [] };
  const der = optInt(raw.defaultErrnoRet, 'defaultErrnoRet', 0, SECCOMP_RET_DATA);
  if (der !== undefined && der !== null) p.defaultErrnoRet = der;
  const arches = strArray(raw.architectures, 'architectures');
  if (raw.archMap !== undefined && raw.archMap !== null) {
    if (arches && arches.length > 0) bad("'architectures' and 'archMap' cannot both be specified");
    if (!Array.isArray(raw.archMap)) bad('archMap: expected an array');
    p.archMap = raw.archMap.map((m, i) => {
      if (!isObj(m) || typeof m.architecture !== 'string') bad(`archMap[${i}].architecture: required`);
      return { architecture: m.architecture, subArchitectures: strArray(m.subArchitectures, `archMap[${i}].subArchitectures`) ?? null };
    });
  }
  if (arches) p.architectures = arches;
  const flags = strArray(raw.flags, 'flags');
  if (flags) {
    for (const f of flags) if (!(f in FILTER_FLAGS)) bad(`flags: unknown flag "${f}" (known: ${Object.keys(FILTER_FLAGS).join(', ')})`);
    p.flags = flags;
  }
  if (typeof raw.listenerPath === 'string' && raw.listenerPath !== '')
    bad('listenerPath: seccomp user notification (SCMP_ACT_NOTIFY) is not supported by tvm');
  if (raw.syscalls !== undefined && raw.syscalls !== null) {
    if (!Array.isArray(raw.syscalls)) bad('syscalls: expected an array');
    p.syscalls = raw.syscalls.map((s, i) => validateSyscall(s, `syscalls[${i}]`));
  }
  actionRet(p.defaultAction, p.defaultErrnoRet ?? undefined, 'defaultAction');
  return p;
}

function validateSyscall(s: unknown, where: string): ProfileSyscall {
  if (!isObj(s)) bad(`${where}: expected an object`);
  if (typeof s.action !== 'string' || s.action === '') bad(`${where}.action: required`);
  const out: ProfileSyscall = { action: s.action };
  const names = strArray(s.names, `${where}.names`);
  if (s.name !== undefined && s.name !== '') {
    if (typeof s.name !== 'string') bad(`${where}.name: expected a string`);
    if (names && names.length > 0) bad(`${where}: 'name' and 'names' cannot both be specified`);
    out.name = s.name;
  }
  if (names) out.names = names;
  const errnoRet = optInt(s.errnoRet, `${where}.errnoRet`, 0, SECCOMP_RET_DATA);
  if (errnoRet !== undefined && errnoRet !== null) out.errnoRet = errnoRet;
  actionRet(out.action, out.errnoRet ?? undefined, `${where}.action`);
  if (s.args !== undefined && s.args !== null) {
    if (!Array.isArray(s.args)) bad(`${where}.args: expected an array`);
    // one condition per syscall argument at most, as libseccomp takes them
    if (s.args.length > 6) bad(`${where}.args: at most 6 conditions per rule`);
    out.args = s.args.map((a, j) => {
      const w = `${where}.args[${j}]`;
      if (!isObj(a)) bad(`${w}: expected an object`);
      const index = optInt(a.index, `${w}.index`, 0, 5);
      if (index === undefined || index === null) bad(`${w}.index: required (0..5)`);
      if (typeof a.op !== 'string' || !(CMP_OPS as readonly string[]).includes(a.op))
        bad(`${w}.op: expected one of ${CMP_OPS.join(', ')}, got ${JSON.stringify(a.op)}`);
      return { index, op: a.op, value: u64(a.value ?? 0, `${w}.value`), valueTwo: u64(a.valueTwo ?? 0, `${w}.valueTwo`) };
    });
  }
  const inc = filterOf(s.includes, `${where}.includes`);
  const exc = filterOf(s.excludes, `${where}.excludes`);
  if (inc) out.includes = inc;
  if (exc) out.excludes = exc;
  if (typeof s.comment === 'string') out.comment = s.comment;
  return out;
}

/** A profile action (with its errno for ERRNO/TRACE) -> the filter's return value. */
export function actionRet(action: string, errnoRet: number | undefined, where: string): number {
  switch (action) {
    case 'SCMP_ACT_ALLOW':
      return SECCOMP_RET_ALLOW;
    case 'SCMP_ACT_ERRNO':
      return (SECCOMP_RET_ERRNO | ((errnoRet ?? EPERM) & SECCOMP_RET_DATA)) >>> 0;
    case 'SCMP_ACT_TRACE':
      return (SECCOMP_RET_TRACE | ((errnoRet ?? EPERM) & SECCOMP_RET_DATA)) >>> 0;
    case 'SCMP_ACT_KILL':
    case 'SCMP_ACT_KILL_THREAD':
      return SECCOMP_RET_KILL_THREAD;
    case 'SCMP_ACT_KILL_PROCESS':
      return SECCOMP_RET_KILL_PROCESS;
    case 'SCMP_ACT_TRAP':
      return SECCOMP_RET_TRAP;
    case 'SCMP_ACT_LOG':
      return SECCOMP_RET_LOG;
    case 'SCMP_ACT_NOTIFY':
      return bad(`${where}: SCMP_ACT_NOTIFY (user notification) is not supported by tvm`);
    default:
      return bad(`${where}: unknown action ${JSON.stringify(action)}`);
  }
}

export interface ResolveContext {
  /** capability names without CAP_ prefix, upper case: the container's bounding set */
  caps: ReadonlySet<string>;
  /** Go's GOARCH name, as profiles' includes/excludes use it */
  arch?: string;
  /** kernel version the filter will run on; defaults to this host's */
  kernel?: string;
}

function kernelAtLeast(kernel: string, min: string): boolean {
  const k = kernel.split(/[.-]/).map((x) => parseInt(x, 10));
  const m = min.split('.').map((x) => parseInt(x, 10));
  for (let i = 0; i < m.length; i++) {
    const a = Number.isNaN(k[i]) || k[i] === undefined ? 0 : k[i]!;
    if (a !== m[i]) return a > m[i]!;
  }
  return true;
}

const capName = (c: string) => c.toUpperCase().replace(/^CAP_/, '');

function applies(s: ProfileSyscall, ctx: Required<ResolveContext>): boolean {
  const ex = s.excludes;
  if (ex?.arches?.includes(ctx.arch)) return false;
  if (ex?.caps?.some((c) => ctx.caps.has(capName(c)))) return false;
  const inc = s.includes;
  if (inc?.arches && inc.arches.length > 0 && !inc.arches.includes(ctx.arch)) return false;
  if (inc?.caps && !inc.caps.every((c) => ctx.caps.has(capName(c)))) return false;
  if (inc?.minKernel && !kernelAtLeast(ctx.kernel, inc.minKernel)) return false;
  return true;
}

/** The rules of a profile that apply to one container, by x86_64 syscall number. */
export function resolveProfile(p: ProfileJson, context: ResolveContext): ResolvedFilter {
  const ctx: Required<ResolveContext> = { arch: 'amd64', kernel: release(), ...context };
  const defaultRet = actionRet(p.defaultAction, p.defaultErrnoRet ?? undefined, 'defaultAction');
  const rules = new Map<number, SyscallRules>();
  let flags = 0;
  for (const f of p.flags ?? []) flags |= FILTER_FLAGS[f] ?? 0;
  for (const s of p.syscalls) {
    if (!applies(s, ctx)) continue;
    const ret = actionRet(s.action, s.errnoRet ?? undefined, 'syscall action');
    const conditions: ArgCondition[] = (s.args ?? []).map((a) => ({
      index: a.index,
      op: a.op as CmpOp,
      value: BigInt(a.value),
      valueTwo: BigInt(a.valueTwo ?? 0),
    }));
    for (const name of [...(s.names ?? []), ...(s.name ? [s.name] : [])]) {
      const nr = SYSCALLS_X86_64[name];
      if (nr === undefined) continue;
      const r = rules.get(nr) ?? { conditional: [] };
      if (conditions.length > 0) r.conditional.push({ conditions, ret });
      else r.otherwise = ret;
      rules.set(nr, r);
    }
  }
  // rules that end where the default would anyway add nothing
  for (const [nr, r] of rules) {
    const end = r.otherwise ?? defaultRet;
    if (r.otherwise === defaultRet) delete r.otherwise;
    while (r.conditional.length > 0 && r.conditional[r.conditional.length - 1]!.ret === end) r.conditional.pop();
    if (r.conditional.length === 0 && r.otherwise === undefined) rules.delete(nr);
  }
  return { defaultRet, rules, flags };
}
