/** The json-file reader across rotated files (log.jsonl.N-1 .. .1, log.jsonl), as the agent rotates them. */
import { describe, it, expect, afterEach } from 'vitest';
import { appendFile, link, mkdtemp, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { formatLogLine, logChainNames, logSize, openLogChain, readLog, timeToNano } from '../../../src/runtime/log-file.js';

let dir: string;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const line = (i: number) => formatLogLine('stdout', `line ${i}\n`, `2024-01-01T00:00:${String(i).padStart(2, '0')}.000000000Z`);
const texts = async (g: AsyncGenerator<{ log: string }>) => {
  const out: string[] = [];
  for await (const e of g) out.push(e.log.trim());
  return out;
};

/** The agent's rotation, step by step: shift, link the current as .1, replace the current. */
async function rotate(file: string, maxFiles: number): Promise<void> {
  // as the agent: a generation not there yet has nothing to shift
  for (let k = maxFiles - 1; k >= 2; k--) await rename(`${file}.${k - 1}`, `${file}.${k}`).catch(() => {});
  if (maxFiles > 1) {
    // as the agent: no .1 yet on the first rotation
    await unlink(`${file}.1`).catch(() => {});
    await link(file, `${file}.1`);
  }
  await writeFile(`${file}.tmp`, '');
  await rename(`${file}.tmp`, file);
}

describe('rotated json-file log', () => {
  it('lists and reads the files oldest first; tail and since span files', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tvm-logrot-'));
    const f = path.join(dir, 'log.jsonl');
    await writeFile(`${f}.2`, line(1) + line(2));
    await writeFile(`${f}.1`, line(3) + line(4));
    await writeFile(f, line(5));
    await writeFile(path.join(dir, 'log.jsonl.tmp'), 'ignored');
    await writeFile(path.join(dir, 'exit.json'), '{}');
    expect((await logChainNames(f)).map((n) => path.basename(n))).toEqual(['log.jsonl.2', 'log.jsonl.1', 'log.jsonl']);
    expect(await texts(readLog(f))).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5']);
    expect(await texts(readLog(f, { tail: 3 }))).toEqual(['line 3', 'line 4', 'line 5']);
    expect(await texts(readLog(f, { sinceNano: timeToNano('2024-01-01T00:00:02Z') }))).toEqual(['line 2', 'line 3', 'line 4', 'line 5']);
    expect(await logSize(f)).toBe(5 * line(1).length);
  });

  it('opens a file linked under two names (mid-rotation) once', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tvm-logrot-'));
    const f = path.join(dir, 'log.jsonl');
    await writeFile(f, line(1));
    await link(f, `${f}.1`);
    const chain = await openLogChain(f);
    expect(chain).toHaveLength(1);
    await Promise.all(chain.map((c) => c.fh.close()));
    expect(await texts(readLog(f))).toEqual(['line 1']);
  });

  it('follows across rotations without losing or repeating a line, also when two happen between reads', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tvm-logrot-'));
    const f = path.join(dir, 'log.jsonl');
    await writeFile(f, line(1));
    let finished = false;
    let finish!: () => void;
    const onFinish = new Promise<void>((r) => (finish = r));
    const got = texts(readLog(f, { follow: true, finished: () => finished, onFinish }));
    await new Promise((r) => setTimeout(r, 50));
    await appendFile(f, line(2));
    await rotate(f, 3);
    await appendFile(f, line(3));
    await new Promise((r) => setTimeout(r, 400));
    // two rotations in a row, faster than the follower's poll
    await appendFile(f, line(4));
    await rotate(f, 3);
    await appendFile(f, line(5));
    await rotate(f, 3);
    await appendFile(f, line(6));
    finished = true;
    finish();
    expect(await got).toEqual(['line 1', 'line 2', 'line 3', 'line 4', 'line 5', 'line 6']);
    expect((await logChainNames(f)).map((n) => path.basename(n))).toEqual(['log.jsonl.2', 'log.jsonl.1', 'log.jsonl']);
  });

  it('follows a log that does not exist yet', async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'tvm-logrot-'));
    const f = path.join(dir, 'log.jsonl');
    let finished = false;
    const got = texts(readLog(f, { follow: true, finished: () => finished }));
    await new Promise((r) => setTimeout(r, 50));
    await writeFile(f, line(1));
    await new Promise((r) => setTimeout(r, 400));
    finished = true;
    expect(await got).toEqual(['line 1']);
  });
});
