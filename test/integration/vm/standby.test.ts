/**
 * The standby VM supervisor (src/runtime/vm/standby.ts, supervisor-main.ts --standby) without a
 * VM: an unused one ends with the daemon's pipe, and a bad order fails loudly. (Taking a
 * container is checked where VMs boot: network.test.ts.)
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { StandbySupervisor } from '../../../src/runtime/vm/standby.js';
import { buildSupervisorBundle } from '../../../src/runtime/vm/supervisor-bundle.js';
import { scratchDir } from '../../fixtures/scratch.js';

const exited = (c: ChildProcess) =>
  new Promise<number | null>((resolve) => (c.exitCode !== null ? resolve(c.exitCode) : c.once('exit', (code) => resolve(code))));

describe('standby VM supervisor', () => {
  it('an unused standby exits once the daemon closes its stdin; a malformed order fails with its reason logged', async () => {
    const dir = scratchDir('tvm-standby-');
    const log = path.join(dir, 'standby.log');
    const { main } = await buildSupervisorBundle();
    const standby = new StandbySupervisor('tcg', log);
    expect(standby.take()).toBeUndefined();
    standby.fill(main);
    const first = standby.take()!;
    expect(first.pid).toBeGreaterThan(0);
    // its command line has room for the state dir it will take
    expect(readFileSync(`/proc/${first.pid}/cmdline`, 'utf8')).toContain('--standby');
    first.stdin!.end();
    expect(await exited(first)).toBe(0);

    standby.fill(main);
    const second = standby.take()!;
    second.stdin!.end('{"not":"an order"}\n');
    expect(await exited(second)).toBe(1);
    expect(readFileSync(log, 'utf8')).toMatch(/fatal: .*a standby order needs stateDir and sentAt/);
  }, 60_000);
});
