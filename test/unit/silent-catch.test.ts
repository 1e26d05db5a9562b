/**
 * Issue 16 item 21: no error is dropped silently. A `.catch(() => {})` must say, in a comment
 * on its line or the lines just above, why dropping that error is safe; otherwise the error is
 * handled or logged with context instead.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../../src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('silent catches (issue 16 item 21)', () => {
  it('every .catch(() => {}) in src says why dropping the error is safe', () => {
    const bare: string[] = [];
    for (const f of tsFiles(SRC)) {
      const lines = readFileSync(f, 'utf8').split('\n');
      lines.forEach((line, i) => {
        if (!line.includes('.catch(() => {})')) return;
        // the comment: on the line, or in the comment block right above it
        let explained = line.includes('//');
        for (let k = i - 1; !explained && k >= 0 && /^\s*(\/\/|\*|\/\*)/.test(lines[k]!); k--) explained = true;
        if (!explained) bare.push(`${path.relative(SRC, f)}:${i + 1}: ${line.trim()}`);
      });
    }
    expect(bare).toEqual([]);
  });
});
