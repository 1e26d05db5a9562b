/**
 * Compiles a resolved seccomp profile to classic BPF for x86_64.
 *
 * Layout: check the arch (anything but AUDIT_ARCH_X86_64 is killed), load the syscall number,
 * then a binary search over intervals of syscall numbers that share one outcome (the whole
 * 32-bit space is covered: runs of syscalls with the same plain action merge, gaps take the
 * default, x32 numbers are killed). Each interval ends in its own block of argument checks and
 * returns. Conditional jumps are 8-bit, so every one of them is local: a tree node is
 * `jge pivot` over an unconditional `ja` (32-bit offset) to its right half, and argument checks
 * only ever skip to the end of their own rule.
 */
import { InvalidParameterError } from '../errors.js';
import {
  AUDIT_ARCH_X86_64,
  BPF_ABS,
  BPF_ALU,
  BPF_AND,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_K,
  BPF_LD,
  BPF_MAXINSNS,
  BPF_RET,
  BPF_W,
  SECCOMP_DATA_ARCH,
  SECCOMP_DATA_ARGS,
  SECCOMP_DATA_NR,
  SECCOMP_RET_KILL_PROCESS,
  type Insn,
} from './bpf.js';
import type { ArgCondition, ResolvedFilter, SyscallRules } from './seccomp-profile.js';
import { X32_SYSCALL_BIT } from './syscalls-x86_64.js';

/** A jump target: resolved to an instruction index once the program is laid out. */
class Label {
  at = -1;
}

type Target = number | Label;

interface PendingInsn {
  code: number;
  k: number;
  jt: Target;
  jf: Target;
  /** for BPF_JA: where k points */
  ja?: Label;
}

class Assembler {
  readonly out: PendingInsn[] = [];
  /** relative jump of 0: the next instruction */
  static readonly NEXT = 0;

  emit(code: number, k: number, jt: Target = 0, jf: Target = 0): void {
    this.out.push({ code, k: k >>> 0, jt, jf });
  }
  ld(offset: number): void {
    this.emit(BPF_LD | BPF_W | BPF_ABS, offset);
  }
  ret(k: number): void {
    this.emit(BPF_RET | BPF_K, k);
  }
  ja(to: Label): void {
    this.out.push({ code: BPF_JMP | BPF_JA, k: 0, jt: 0, jf: 0, ja: to });
  }
  bind(l: Label): void {
    l.at = this.out.length;
  }
  finish(): Insn[] {
    return this.out.map((p, i) => {
      const rel = (t: Target, what: string): number => {
        if (typeof t === 'number') return t;
        if (t.at < 0) throw new Error(`seccomp compiler: unbound ${what} label at ${i}`);
        const d = t.at - (i + 1);
        if (d < 0 || d > 255) throw new Error(`seccomp compiler: ${what} jump of ${d} at ${i} does not fit 8 bits`);
        return d;
      };
      if (p.ja) {
        const d = p.ja.at - (i + 1);
        if (p.ja.at < 0 || d < 0) throw new Error(`seccomp compiler: bad long jump at ${i}`);
        return { code: p.code, jt: 0, jf: 0, k: d };
      }
      return { code: p.code, jt: rel(p.jt, 'true'), jf: rel(p.jf, 'false'), k: p.k };
    });
  }
}

const lo32 = (v: bigint) => Number(v & 0xffffffffn);
const hi32 = (v: bigint) => Number((v >> 32n) & 0xffffffffn);

/** Falls through when the condition holds, jumps to `fail` when not. */
function emitCondition(a: Assembler, c: ArgCondition, fail: Label): void {
  const off = SECCOMP_DATA_ARGS + 8 * c.index;
  // x86_64 is little-endian: the low half of args[i] comes first
  const LO = off;
  const HI = off + 4;
  const pass = new Label();
  const v = c.value;
  const J = BPF_JMP | BPF_K;
  switch (c.op) {
    case 'SCMP_CMP_EQ':
      a.ld(HI);
      a.emit(J | BPF_JEQ, hi32(v), 0, fail);
      a.ld(LO);
      a.emit(J | BPF_JEQ, lo32(v), 0, fail);
      break;
    case 'SCMP_CMP_NE':
      a.ld(HI);
      a.emit(J | BPF_JEQ, hi32(v), 0, pass);
      a.ld(LO);
      a.emit(J | BPF_JEQ, lo32(v), fail, 0);
      break;
    case 'SCMP_CMP_MASKED_EQ': {
      const mask = v;
      const want = c.valueTwo;
      a.ld(HI);
      a.emit(BPF_ALU | BPF_AND | BPF_K, hi32(mask));
      a.emit(J | BPF_JEQ, hi32(want), 0, fail);
      a.ld(LO);
      a.emit(BPF_ALU | BPF_AND | BPF_K, lo32(mask));
      a.emit(J | BPF_JEQ, lo32(want), 0, fail);
      break;
    }
    case 'SCMP_CMP_GT':
      a.ld(HI);
      a.emit(J | BPF_JGT, hi32(v), pass, 0);
      a.emit(J | BPF_JEQ, hi32(v), 0, fail);
      a.ld(LO);
      a.emit(J | BPF_JGT, lo32(v), 0, fail);
      break;
    case 'SCMP_CMP_GE':
      a.ld(HI);
      a.emit(J | BPF_JGT, hi32(v), pass, 0);
      a.emit(J | BPF_JEQ, hi32(v), 0, fail);
      a.ld(LO);
      a.emit(J | BPF_JGE, lo32(v), 0, fail);
      break;
    case 'SCMP_CMP_LT':
      a.ld(HI);
      a.emit(J | BPF_JGE, hi32(v), 0, pass);
      a.emit(J | BPF_JEQ, hi32(v), 0, fail);
      a.ld(LO);
      a.emit(J | BPF_JGE, lo32(v), fail, 0);
      break;
    case 'SCMP_CMP_LE':
      a.ld(HI);
      a.emit(J | BPF_JGE, hi32(v), 0, pass);
      a.emit(J | BPF_JEQ, hi32(v), 0, fail);
      a.ld(LO);
      a.emit(J | BPF_JGT, lo32(v), fail, 0);
      break;
  }
  a.bind(pass);
}

/** One interval's outcome: argument-checked rules in order, then a plain return. */
interface Block {
  rules: SyscallRules | undefined;
  ret: number;
}

function emitBlock(a: Assembler, b: Block): void {
  for (const r of b.rules?.conditional ?? []) {
    const next = new Label();
    for (const c of r.conditions) emitCondition(a, c, next);
    a.ret(r.ret);
    a.bind(next);
  }
  a.ret(b.ret);
}

interface Interval {
  start: number;
  block: Block;
}

function blockKey(b: Block): string {
  return JSON.stringify({ r: b.ret, c: b.rules?.conditional ?? [] }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** The whole u32 syscall-number space as intervals, each starting where its outcome changes. */
function intervals(f: ResolvedFilter): Interval[] {
  const byNr = [...f.rules.entries()].sort((x, y) => x[0] - y[0]);
  const out: Interval[] = [];
  let lastKey = '';
  const push = (start: number, block: Block) => {
    const key = blockKey(block);
    if (out.length > 0 && key === lastKey) return;
    out.push({ start, block });
    lastKey = key;
  };
  const dflt: Block = { rules: undefined, ret: f.defaultRet };
  let cursor = 0;
  for (const [nr, rules] of byNr) {
    if (nr >= X32_SYSCALL_BIT) continue;
    if (nr > cursor) push(cursor, dflt);
    push(nr, { rules, ret: rules.otherwise ?? f.defaultRet });
    cursor = nr + 1;
  }
  push(cursor, dflt);
  // x32 syscall numbers arrive with the x86_64 arch value: kill them. -1 is not a syscall but
  // what a tracer sets to skip one; it keeps the default, as libseccomp does.
  push(X32_SYSCALL_BIT, { rules: undefined, ret: SECCOMP_RET_KILL_PROCESS });
  push(0xffffffff, dflt);
  return out;
}

function emitTree(a: Assembler, iv: Interval[], lo: number, hi: number): void {
  if (hi - lo === 1) {
    emitBlock(a, iv[lo]!.block);
    return;
  }
  const mid = (lo + hi) >>> 1;
  const right = new Label();
  // nr >= pivot: take the long jump to the right half; else skip it into the left half
  a.emit(BPF_JMP | BPF_JGE | BPF_K, iv[mid]!.start, 0, 1);
  a.ja(right);
  emitTree(a, iv, lo, mid);
  a.bind(right);
  emitTree(a, iv, mid, hi);
}

export function compileSeccomp(f: ResolvedFilter): Insn[] {
  const a = new Assembler();
  a.ld(SECCOMP_DATA_ARCH);
  a.emit(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
  a.ret(SECCOMP_RET_KILL_PROCESS);
  a.ld(SECCOMP_DATA_NR);
  const iv = intervals(f);
  emitTree(a, iv, 0, iv.length);
  const prog = a.finish();
  if (prog.length > BPF_MAXINSNS) {
    throw new InvalidParameterError(
      `seccomp profile compiles to ${prog.length} BPF instructions, more than the kernel's limit of ${BPF_MAXINSNS}`,
    );
  }
  return prog;
}
