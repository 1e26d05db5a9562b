/** The VM supervisor's json-file writer: Docker's line splitting and the agent's rotation. */
import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { JsonLogWriter, LOG_MAX_LINE } from '../../../../src/runtime/log-writer.js';
import { readLog } from '../../../../src/runtime/log-file.js';
import { scratchDir } from '../../../fixtures/scratch.js';

const lines = (f: string) =>
  readFileSync(f, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { log: string; stream: string; time: string });

describe('JsonLogWriter', () => {
  it('splits at newlines per stream, keeps partial lines until they end, flushes at close', () => {
    const f = path.join(scratchDir('tvm-log-'), 'log.jsonl');
    const w = new JsonLogWriter(f);
    w.write('stdout', Buffer.from('a\nb'));
    w.write('stderr', Buffer.from('e1\n'));
    w.write('stdout', Buffer.from('c\nd'));
    w.close();
    expect(lines(f).map((l) => [l.stream, l.log])).toEqual([
      ['stdout', 'a\n'],
      ['stderr', 'e1\n'],
      ['stdout', 'bc\n'],
      ['stdout', 'd'],
    ]);
    expect(lines(f)[0]!.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  });

  it('cuts a line at 16 KiB as the agent does', () => {
    const f = path.join(scratchDir('tvm-log-'), 'log.jsonl');
    const w = new JsonLogWriter(f);
    w.write('stdout', Buffer.alloc(LOG_MAX_LINE + 10, 'x'));
    w.write('stdout', Buffer.from('\n'));
    w.close();
    expect(lines(f).map((l) => l.log.length)).toEqual([LOG_MAX_LINE, 11]);
  });

  it('rotates by max-size and max-file; the reader sees every kept line in order', async () => {
    const f = path.join(scratchDir('tvm-log-'), 'log.jsonl');
    const w = new JsonLogWriter(f, { maxSize: 300, maxFiles: 3 });
    for (let i = 0; i < 30; i++) w.write('stdout', Buffer.from(`line ${i}\n`));
    w.close();
    expect(existsSync(`${f}.1`) && existsSync(`${f}.2`) && !existsSync(`${f}.3`)).toBe(true);
    const got: string[] = [];
    for await (const e of readLog(f)) got.push(e.log);
    expect(got.length).toBeGreaterThan(3);
    expect(got.at(-1)).toBe('line 29\n');
    const nums = got.map((l) => Number(l.split(' ')[1]));
    expect(nums).toEqual([...nums].sort((a, b) => a - b));
  });

  it('starts over with max-file 1', () => {
    const f = path.join(scratchDir('tvm-log-'), 'log.jsonl');
    const w = new JsonLogWriter(f, { maxSize: 200, maxFiles: 1 });
    for (let i = 0; i < 20; i++) w.write('stdout', Buffer.from(`line ${i}\n`));
    w.close();
    expect(existsSync(`${f}.1`)).toBe(false);
    expect(lines(f).at(-1)!.log).toBe('line 19\n');
    expect(readFileSync(f).length).toBeLessThanOrEqual(200);
  });
});
