/**
 * Classic BPF as seccomp uses it (linux/filter.h, linux/bpf_common.h, linux/seccomp.h): the
 * instruction encoding, the `struct seccomp_data` offsets the filter reads, and an interpreter
 * that runs a program over one syscall the way the kernel does (used to test the compiler).
 */
import { FormatError } from '../errors.js';

// instruction classes and fields (linux/bpf_common.h)
export const BPF_LD = 0x00;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_RET = 0x06;
export const BPF_W = 0x00;
export const BPF_ABS = 0x20;
export const BPF_K = 0x00;
export const BPF_AND = 0x50;
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;

/** BPF_MAXINSNS: the kernel refuses longer programs */
export const BPF_MAXINSNS = 4096;
/** sizeof(struct sock_filter): u16 code, u8 jt, u8 jf, u32 k */
export const SOCK_FILTER_SIZE = 8;

// struct seccomp_data { int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6]; }
export const SECCOMP_DATA_NR = 0;
export const SECCOMP_DATA_ARCH = 4;
export const SECCOMP_DATA_IP = 8;
export const SECCOMP_DATA_ARGS = 16;
export const SECCOMP_DATA_SIZE = 64;

// filter return values (linux/seccomp.h)
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** AUDIT_ARCH_X86_64 = EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE (linux/audit.h) */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
/** AUDIT_ARCH_I386 = EM_386 | __AUDIT_ARCH_LE */
export const AUDIT_ARCH_I386 = 0x40000003;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

export function encodeProgram(prog: readonly Insn[]): Buffer {
  const buf = Buffer.alloc(prog.length * SOCK_FILTER_SIZE);
  prog.forEach((i, n) => {
    const o = n * SOCK_FILTER_SIZE;
    buf.writeUInt16LE(i.code, o);
    buf.writeUInt8(i.jt, o + 2);
    buf.writeUInt8(i.jf, o + 3);
    buf.writeUInt32LE(i.k >>> 0, o + 4);
  });
  return buf;
}

export function decodeProgram(buf: Buffer): Insn[] {
  if (buf.length === 0 || buf.length % SOCK_FILTER_SIZE !== 0) {
    throw new FormatError(`BPF program: ${buf.length} bytes is not a whole number of ${SOCK_FILTER_SIZE}-byte instructions`);
  }
  const out: Insn[] = [];
  for (let o = 0; o < buf.length; o += SOCK_FILTER_SIZE) {
    out.push({ code: buf.readUInt16LE(o), jt: buf.readUInt8(o + 2), jf: buf.readUInt8(o + 3), k: buf.readUInt32LE(o + 4) });
  }
  return out;
}

export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  args?: readonly bigint[];
}

function seccompDataBytes(d: SeccompData): Buffer {
  const b = Buffer.alloc(SECCOMP_DATA_SIZE);
  b.writeInt32LE(d.nr | 0, SECCOMP_DATA_NR);
  b.writeUInt32LE(d.arch >>> 0, SECCOMP_DATA_ARCH);
  b.writeBigUInt64LE(d.ip ?? 0n, SECCOMP_DATA_IP);
  (d.args ?? []).forEach((a, i) => b.writeBigUInt64LE(BigInt.asUintN(64, a), SECCOMP_DATA_ARGS + 8 * i));
  return b;
}

/**
 * Runs a seccomp program as the kernel would and returns its verdict. Throws on what the
 * kernel's checker would refuse (unknown opcode, misaligned or out-of-range load, a jump past
 * the end, falling off the end).
 */
export function runSeccomp(prog: readonly Insn[], d: SeccompData): number {
  const data = seccompDataBytes(d);
  let a = 0;
  let pc = 0;
  const bad = (why: string): never => {
    throw new FormatError(`BPF program: instruction ${pc}: ${why}`);
  };
  for (let steps = 0; steps <= prog.length; steps++) {
    if (pc >= prog.length) bad('runs off the end of the program');
    const i = prog[pc]!;
    const jump = (cond: boolean) => {
      pc += 1 + (cond ? i.jt : i.jf);
    };
    switch (i.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (i.k % 4 !== 0 || i.k + 4 > SECCOMP_DATA_SIZE) bad(`load from offset ${i.k}`);
        a = data.readUInt32LE(i.k);
        pc++;
        break;
      case BPF_ALU | BPF_AND | BPF_K:
        a = (a & i.k) >>> 0;
        pc++;
        break;
      case BPF_JMP | BPF_JA:
        pc += 1 + i.k;
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        jump(a === i.k >>> 0);
        break;
      case BPF_JMP | BPF_JGT | BPF_K:
        jump(a > i.k >>> 0);
        break;
      case BPF_JMP | BPF_JGE | BPF_K:
        jump(a >= i.k >>> 0);
        break;
      case BPF_JMP | BPF_JSET | BPF_K:
        jump((a & i.k) !== 0);
        break;
      case BPF_RET | BPF_K:
        return i.k >>> 0;
      default:
        bad(`opcode 0x${i.code.toString(16)} is not one seccomp filters use here`);
    }
  }
  return bad('does not terminate');
}
