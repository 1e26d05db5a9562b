/** `tvm update`: change the resource limits and restart policy of containers (live if running). */
import type { Command } from 'commander';
import { InvalidParameterError } from '../../errors.js';
import { withClient } from '../client.js';
import { parseBytes, parseCpus, parseIntFlag } from '../units.js';
import { parseRestartFlag } from './restart.js';

interface UpdateOptions {
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  cpus?: string;
  cpuShares?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  restart?: string;
}

/** The UpdateConfig body the docker CLI sends for these flags. */
export function updateBody(o: UpdateOptions): Record<string, unknown> {
  const bytes = (v: string) => (v.trim() === '-1' ? -1 : parseBytes(v));
  return {
    ...(o.memory !== undefined && { Memory: bytes(o.memory) }),
    ...(o.memorySwap !== undefined && { MemorySwap: bytes(o.memorySwap) }),
    ...(o.memoryReservation !== undefined && { MemoryReservation: bytes(o.memoryReservation) }),
    ...(o.cpus !== undefined && { NanoCpus: parseCpus(o.cpus) }),
    ...(o.cpuShares !== undefined && { CpuShares: parseIntFlag(o.cpuShares, '--cpu-shares') }),
    ...(o.cpuPeriod !== undefined && { CpuPeriod: parseIntFlag(o.cpuPeriod, '--cpu-period') }),
    ...(o.cpuQuota !== undefined && { CpuQuota: parseIntFlag(o.cpuQuota, '--cpu-quota') }),
    ...(o.cpusetCpus !== undefined && { CpusetCpus: o.cpusetCpus }),
    ...(o.pidsLimit !== undefined && { PidsLimit: parseIntFlag(o.pidsLimit, '--pids-limit') }),
    ...(o.restart !== undefined && { RestartPolicy: parseRestartFlag(o.restart) }),
  };
}

/** The docker CLI refuses an update without any flag (it would change nothing). */
export function requireUpdateFlags(body: Record<string, unknown>): void {
  if (Object.keys(body).length === 0) throw new InvalidParameterError('you must provide one or more flags when using this command');
}

export function registerUpdateCommand(program: Command): void {
  program
    .command('update')
    .description('Update configuration of one or more containers')
    .argument('<containers...>')
    .option('-m, --memory <bytes>', 'memory limit')
    .option('--memory-swap <bytes>', 'memory + swap limit; -1 for unlimited swap')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--cpus <n>', 'number of CPUs')
    .option('-c, --cpu-shares <n>', 'CPU shares (relative weight)')
    .option('--cpu-period <us>', 'CFS period')
    .option('--cpu-quota <us>', 'CFS quota')
    .option('--cpuset-cpus <list>', 'CPUs allowed (0-3, 0,1)')
    .option('--pids-limit <n>', 'process limit (-1 for unlimited)')
    .option('--restart <policy>', 'restart policy: no, always, unless-stopped, on-failure[:max-retries]')
    .action(async (ids: string[], o: UpdateOptions) => {
      const body = updateBody(o);
      requireUpdateFlags(body);
      await withClient(async (c) => {
        let failed = false;
        for (const id of ids) {
          try {
            const r = await c.json<{ Warnings?: string[] | null }>('POST', `/containers/${encodeURIComponent(id)}/update`, { body });
            for (const w of r?.Warnings ?? []) process.stderr.write(`${w}\n`);
            process.stdout.write(`${id}\n`);
          } catch (e) {
            failed = true;
            process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
          }
        }
        if (failed) process.exitCode = 1;
      });
    });
}
