/**
 * The VMM process entry: builds a Machine from command-line options, wires the console to
 * stdio, stops the guest on SIGINT/SIGTERM, and turns how the guest ended into the process
 * exit status.
 */
import { Machine, type MachineEnd, type MachineEndKind } from './machine.js';
import { InvalidParameterError } from '../errors.js';

export interface VmmRunOptions {
  kernel: string;
  initrd?: string;
  append?: string;
  memMiB: number;
  cpus: number;
  boot?: 'linux64' | 'pvh';
  verbose?: boolean;
}

/** Exit status by how the guest ended: 0 for the ways a guest ends on purpose. */
export const EXIT_STATUS: Record<MachineEndKind, number> = {
  rebooted: 0,
  shutdown: 0,
  halted: 0,
  crashed: 2,
  'internal-error': 3,
  'fail-entry': 4,
  error: 1,
  stopped: 130,
};

export function exitStatusOf(end: MachineEnd): number {
  return EXIT_STATUS[end.kind];
}

export function parsePositiveInt(v: string, what: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidParameterError(`${what}: ${JSON.stringify(v)} is not a positive integer`);
  return Number(v);
}

export async function runVmm(
  o: VmmRunOptions,
  io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  const machine = await Machine.create({
    kernel: o.kernel,
    initrd: o.initrd,
    cmdline: o.append,
    memMiB: o.memMiB,
    cpus: o.cpus,
    boot: o.boot,
    console: { output: io.stdout, input: io.stdin },
    log: o.verbose ? (l) => io.stderr.write(`tvm vmm: ${l}\n`) : undefined,
  });
  const raw = io.stdin.isTTY && typeof io.stdin.setRawMode === 'function';
  if (raw) io.stdin.setRawMode(true);
  const onSignal = (sig: NodeJS.Signals) => machine.stop(`received ${sig}`);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const end = await machine.run();
    io.stderr.write(
      `tvm vmm: guest ${end.kind}${end.detail ? `: ${end.detail}` : ''}${end.vcpu !== undefined ? ` (vCPU ${end.vcpu})` : ''}\n`,
    );
    if (o.verbose)
      io.stderr.write(
        `tvm vmm: ${end.exits} exits to user space, ${machine.stats.unhandledPio} unhandled PIO, ${machine.stats.unhandledMmio} unhandled MMIO\n`,
      );
    return exitStatusOf(end);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (raw) io.stdin.setRawMode(false);
    io.stdin.pause();
  }
}
