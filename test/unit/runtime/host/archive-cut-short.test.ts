/**
 * archiveFrom when its reader goes away mid-walk and the view is removed at once (a stopped
 * container's copy view is unmounted by the release): no file opened after that may surface
 * as an uncaught exception, which took the daemon down (or, once it logged them, left BUG
 * lines) in the reliability suite.
 */
import { describe, it, expect } from 'vitest';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { archiveFrom } from '../../../../src/runtime/host/archive.js';
import { scratchDir } from '../../../fixtures/scratch.js';

describe('archiveFrom cut short while its view goes', () => {
  it('reports nothing uncaught, whenever the reader leaves', async () => {
    const uncaught: unknown[] = [];
    const record = (e: unknown) => uncaught.push(e);
    process.on('uncaughtException', record);
    try {
      for (let i = 0; i < 40; i++) {
        const root = scratchDir('tvm-archive-cut-');
        for (let f = 0; f < 40; f++) writeFileSync(path.join(root, `f${String(f).padStart(2, '0')}`), Buffer.alloc(2048 + f, f));
        const view = { root, cleanup: async () => rmSync(root, { recursive: true, force: true }) };
        const out = await archiveFrom(view, '/');
        // leave after a varying share of the walk
        let seen = 0;
        await new Promise<void>((resolve) => {
          out.on('data', (c: Buffer) => {
            seen += c.length;
            if (seen >= (i % 8) * 4096) {
              out.destroy();
              resolve();
            }
          });
          out.on('close', () => resolve());
          out.on('error', () => resolve());
        });
        await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('uncaughtException', record);
    }
    expect(uncaught.map(String)).toEqual([]);
  });
});
