import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { kernelsDir } from '../../../src/vmm/kernel-artifacts.js';

/** Runs kernels/check-config.sh on a fragment and a resolved config; returns exit code and output. */
function check(fragment: string, config: string): { code: number; out: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'tvm-checkconfig-'));
  try {
    writeFileSync(path.join(dir, 'fragment'), fragment);
    writeFileSync(path.join(dir, 'config'), config);
    try {
      const out = execFileSync('bash', [path.join(kernelsDir(), 'check-config.sh'), path.join(dir, 'fragment'), path.join(dir, 'config')], {
        stdio: 'pipe',
      });
      return { code: 0, out: out.toString() };
    } catch (e) {
      const err = e as { status: number; stderr: Buffer };
      return { code: err.status, out: err.stderr.toString() };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('kernels/check-config.sh', () => {
  const config = ['CONFIG_A=y', 'CONFIG_N=32', 'CONFIG_S="x y"', '# CONFIG_OFF is not set', 'CONFIG_ON=y', ''].join('\n');

  it('accepts a fragment that survived olddefconfig, including unset options absent from .config', () => {
    const r = check('# comment\n\nCONFIG_A=y\nCONFIG_N=32\nCONFIG_S="x y"\n# CONFIG_OFF is not set\n# CONFIG_ABSENT is not set\n', config);
    expect(r).toEqual({ code: 0, out: 'check-config: all 5 fragment options satisfied\n' });
  });

  it('names options Kconfig dropped, changed, or left set', () => {
    const r = check('CONFIG_A=y\nCONFIG_GONE=y\nCONFIG_N=64\n# CONFIG_ON is not set\n', config);
    expect(r.code).toBe(1);
    expect(r.out).toContain('CONFIG_GONE=y was dropped');
    expect(r.out).toContain('CONFIG_N should be 64 but is 32');
    expect(r.out).toContain('CONFIG_ON should be unset but is CONFIG_ON=y');
    expect(r.out).toContain('3 of 4 fragment options not satisfied');
  });

  it('rejects lines it cannot parse', () => {
    const r = check('CONFIG_A=y\nBOGUS LINE\n', config);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/fragment:2: cannot parse: BOGUS LINE/);
  });

  it('checks the real fragment is well-formed: every line an option, a comment or blank', () => {
    const r = check(
      execFileSync('cat', [path.join(kernelsDir(), 'config-fragment')]).toString(),
      '', // nothing set: every "=y" must be reported as dropped, and no line may be unparseable
    );
    expect(r.code).toBe(1);
    expect(r.out).not.toContain('cannot parse');
    expect(r.out).toContain('CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y was dropped');
  });
});
