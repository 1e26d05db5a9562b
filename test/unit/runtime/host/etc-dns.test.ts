import { describe, expect, it } from 'vitest';
import { embeddedResolvConf, hostsFile, withDnsOptions } from '../../../../src/runtime/host/etc-files.js';

describe('--add-host and --dns in the container /etc files', () => {
  it("extra hosts follow Docker's own entries", () => {
    const h = hostsFile('abc', [
      { name: 'db', ip: '10.1.2.3' },
      { name: 'v6', ip: '::1' },
    ]);
    expect(h.split('\n').slice(-3)).toEqual(['10.1.2.3\tdb', '::1\tv6', '']);
    expect(h).toContain('127.0.1.1\tabc\n');
  });
  it('each of --dns, --dns-search, --dns-option replaces only its own lines', () => {
    const base = 'nameserver 1.1.1.1\nsearch corp.example\noptions edns0\n';
    expect(withDnsOptions(base, undefined)).toBe(base);
    expect(withDnsOptions(base, { nameservers: ['10.0.0.53'] })).toBe('search corp.example\noptions edns0\nnameserver 10.0.0.53\n');
    expect(withDnsOptions(base, { search: ['a.example', 'b.example'], options: ['ndots:2'] })).toBe(
      'nameserver 1.1.1.1\nsearch a.example b.example\noptions ndots:2\n',
    );
    expect(withDnsOptions('domain x\nnameserver 1.1.1.1\n', { search: [] })).toBe('nameserver 1.1.1.1\n');
  });
});

describe('resolv.conf with the embedded DNS (user-defined networks), as Docker 20.10 writes it', () => {
  it('the embedded server alone, host search and options kept, ndots:0 added', () => {
    const host =
      'search lan corp\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver fd00::53\nnameserver ::1\noptions edns0 trust-ad\n';
    expect(embeddedResolvConf(host, undefined, '127.0.0.11')).toBe(
      'search lan corp\nnameserver 127.0.0.11\nnameserver fd00::53\noptions edns0 trust-ad ndots:0\n',
    );
    expect(embeddedResolvConf('nameserver 10.0.0.1\n', undefined, '127.0.0.11')).toBe('nameserver 127.0.0.11\noptions ndots:0\n');
  });
  it("--dns servers are not listed (the server forwards to them); --dns-search and --dns-option replace the host's", () => {
    const host = 'search lan\nnameserver 10.0.0.1\noptions edns0\n';
    expect(embeddedResolvConf(host, { nameservers: ['10.9.9.9'] }, '127.0.0.11')).toBe(
      'search lan\nnameserver 127.0.0.11\noptions edns0 ndots:0\n',
    );
    expect(embeddedResolvConf(host, { search: ['a.example'], options: ['timeout:2'] }, '127.0.0.11')).toBe(
      'search a.example\nnameserver 127.0.0.11\noptions timeout:2 ndots:0\n',
    );
    // the user's ndots wins over the embedded server's
    expect(embeddedResolvConf(host, { options: ['ndots:3'] }, '127.0.0.11')).toBe('search lan\nnameserver 127.0.0.11\noptions ndots:3\n');
    // --dns-search . : no search line
    expect(embeddedResolvConf(host, { search: [] }, '127.0.0.11')).toBe('nameserver 127.0.0.11\noptions edns0 ndots:0\n');
  });
});
