/**
 * The ext2fs package's emscripten glue installs `uncaughtException`/`unhandledRejection`
 * handlers that rethrow; Node then exits with code 7 whatever the daemon's own handler says.
 * Loading it through src/disks/ext4/ext2fs.ts must leave the process's handlers as they were.
 */
import { describe, it, expect } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';
import { REPO } from '../../../fixtures/daemon.js';
import { scratchDir } from '../../../fixtures/scratch.js';
import { requireWithoutProcessHandlers } from '../../../../src/disks/ext4/ext2fs.js';

describe('loading ext2fs without its process handlers', () => {
  it('requireWithoutProcessHandlers removes the listeners the module added, and only those', () => {
    const dir = scratchDir('tvm-ext2fs-load-');
    const file = path.join(dir, 'adds-handlers.cjs');
    writeFileSync(
      file,
      `process.on('uncaughtException', (e) => { throw e });
       process.on('unhandledRejection', (r) => { throw r });
       exports.answer = 42;`,
    );
    const mine = () => {};
    process.on('uncaughtException', mine);
    try {
      const before = [process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')];
      const mod = requireWithoutProcessHandlers<{ answer: number }>(file, pathToFileURL(file).href);
      expect(mod.answer).toBe(42);
      expect([process.listenerCount('uncaughtException'), process.listenerCount('unhandledRejection')]).toEqual(before);
      expect(process.listeners('uncaughtException')).toContain(mine);
    } finally {
      process.off('uncaughtException', mine);
    }
  });

  it('a process that loaded ext2fs keeps running after an uncaught error its own handler logs', async () => {
    const script = `
      await import(${JSON.stringify(pathToFileURL(path.join(REPO, 'src/disks/ext4/ext2fs.ts')).href)});
      process.on('uncaughtException', (e) => console.log('logged: ' + e.message));
      setTimeout(() => { throw new Error('stray'); }, 0);
      setTimeout(() => Promise.reject(new Error('rejected')), 10);
      process.on('unhandledRejection', (e) => console.log('logged: ' + e.message));
      setTimeout(() => console.log('still serving'), 50);
    `;
    const r = await execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, reject: false });
    expect({ exitCode: r.exitCode, stdout: r.stdout.split('\n') }).toEqual({
      exitCode: 0,
      stdout: ['logged: stray', 'logged: rejected', 'still serving'],
    });
  });
});
