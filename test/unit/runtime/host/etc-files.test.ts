import { describe, expect, it } from 'vitest';
import { hostsFile, resolvConf } from '../../../../src/runtime/host/etc-files.js';

describe('per-container /etc files', () => {
  it('hosts has localhost and the container hostname', () => {
    const h = hostsFile('box');
    expect(h).toContain('127.0.0.1\tlocalhost\n');
    expect(h).toContain('127.0.1.1\tbox\n');
  });

  it('resolv.conf drops loopback nameservers (unreachable from another netns) and falls back to public ones', () => {
    expect(resolvConf('search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n', false)).toBe('search lan\nnameserver 10.0.0.1\n');
    expect(resolvConf('nameserver 127.0.0.53\n', false)).toBe('nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    expect(resolvConf('nameserver 127.0.0.53\n', true)).toBe('nameserver 127.0.0.53\n');
  });
});
