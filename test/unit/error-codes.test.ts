/**
 * Issue 18: one registry of error codes. Every 'ERR_*' literal in src is a registered code (or
 * a foreign one src only compares against), every registered code is still used, and
 * docs/errors.md is what scripts/error-codes-doc.ts makes of the registry.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CODES, FOREIGN_CODES, isRegisteredErrorCode } from '../../src/error-codes.js';
import { ERRORS_DOC, renderErrorCodesDoc } from '../../scripts/error-codes-doc.js';

const SRC = path.resolve(import.meta.dirname, '../../src');
const REGISTRY = path.join(SRC, 'error-codes.ts');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** code -> where it is used (file:line), outside the registry itself */
function codesInSrc(): Map<string, string[]> {
  const uses = new Map<string, string[]>();
  for (const f of tsFiles(SRC)) {
    if (f === REGISTRY) continue;
    readFileSync(f, 'utf8')
      .split('\n')
      .forEach((line, i) => {
        for (const m of line.matchAll(/['"`](ERR_[A-Z0-9_]+)['"`]/g)) {
          const at = `${path.relative(SRC, f)}:${i + 1}`;
          uses.set(m[1]!, [...(uses.get(m[1]!) ?? []), at]);
        }
      });
  }
  return uses;
}

describe('error codes (issue 18)', () => {
  const uses = codesInSrc();

  it('every code used in src is registered (or a foreign code src only compares against)', () => {
    const unregistered = [...uses]
      .filter(([c]) => !isRegisteredErrorCode(c) && !(c in FOREIGN_CODES))
      .map(([c, at]) => `${c} (${at.join(', ')})`);
    expect(unregistered).toEqual([]);
  });

  it('every registered code is used somewhere in src', () => {
    expect(Object.keys(ERROR_CODES).filter((c) => !uses.has(c))).toEqual([]);
    expect(Object.keys(FOREIGN_CODES).filter((c) => !uses.has(c))).toEqual([]);
  });

  it('each code has an HTTP status and a meaning', () => {
    for (const [code, c] of Object.entries(ERROR_CODES)) {
      expect(Number.isInteger(c.status) && c.status >= 200 && c.status < 600, code).toBe(true);
      expect(c.meaning.length, code).toBeGreaterThan(10);
    }
  });

  it('docs/errors.md is generated from the registry (npx tsx scripts/error-codes-doc.ts)', () => {
    expect(readFileSync(ERRORS_DOC, 'utf8')).toBe(renderErrorCodesDoc());
  });
});
