import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const NATIVE = path.resolve(import.meta.dirname, '../../../native');

describe('native agent', () => {
  it('builds statically with -Wall -Wextra -Werror and passes its C unit tests (make -C native test)', () => {
    for (const tool of ['make', 'gcc']) {
      try {
        execFileSync('sh', ['-c', `command -v ${tool}`]);
      } catch {
        throw new Error(`missing tool: ${tool} (apt-get install build-essential musl-tools)`);
      }
    }
    const out = execFileSync('make', ['-s', '-C', NATIVE, 'all', 'test'], { encoding: 'utf8' });
    const results = [...out.matchAll(/^(test_\w+): (\d+) checks, (\d+) failed$/gm)];
    expect(results.map((r) => r[1]).sort()).toEqual(
      [
        'test_devices',
        'test_frame',
        'test_json',
        'test_log',
        'test_seccomp',
        'test_hostopts',
        'test_spec',
        'test_user',
        'test_userns',
        'test_cgroup',
        'test_run',
        'test_update',
        'test_guest',
      ].sort(),
    );
    for (const r of results) {
      expect(Number(r[2])).toBeGreaterThan(5);
      expect(Number(r[3])).toBe(0);
    }
    const file = execFileSync('file', [path.join(NATIVE, 'build/tvm-agent')], { encoding: 'utf8' });
    expect(file).toMatch(/statically linked|static-pie linked/);
  });
});
