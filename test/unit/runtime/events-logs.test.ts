import { describe, it, expect, afterAll } from 'vitest';
import { mkdtemp, appendFile, writeFile, rm, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventBus, matchEvent, parseTimeArg } from '../../../src/runtime/events.js';
import { readLog, parseLogLine, timeToNano, formatLogLine, type LogEntry } from '../../../src/runtime/log-file.js';

describe('events', () => {
  it('publishes Docker-shaped events with increasing timestamps and filters them', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const off = bus.subscribe((e) => seen.push(e.Action));
    const a = bus.publish('container', 'start', 'abc', { name: 'web', image: 'busybox', tier: 'front' });
    const b = bus.publish('image', 'pull', 'busybox:latest', { name: 'busybox:latest' });
    off();
    bus.publish('container', 'die', 'abc', { name: 'web', image: 'busybox' });
    expect(seen).toEqual(['start', 'pull']);
    expect(b.timeNano).toBeGreaterThan(a.timeNano);
    expect(a).toMatchObject({ Type: 'container', status: 'start', id: 'abc', from: 'busybox', scope: 'local' });
    expect(matchEvent(a, { type: ['container'], event: ['start', 'die'] })).toBe(true);
    expect(matchEvent(a, { container: ['web'] })).toBe(true);
    expect(matchEvent(a, { container: ['ab'] })).toBe(true);
    expect(matchEvent(a, { label: ['tier=front'] })).toBe(true);
    expect(matchEvent(a, { label: ['tier=back'] })).toBe(false);
    expect(matchEvent(b, { type: ['container'] })).toBe(false);
    expect(matchEvent(b, { image: ['busybox:latest'] })).toBe(true);
    expect(bus.history(BigInt(b.timeNano), undefined).map((e) => e.Action)).toEqual(['pull', 'die']);
  });
  it('parses time arguments', () => {
    expect(parseTimeArg('1700000000')).toBe(1700000000n * 1_000_000_000n);
    expect(parseTimeArg('1700000000.5')).toBe(1700000000500000000n);
    expect(parseTimeArg('2024-01-01T00:00:00Z')).toBe(BigInt(Date.parse('2024-01-01T00:00:00Z')) * 1_000_000n);
    expect(parseTimeArg('10m', 1_000_000)).toBe(BigInt(1_000_000 - 600_000) * 1_000_000n);
    expect(() => parseTimeArg('yesterday')).toThrow('invalid time value: yesterday');
  });
});

describe('json-file log', () => {
  const dirs: string[] = [];
  const tmp = async () => {
    const d = await mkdtemp(path.join(tmpdir(), 'tvm-log-'));
    dirs.push(d);
    return d;
  };
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const entries = (texts: [string, 'stdout' | 'stderr', string][]) =>
    texts.map(([log, stream, time]) => JSON.stringify({ log, stream, time }) + '\n').join('');
  const all = async (g: AsyncGenerator<LogEntry>) => {
    const out: string[] = [];
    for await (const e of g) out.push(e.log);
    return out;
  };

  it('parses lines and skips torn ones', () => {
    expect(parseLogLine('{"log":"hi\\n","stream":"stdout","time":"2024-01-01T00:00:00.000000001Z"}')).toEqual({
      log: 'hi\n',
      stream: 'stdout',
      time: '2024-01-01T00:00:00.000000001Z',
    });
    expect(parseLogLine('{"log":"hi')).toBeUndefined();
    expect(parseLogLine('{"log":1,"stream":"stdout","time":"x"}')).toBeUndefined();
    expect(timeToNano('2024-01-01T00:00:00.000000001Z') - timeToNano('2024-01-01T00:00:00Z')).toBe(1n);
    expect(formatLogLine('stderr', 'x\n', '2024-01-01T00:00:00Z')).toBe('{"log":"x\\n","stream":"stderr","time":"2024-01-01T00:00:00Z"}\n');
  });

  it('reads with tail, since and until', async () => {
    const f = path.join(await tmp(), 'log.jsonl');
    await writeFile(
      f,
      entries([
        ['a\n', 'stdout', '2024-01-01T00:00:01Z'],
        ['b\n', 'stderr', '2024-01-01T00:00:02Z'],
        ['c\n', 'stdout', '2024-01-01T00:00:03Z'],
      ]) + '{"log":"torn',
    );
    expect(await all(readLog(f))).toEqual(['a\n', 'b\n', 'c\n']);
    expect(await all(readLog(f, { tail: 2 }))).toEqual(['b\n', 'c\n']);
    expect(await all(readLog(f, { tail: 0 }))).toEqual([]);
    expect(await all(readLog(f, { sinceNano: timeToNano('2024-01-01T00:00:02Z') }))).toEqual(['b\n', 'c\n']);
    expect(await all(readLog(f, { untilNano: timeToNano('2024-01-01T00:00:02Z') }))).toEqual(['a\n', 'b\n']);
  });

  it('follows appended lines until the writer is finished', async () => {
    const f = path.join(await tmp(), 'log.jsonl');
    await writeFile(f, entries([['1\n', 'stdout', '2024-01-01T00:00:01Z']]));
    let finished = false;
    let finish!: () => void;
    const onFinish = new Promise<void>((r) => (finish = r));
    const got = all(readLog(f, { follow: true, finished: () => finished, onFinish }));
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(f, entries([['2\n', 'stdout', '2024-01-01T00:00:02Z']]));
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(f, entries([['3\n', 'stderr', '2024-01-01T00:00:03Z']]));
    finished = true;
    finish();
    expect(await got).toEqual(['1\n', '2\n', '3\n']);
  });
});

describe('json-file log at scale', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const line = (i: number) => JSON.stringify({ log: `${i}\n`, stream: 'stdout', time: '2024-01-01T00:00:01Z' }) + '\n';

  // Regression: 200k entries were spread into push(...), overflowing the stack; docker logs
  // then answered 200 with 0 bytes (also with --tail 1).
  it('reads and tails a log of 200k lines', async () => {
    const d = await mkdtemp(path.join(tmpdir(), 'rel-log-'));
    dirs.push(d);
    const f = path.join(d, 'log.jsonl');
    const parts: string[] = [];
    for (let i = 0; i < 200_000; i++) parts.push(line(i));
    await writeFile(f, parts.join(''));
    let n = 0;
    let last = '';
    for await (const e of readLog(f)) {
      n++;
      last = e.log;
    }
    expect(n).toBe(200_000);
    expect(last).toBe('199999\n');
    const tail: string[] = [];
    for await (const e of readLog(f, { tail: 1 })) tail.push(e.log);
    expect(tail).toEqual(['199999\n']);
  });

  // Regression: --tail read the whole log (every line into memory) to keep its last N. A sparse
  // 64 GiB run of zero bytes before the last lines makes a front-to-back reader fail (string
  // too long) or run for minutes; reading from the end touches only the last few KiB.
  it('tails from the end without reading the front of the log', async () => {
    const d = await mkdtemp(path.join(tmpdir(), 'rel-log-'));
    dirs.push(d);
    const f = path.join(d, 'log.jsonl');
    const fh = await open(f, 'w');
    const tailText = '\n' + line(1) + line(2) + line(3) + '{"log":"par';
    await fh.write(tailText, 64 * 1024 ** 3);
    await fh.close();
    const got: string[] = [];
    for await (const e of readLog(f, { tail: 2 })) got.push(e.log);
    expect(got).toEqual(['2\n', '3\n']);
    // tail across rotated files: the newest has one line, the rest come from .1
    await writeFile(`${f}.1`, line(10) + line(11));
    await writeFile(f, line(12) + '{"log":"par');
    const rot: string[] = [];
    for await (const e of readLog(f, { tail: 3 })) rot.push(e.log);
    expect(rot).toEqual(['10\n', '11\n', '12\n']);
  });

  it('follows after a tail from where the last complete line ends', async () => {
    const d = await mkdtemp(path.join(tmpdir(), 'rel-log-'));
    dirs.push(d);
    const f = path.join(d, 'log.jsonl');
    const partial = line(2);
    await writeFile(f, line(1) + partial.slice(0, 5));
    let finished = false;
    let finish!: () => void;
    const onFinish = new Promise<void>((r) => (finish = r));
    const got: string[] = [];
    const done = (async () => {
      for await (const e of readLog(f, { tail: 1, follow: true, finished: () => finished, onFinish })) got.push(e.log);
    })();
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(f, partial.slice(5) + line(3));
    finished = true;
    finish();
    await done;
    expect(got).toEqual(['1\n', '2\n', '3\n']);
  });
});
