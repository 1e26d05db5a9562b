import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { InvalidParameterError } from '../../../src/errors.js';
import {
  AUDIT_ARCH_I386,
  AUDIT_ARCH_X86_64,
  BPF_JA,
  BPF_JMP,
  BPF_MAXINSNS,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  decodeProgram,
  encodeProgram,
  runSeccomp,
  type Insn,
} from '../../../src/runtime/bpf.js';
import { compileSeccomp } from '../../../src/runtime/seccomp-compile.js';
import { DEFAULT_PROFILE } from '../../../src/runtime/seccomp-default.js';
import { parseProfile, resolveProfile, type ProfileJson } from '../../../src/runtime/seccomp-profile.js';
import { containerSeccomp, DOCKER_DEFAULT_CAPS, effectiveCaps } from '../../../src/runtime/seccomp.js';
import { PINNED_MAX_NR, SYSCALLS_X86_64 } from '../../../src/runtime/syscalls-x86_64.js';
import { CAPABILITIES } from '../../../src/runtime/host/spec.js';

const NR = SYSCALLS_X86_64;
const EPERM = (SECCOMP_RET_ERRNO | 1) >>> 0;
const ENOSYS = (SECCOMP_RET_ERRNO | 38) >>> 0;
const defaultCaps = new Set<string>(DOCKER_DEFAULT_CAPS);
const withCaps = (...c: string[]) => new Set<string>([...DOCKER_DEFAULT_CAPS, ...c]);

function program(p: ProfileJson, caps: ReadonlySet<string>, kernel = '6.1.0'): Insn[] {
  return compileSeccomp(resolveProfile(p, { caps, kernel }));
}

function verdict(prog: Insn[], name: string | number, args: (number | bigint)[] = [], arch = AUDIT_ARCH_X86_64): number {
  const nr = typeof name === 'number' ? name : NR[name];
  if (nr === undefined) throw new Error(`no syscall ${name}`);
  return runSeccomp(prog, { nr, arch, args: args.map((a) => BigInt(a)) });
}

describe('x86_64 syscall table', () => {
  it('matches <asm/unistd_64.h> for every syscall the header defines', () => {
    let out: string;
    try {
      out = execFileSync('gcc', ['-dM', '-E', '-'], { input: '#include <asm/unistd_64.h>\n', encoding: 'utf8' });
    } catch (e) {
      throw new Error(`this test needs gcc and the kernel UAPI headers (linux-libc-dev): ${(e as Error).message}`);
    }
    const fromHeader = new Map<string, number>();
    for (const m of out.matchAll(/^#define __NR_(\w+) (\d+)$/gm)) fromHeader.set(m[1]!, Number(m[2]));
    expect(fromHeader.size).toBeGreaterThan(300);
    for (const [name, nr] of fromHeader) expect([name, NR[name]]).toEqual([name, nr]);
    // everything in our table and not in the header is newer than the header
    for (const [name, nr] of Object.entries(NR)) if (!fromHeader.has(name)) expect(nr, name).toBeGreaterThan(PINNED_MAX_NR);
    // numbers are unique
    expect(new Set(Object.values(NR)).size).toBe(Object.keys(NR).length);
  });
});

describe('BPF encoding', () => {
  it('round-trips struct sock_filter (8 bytes: u16 code, u8 jt, u8 jf, u32 k, little-endian)', () => {
    const prog: Insn[] = [
      { code: 0x20, jt: 0, jf: 0, k: 4 },
      { code: 0x15, jt: 1, jf: 2, k: AUDIT_ARCH_X86_64 },
      { code: 0x06, jt: 0, jf: 0, k: SECCOMP_RET_KILL_PROCESS },
    ];
    const b = encodeProgram(prog);
    expect(b.length).toBe(24);
    expect([...b.subarray(8, 16)]).toEqual([0x15, 0x00, 0x01, 0x02, 0x3e, 0x00, 0x00, 0xc0]);
    expect(decodeProgram(b)).toEqual(prog);
    expect(() => decodeProgram(b.subarray(0, 12))).toThrow('whole number');
  });
  it('the interpreter refuses programs that run off the end', () => {
    expect(() => runSeccomp([{ code: 0x20, jt: 0, jf: 0, k: 0 }], { nr: 0, arch: AUDIT_ARCH_X86_64 })).toThrow('off the end');
  });
});

describe("Docker's default profile compiled", () => {
  const def = program(DEFAULT_PROFILE, defaultCaps);
  const admin = program(DEFAULT_PROFILE, withCaps('SYS_ADMIN'));

  it('fits the kernel limit and uses only long jumps to cross distances', () => {
    expect(def.length).toBeLessThan(BPF_MAXINSNS);
    expect(def.length).toBeGreaterThan(20);
    for (const i of def) if (i.code !== (BPF_JMP | BPF_JA)) expect(i.jt <= 255 && i.jf <= 255).toBe(true);
  });

  it.each([
    // [syscall, args, expected]
    ['read', [], SECCOMP_RET_ALLOW],
    ['execve', [], SECCOMP_RET_ALLOW],
    ['mkdir', [], SECCOMP_RET_ALLOW],
    ['arch_prctl', [], SECCOMP_RET_ALLOW],
    ['futex_waitv', [], SECCOMP_RET_ALLOW],
    ['chroot', [], SECCOMP_RET_ALLOW], // SYS_CHROOT is a default cap
    ['ptrace', [], SECCOMP_RET_ALLOW], // kernel >= 4.8
    ['keyctl', [], EPERM],
    ['add_key', [], EPERM],
    ['unshare', [0x10000000], EPERM],
    ['mount', [], EPERM],
    ['setns', [], EPERM],
    ['reboot', [], EPERM],
    ['bpf', [], EPERM],
    ['kexec_load', [], EPERM],
    ['userfaultfd', [], EPERM],
    ['open_by_handle_at', [], EPERM],
    ['sethostname', [], EPERM],
    ['clock_settime', [], EPERM],
    ['clone3', [], ENOSYS],
    ['clone', [0x01200011], SECCOMP_RET_ALLOW], // fork-like: CLONE_CHILD_SETTID|CLEARTID|SIGCHLD
    ['clone', [0x10000000 | 17], EPERM], // CLONE_NEWUSER
    ['clone', [0x20000 | 17], EPERM], // CLONE_NEWNS
    ['clone', [0x1_0000_0000n | 17n], SECCOMP_RET_ALLOW], // high bits are not namespace flags
    ['socket', [2, 1, 0], SECCOMP_RET_ALLOW], // AF_INET
    ['socket', [40, 1, 0], EPERM], // AF_VSOCK
    ['socket', [0x1_0000_0028n, 1, 0], SECCOMP_RET_ALLOW], // 64-bit compare: only exactly 40 is refused
    ['personality', [0], SECCOMP_RET_ALLOW],
    ['personality', [0x20008], SECCOMP_RET_ALLOW],
    ['personality', [0xffffffff], SECCOMP_RET_ALLOW],
    ['personality', [0x0040000], EPERM], // ADDR_NO_RANDOMIZE
    ['personality', [0xffffffff_ffffffffn], EPERM],
    [424 - 1, [], EPERM], // a hole in the table
    [0x3fffffff, [], EPERM],
    [0x40000000, [], SECCOMP_RET_KILL_PROCESS], // x32
    [0x40000000 + 1, [], SECCOMP_RET_KILL_PROCESS],
    [0xfffffffe, [], SECCOMP_RET_KILL_PROCESS],
    [-1, [], EPERM],
  ] as [string | number, (number | bigint)[], number][])('%s (case %#)', (name, args, want) => {
    expect(verdict(def, name, args)).toBe(want);
  });

  it('kills other architectures (i386 int 0x80)', () => {
    expect(verdict(def, 'read', [], AUDIT_ARCH_I386)).toBe(SECCOMP_RET_KILL_PROCESS);
    expect(verdict(def, 0, [], 0)).toBe(SECCOMP_RET_KILL_PROCESS);
  });

  it('CAP_SYS_ADMIN opens the namespace syscalls and lifts the clone restriction', () => {
    for (const s of ['mount', 'unshare', 'setns', 'sethostname', 'umount2', 'clone3', 'fsopen'])
      expect([s, verdict(admin, s)]).toEqual([s, SECCOMP_RET_ALLOW]);
    expect(verdict(admin, 'clone', [0x10000000 | 17])).toBe(SECCOMP_RET_ALLOW);
    expect(verdict(admin, 'keyctl')).toBe(EPERM);
    expect(verdict(admin, 'reboot')).toBe(EPERM);
  });

  it.each([
    ['SYS_BOOT', 'reboot'],
    ['SYS_MODULE', 'finit_module'],
    ['SYS_PACCT', 'acct'],
    ['SYS_PTRACE', 'kcmp'],
    ['SYS_RAWIO', 'iopl'],
    ['SYS_TIME', 'settimeofday'],
    ['SYS_TTY_CONFIG', 'vhangup'],
    ['SYS_NICE', 'mbind'],
    ['SYSLOG', 'syslog'],
    ['BPF', 'bpf'],
    ['PERFMON', 'perf_event_open'],
    ['DAC_READ_SEARCH', 'open_by_handle_at'],
  ])('CAP_%s allows %s', (cap, sc) => {
    expect(verdict(def, sc)).toBe(EPERM);
    expect(verdict(program(DEFAULT_PROFILE, withCaps(cap)), sc)).toBe(SECCOMP_RET_ALLOW);
  });

  it('dropping SYS_CHROOT closes chroot; ptrace needs kernel 4.8 without CAP_SYS_PTRACE', () => {
    expect(verdict(program(DEFAULT_PROFILE, effectiveCaps([], ['SYS_CHROOT'], false, CAPABILITIES)), 'chroot')).toBe(EPERM);
    expect(verdict(program(DEFAULT_PROFILE, defaultCaps, '4.4.0'), 'ptrace')).toBe(EPERM);
  });

  it('every syscall of the table gets an answer, and the program is one the interpreter accepts', () => {
    for (const nr of Object.values(NR)) expect(() => verdict(def, nr, [1, 2, 3, 4, 5, 6])).not.toThrow();
  });
});

describe('custom profiles', () => {
  const prof = (syscalls: ProfileJson['syscalls'], defaultAction = 'SCMP_ACT_ALLOW', extra: Partial<ProfileJson> = {}): ProfileJson => ({
    defaultAction,
    syscalls,
    ...extra,
  });

  it('a deny rule for mkdir answers EPERM; everything else follows the default', () => {
    const p = program(prof([{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }]), defaultCaps);
    expect(verdict(p, 'mkdir')).toBe(EPERM);
    expect(verdict(p, 'mkdirat')).toBe(EPERM);
    expect(verdict(p, 'rmdir')).toBe(SECCOMP_RET_ALLOW);
    expect(verdict(p, 'keyctl')).toBe(SECCOMP_RET_ALLOW);
  });

  it('maps every action to its return value, with errnoRet and defaultErrnoRet', () => {
    const p = program(
      prof(
        [
          { names: ['read'], action: 'SCMP_ACT_ERRNO', errnoRet: 13 },
          { names: ['write'], action: 'SCMP_ACT_KILL' },
          { names: ['open'], action: 'SCMP_ACT_KILL_PROCESS' },
          { names: ['close'], action: 'SCMP_ACT_TRAP' },
          { names: ['stat'], action: 'SCMP_ACT_LOG' },
          { names: ['fstat'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
          { names: ['lstat'], action: 'SCMP_ACT_ALLOW' },
        ],
        'SCMP_ACT_ERRNO',
        { defaultErrnoRet: 22 },
      ),
      defaultCaps,
    );
    expect(['read', 'write', 'open', 'close', 'stat', 'fstat', 'lstat', 'poll'].map((s) => verdict(p, s))).toEqual([
      SECCOMP_RET_ERRNO | 13,
      SECCOMP_RET_KILL_THREAD,
      SECCOMP_RET_KILL_PROCESS,
      SECCOMP_RET_TRAP,
      SECCOMP_RET_LOG,
      SECCOMP_RET_TRACE | 7,
      SECCOMP_RET_ALLOW,
      SECCOMP_RET_ERRNO | 22,
    ]);
  });

  const cmp = (op: string, value: bigint | number, valueTwo?: bigint | number) =>
    program(
      prof([{ names: ['write'], action: 'SCMP_ACT_ERRNO', args: [{ index: 2, op, value, ...(valueTwo !== undefined && { valueTwo }) }] }]),
      defaultCaps,
    );
  const big = 0x1_0000_0005n;
  it.each([
    ['SCMP_CMP_EQ', big, [big], [5n, 0x1_0000_0000n, big + 1n]],
    ['SCMP_CMP_NE', big, [5n, 0n, big - 1n], [big]],
    ['SCMP_CMP_GT', big, [big + 1n, 0x2_0000_0000n], [big, 5n, 0x1_0000_0000n, 0xffff_ffffn]],
    ['SCMP_CMP_GE', big, [big, big + 1n, 0x2_0000_0000n], [big - 1n, 0xffff_ffffn]],
    ['SCMP_CMP_LT', big, [big - 1n, 0xffff_ffffn, 6n], [big, big + 1n, 0x2_0000_0000n]],
    ['SCMP_CMP_LE', big, [big, 0n, 0xffff_fffen], [big + 1n, 0x2_0000_0000n]],
  ] as [string, bigint, bigint[], bigint[]][])('%s on 64-bit arguments (both halves)', (op, value, hit, miss) => {
    const p = cmp(op, value);
    for (const v of hit) expect([op, v, verdict(p, 'write', [0, 0, v])]).toEqual([op, v, EPERM]);
    for (const v of miss) expect([op, v, verdict(p, 'write', [0, 0, v])]).toEqual([op, v, SECCOMP_RET_ALLOW]);
  });

  it('SCMP_CMP_MASKED_EQ compares (arg & value) with valueTwo, on both halves', () => {
    const p = cmp('SCMP_CMP_MASKED_EQ', 0xff00_0000_00f0n, 0x1200_0000_0030n);
    expect(verdict(p, 'write', [0, 0, 0x1234_0000_0031n])).toBe(EPERM);
    expect(verdict(p, 'write', [0, 0, 0x1300_0000_0030n])).toBe(SECCOMP_RET_ALLOW);
    expect(verdict(p, 'write', [0, 0, 0x1200_0000_0040n])).toBe(SECCOMP_RET_ALLOW);
  });

  it('a rule holds only when all its conditions do; rules for one syscall are alternatives', () => {
    const p = program(
      prof(
        [
          {
            names: ['kill'],
            action: 'SCMP_ACT_ALLOW',
            args: [
              { index: 0, op: 'SCMP_CMP_EQ', value: 1 },
              { index: 1, op: 'SCMP_CMP_EQ', value: 9 },
            ],
          },
          { names: ['kill'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, op: 'SCMP_CMP_EQ', value: 0 }] },
        ],
        'SCMP_ACT_ERRNO',
      ),
      defaultCaps,
    );
    expect(verdict(p, 'kill', [1, 9])).toBe(SECCOMP_RET_ALLOW);
    expect(verdict(p, 'kill', [1, 15])).toBe(EPERM);
    expect(verdict(p, 'kill', [2, 9])).toBe(EPERM);
    expect(verdict(p, 'kill', [77, 0])).toBe(SECCOMP_RET_ALLOW);
  });

  it('large profiles stay within 8-bit jumps (many syscalls, each with conditional rules)', () => {
    const rules = Object.keys(NR)
      .slice(0, 100)
      .flatMap((n, i) =>
        [0, 1, 2].map((k) => ({
          names: [n],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: k + 1,
          args: [
            { index: k, op: 'SCMP_CMP_GT', value: 0x1_0000_0000n + BigInt(i) },
            { index: 5, op: 'SCMP_CMP_NE', value: 3 },
          ],
        })),
      );
    const p = program(prof(rules), defaultCaps);
    expect(p.length).toBeLessThanOrEqual(BPF_MAXINSNS);
    expect(verdict(p, Object.keys(NR)[99]!, [0, 0x2_0000_0000n, 0, 0, 0, 0])).toBe(SECCOMP_RET_ERRNO | 2);
    expect(verdict(p, Object.keys(NR)[99]!, [0, 0x2_0000_0000n, 0, 0, 0, 3])).toBe(SECCOMP_RET_ALLOW);
  });

  it('refuses a profile that would not fit the kernel limit', () => {
    const rules = Object.keys(NR).map((n, i) => ({
      names: [n],
      action: 'SCMP_ACT_ERRNO',
      args: [0, 1, 2, 3, 4, 5].map((index) => ({ index, op: 'SCMP_CMP_LE', value: 0x1_0000_0000n + BigInt(i) })),
    }));
    expect(() => program(prof(rules), defaultCaps)).toThrow(/more than the kernel's limit of 4096/);
  });

  it('parses Docker JSON: uint64 values beyond 2^53, unknown keys ignored, unknown names skipped', () => {
    const p = parseProfile(
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ALLOW',
        future: 1,
        syscalls: [{ names: ['chown32', 'write'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'SCMP_CMP_EQ' }] }],
      }).replace('"value":1', '"value":18446744073709551615'),
    );
    expect(p.syscalls[0]!.args![0]!.value).toBe(18446744073709551615n);
    const prog = program(p, defaultCaps);
    expect(verdict(prog, 'write', [0xffff_ffff_ffff_ffffn])).toBe(EPERM);
    expect(verdict(prog, 'write', [0xffff_ffffn])).toBe(SECCOMP_RET_ALLOW);
  });

  it.each([
    ['not json', '{', 'not JSON'],
    ['no default', '{"syscalls":[]}', 'defaultAction: required'],
    ['bad action', '{"defaultAction":"SCMP_ACT_NOPE"}', 'unknown action "SCMP_ACT_NOPE"'],
    ['notify', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_NOTIFY"}]}', 'SCMP_ACT_NOTIFY'],
    [
      'bad op',
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"SCMP_CMP_XX"}]}]}',
      'syscalls[0].args[0].op',
    ],
    [
      'bad index',
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}',
      'syscalls[0].args[0].index',
    ],
    [
      'negative value',
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":-1,"op":"SCMP_CMP_EQ"}]}]}',
      'unsigned 64-bit',
    ],
    [
      'name and names',
      '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"name":"read","names":["write"],"action":"SCMP_ACT_ERRNO"}]}',
      "'name' and 'names'",
    ],
    [
      'arches and archMap',
      '{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],"archMap":[]}',
      "'architectures' and 'archMap'",
    ],
    ['flag', '{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_X"]}', 'unknown flag'],
    ['names type', '{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":"read","action":"SCMP_ACT_ERRNO"}]}', 'syscalls[0].names'],
  ])('refuses %s with a typed error naming the field', (_n, text, msg) => {
    expect(() => parseProfile(text)).toThrow(InvalidParameterError);
    expect(() => parseProfile(text)).toThrow(msg);
  });
});

describe('container seccomp', () => {
  it('privileged and unconfined containers get no filter; others get base64 BPF', () => {
    expect(containerSeccomp(undefined, defaultCaps, true)).toBeUndefined();
    expect(containerSeccomp({ seccomp: 'unconfined', noNewPrivileges: false }, defaultCaps, false)).toBeUndefined();
    const f = containerSeccomp(undefined, defaultCaps, false)!;
    const prog = decodeProgram(Buffer.from(f.filter, 'base64'));
    expect(verdict(prog, 'keyctl')).toBe(EPERM);
    const custom = containerSeccomp(
      { seccomp: { profile: '{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}' }, noNewPrivileges: false },
      defaultCaps,
      false,
    )!;
    expect(custom.flags).toBe(2);
    expect(verdict(decodeProgram(Buffer.from(custom.filter, 'base64')), 'keyctl')).toBe(SECCOMP_RET_ALLOW);
  });

  it('effective capabilities follow the agent rules', () => {
    expect([...effectiveCaps(['SYS_ADMIN'], ['CAP_CHOWN'], false, CAPABILITIES)].sort()).toEqual(
      [...DOCKER_DEFAULT_CAPS, 'SYS_ADMIN'].filter((c) => c !== 'CHOWN').sort(),
    );
    // moby's TweakCapabilities drops from the defaults first, then adds: add X + drop X keeps X
    expect(effectiveCaps(['CHOWN'], ['CHOWN'], false, CAPABILITIES).has('CHOWN')).toBe(true);
    expect(effectiveCaps(['SYS_ADMIN'], ['SYS_ADMIN'], false, CAPABILITIES).has('SYS_ADMIN')).toBe(true);
    expect([...effectiveCaps(['NET_ADMIN'], ['ALL'], false, CAPABILITIES)]).toEqual(['NET_ADMIN']);
    expect(effectiveCaps(['ALL'], ['MKNOD'], false, CAPABILITIES).size).toBe(CAPABILITIES.length - 1);
    expect(effectiveCaps([], [], true, CAPABILITIES).size).toBe(CAPABILITIES.length);
  });
});
