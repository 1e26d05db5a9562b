/** Linux signal names and numbers (x86-64), as Docker accepts them: 'SIGTERM', 'TERM', '15'. */
import { InvalidParameterError } from '../errors.js';

export const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGIOT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPOLL: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** Parses a signal the way Docker does; throws 400 `Invalid signal: x`. */
export function parseSignal(s: string | number): number {
  if (typeof s === 'number' || /^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= SIGRTMAX) return n;
    throw new InvalidParameterError(`Invalid signal: ${s}`);
  }
  const up = s.toUpperCase();
  const name = up.startsWith('SIG') ? up : `SIG${up}`;
  const n = SIGNALS[name];
  if (n !== undefined) return n;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const off = Number(rt[1] ?? 0);
    const v = name.startsWith('SIGRTMIN') ? SIGRTMIN + off : SIGRTMAX - off;
    if (v >= SIGRTMIN && v <= SIGRTMAX) return v;
  }
  throw new InvalidParameterError(`Invalid signal: ${s}`);
}

export function signalName(n: number): string {
  for (const [k, v] of Object.entries(SIGNALS)) if (v === n) return k;
  return String(n);
}
