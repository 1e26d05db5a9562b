/** The guest console as the VM supervisor keeps it: bounded file, tail, markers. */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConsoleSink } from '../../../../src/runtime/vm/console.js';
import { scratchDir } from '../../../fixtures/scratch.js';

describe('ConsoleSink', () => {
  it('keeps at most maxBytes in the file, the tail in memory, and the agent markers', async () => {
    const f = path.join(scratchDir('tvm-console-'), 'console.log');
    const c = new ConsoleSink(f, 1000);
    const seen: string[] = [];
    c.onLine((l) => seen.push(l));
    c.stream.write(Buffer.from('Linux version 6.1\r\ntvm-agent: init\r\n'));
    c.stream.write(Buffer.from('x'.repeat(5000) + '\n'));
    c.stream.write(Buffer.from('tvm-agent: fatal: mount ext4 on /run/tvm/disk: Invalid argument\n'));
    await new Promise<void>((r) => setImmediate(r));
    await c.close();
    expect(readFileSync(f).length).toBeLessThan(1100);
    expect(c.droppedBytes).toBeGreaterThan(4000);
    expect(c.has('tvm-agent: init')).toBe(true);
    expect(c.line('tvm-agent: fatal: ')).toBe('tvm-agent: fatal: mount ext4 on /run/tvm/disk: Invalid argument');
    expect(c.tail(80)).toContain('Invalid argument');
    expect(seen[0]).toBe('Linux version 6.1');
  });

  it('waitFor resolves on the marker, on abort, or at the timeout', async () => {
    const f = path.join(scratchDir('tvm-console-'), 'console.log');
    const c = new ConsoleSink(f);
    const p = c.waitFor('tvm-agent: ready', 10_000, () => false);
    c.stream.write('tvm-agent: ready\n');
    await p;
    let abort = false;
    const q = c.waitFor('never', 10_000, () => abort);
    abort = true;
    await q;
    await c.waitFor('never', 10, () => false);
    await c.close();
  });
});
