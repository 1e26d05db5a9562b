/**
 * Issue 18: imports point down the layers only (cli -> daemon -> api -> build -> runtime ->
 * images -> disks/vmm -> kvm; network and guest-agent beside images). The daemon and the CLI
 * are the composition roots and may import anything. A shared piece that two layers need lives below both (src/*.ts: errors,
 * tar-safety, fs-changes, ...), never in the higher one.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** for each lower layer, the src/ folders it may import besides its own and src/*.ts */
const ALLOWED: Record<string, string[]> = {
  kvm: [],
  disks: [],
  vmm: ['kvm', 'disks'],
  'guest-agent': [],
  network: [],
  images: ['disks'],
  runtime: ['images', 'disks', 'vmm', 'kvm', 'network', 'guest-agent'],
  build: ['runtime', 'images', 'disks', 'network'],
  api: ['build', 'runtime', 'images', 'disks', 'vmm', 'network', 'guest-agent'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = path.join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('import layering (issue 18)', () => {
  it('no layer below the daemon imports one above it', () => {
    const upward: string[] = [];
    for (const [layer, allowed] of Object.entries(ALLOWED)) {
      for (const f of tsFiles(path.join(SRC, layer))) {
        const text = readFileSync(f, 'utf8');
        for (const m of text.matchAll(/(?:from\s+|import\(\s*)'(\.{1,2}\/[^']+)'/g)) {
          const target = path.relative(SRC, path.resolve(path.dirname(f), m[1]!));
          const top = target.split(path.sep)[0]!;
          if (!target.includes(path.sep) || top === layer || allowed.includes(top)) continue;
          upward.push(`${path.relative(SRC, f)} imports ${target}`);
        }
      }
    }
    expect(upward).toEqual([]);
  });
});
