import { describe, expect, it } from 'vitest';
import { hostsFile, withDnsOptions } from '../../../../src/runtime/host/etc-files.js';

describe('--add-host and --dns in the container /etc files', () => {
  it('extra hosts follow Docker\'s own entries', () => {
    const h = hostsFile('abc', [{ name: 'db', ip: '10.1.2.3' }, { name: 'v6', ip: '::1' }]);
    expect(h.split('\n').slice(-3)).toEqual(['10.1.2.3\tdb', '::1\tv6', '']);
    expect(h).toContain('127.0.1.1\tabc\n');
  });
  it('each of --dns, --dns-search, --dns-option replaces only its own lines', () => {
    const base = 'nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n';
    expect(withDnsOptions(base, undefined)).toBe(base);
    expect(withDnsOptions(base, { nameservers: ['10.0.0.53'] })).toBe('search corp.example\noptions edns0\nnameserver 10.0.0.53\n');
    expect(withDnsOptions(base, { search: ['a.example', 'b.example'], options: ['ndots:2'] })).toBe('nameserver 1.1.1.1\nsearch a.example b.example\noptions ndots:2\n');
    expect(withDnsOptions('domain x\nnameserver 1.1.1.1\n', { search: [] })).toBe('nameserver 1.1.1.1\n');
  });
});
