import { describe, it, expect } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  kernelKey,
  kernelKeyMaterial,
  kernelInputs,
  kernelsDir,
  kernelCacheDir,
  findKernel,
  buildKernel,
  systemMapSymbol,
  parseKernelConfig,
} from '../../../src/vmm/kernel-artifacts.js';
import { NotFoundError, TvmError } from '../../../src/errors.js';

describe('kernel artifacts', () => {
  it('computes the same cache key as kernels/build.sh --print-key', async () => {
    const fromScript = execFileSync('bash', [path.join(kernelsDir(), 'build.sh'), '--print-key'])
      .toString()
      .trim();
    expect(fromScript).toMatch(/^[0-9a-f]{64}$/);
    expect(await kernelKey()).toBe(fromScript);
  });

  it('keys on the source tarball, the fragment, the scripts and every patch', async () => {
    const inputs = await kernelInputs();
    expect(inputs.slice(0, 3)).toEqual(['build.sh', 'check-config.sh', 'config-fragment']);
    expect(inputs).toContain('patches/0003-pvm-syscall-bridge.patch');
    const material = await kernelKeyMaterial();
    expect(material.split('\n')[0]).toMatch(/^source linux-source-6\.1\.tar\.xz [0-9a-f]{64}$/);
    expect(material.trim().split('\n')).toHaveLength(inputs.length + 1);
  });

  it('uses $TVM_CACHE/kernels', () => {
    expect(kernelCacheDir({ TVM_CACHE: '/x' })).toBe('/x/kernels');
    expect(kernelCacheDir({ HOME: '/h' })).toBe('/h/.cache/tvm/kernels');
  });

  it('findKernel says how to build when nothing is built', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-kcache-'));
    try {
      await expect(findKernel({ ...process.env, TVM_CACHE: dir })).rejects.toThrow(NotFoundError);
      await expect(findKernel({ ...process.env, TVM_CACHE: dir })).rejects.toThrow('guest kernel not built: run tvm kernel build');
      // Without the source tarball there is no key; with no `current` build that is also "not built".
      await expect(findKernel({ ...process.env, TVM_CACHE: dir, TVM_KERNEL_SOURCE: path.join(dir, 'none.tar.xz') })).rejects.toThrow(
        NotFoundError,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without the source tarball, findKernel falls back to the last build (current)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-kcache-'));
    try {
      const key = 'ab'.repeat(32);
      const kdir = path.join(dir, 'kernels', key);
      mkdirSync(kdir, { recursive: true });
      for (const f of ['vmlinux', 'bzImage', 'System.map', 'config']) writeFileSync(path.join(kdir, f), '');
      symlinkSync(key, path.join(dir, 'kernels', 'current'));
      const a = await findKernel({ ...process.env, TVM_CACHE: dir, TVM_KERNEL_SOURCE: path.join(dir, 'none.tar.xz') });
      expect(a).toEqual({
        key,
        dir: kdir,
        vmlinux: path.join(kdir, 'vmlinux'),
        bzImage: path.join(kdir, 'bzImage'),
        systemMap: path.join(kdir, 'System.map'),
        config: path.join(kdir, 'config'),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("buildKernel reports a failed build with the script's message", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-kcache-'));
    const lines: string[] = [];
    try {
      const p = buildKernel({
        env: { ...process.env, TVM_CACHE: dir, TVM_KERNEL_SOURCE: path.join(dir, 'none.tar.xz') },
        onProgress: (l) => lines.push(l),
      });
      await expect(p).rejects.toThrow(TvmError);
      await expect(p).rejects.toThrow(/kernel source .*none\.tar\.xz not found/);
      expect(lines.join('\n')).toContain('not found');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads System.map symbols and .config values', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'tvm-sysmap-'));
    try {
      const map = path.join(dir, 'System.map');
      writeFileSync(map, 'ffffffff81000000 T _text\nffffffff81a00040 T entry_SYSCALL_64\n');
      expect(await systemMapSymbol(map, 'entry_SYSCALL_64')).toBe(0xffffffff81a00040n);
      await expect(systemMapSymbol(map, 'nope')).rejects.toThrow(NotFoundError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const c = parseKernelConfig('CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S="a b"\n');
    expect([...c]).toEqual([
      ['CONFIG_A', 'y'],
      ['CONFIG_B', 'n'],
      ['CONFIG_S', '"a b"'],
    ]);
  });
});
