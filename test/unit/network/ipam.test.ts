import { describe, it, expect } from 'vitest';
import {
  allocate,
  cidr,
  completeConfig,
  formatCidr,
  macFor,
  overlaps,
  parseAddressPool,
  parseIp,
  pickSubnet,
  release,
  validateIpamConfig,
} from '../../../src/network/ipam.js';

describe('IPAM', () => {
  it('parses addresses and CIDRs strictly', () => {
    expect(parseIp('172.17.0.1')).toBe(0xac110001);
    for (const bad of ['256.0.0.1', '1.2.3', '01.2.3.4', 'a.b.c.d', '1.2.3.4 ']) expect(parseIp(bad)).toBeUndefined();
    expect(formatCidr(cidr('10.1.2.3/16'))).toBe('10.1.0.0/16');
    expect(() => cidr('10.0.0.0/33')).toThrow('invalid CIDR address: 10.0.0.0/33');
    expect(overlaps(cidr('10.0.0.0/16'), cidr('10.0.128.0/24'))).toBe(true);
    expect(overlaps(cidr('10.0.0.0/24'), cidr('10.0.1.0/24'))).toBe(false);
  });

  it("validates a network config with Docker's messages, listing every problem", () => {
    expect(() => validateIpamConfig({ Subnet: '10.300.0.0/24' })).toThrow(
      'invalid network config:\ninvalid subnet 10.300.0.0/24: invalid CIDR block notation',
    );
    expect(() => validateIpamConfig({ Subnet: '10.1.0.5/16' })).toThrow('invalid subnet 10.1.0.5/16: it should be 10.1.0.0/16');
    let msg = '';
    try {
      validateIpamConfig({ Subnet: '10.1.0.0/24', Gateway: '10.2.0.1', IPRange: '10.1.1.0/25' });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toBe(
      'invalid network config:\ninvalid ip-range 10.1.1.0/25: parent subnet 10.1.0.0/24 does not contain this IP range\ninvalid gateway 10.2.0.1: parent subnet 10.1.0.0/24 does not contain this address',
    );
    expect(() => validateIpamConfig({ Subnet: '10.1.0.0/24', Gateway: '10.1.0.9', IPRange: '10.1.0.128/25' })).not.toThrow();
  });

  it('allocates the next free address of the range, never the network, broadcast or gateway', () => {
    const cfg = completeConfig({ Subnet: '10.9.0.0/29' });
    expect(cfg).toEqual({ Subnet: '10.9.0.0/29', Gateway: '10.9.0.1' });
    const used: Record<string, string> = { [cfg.Gateway]: 'gateway' };
    const got = ['a', 'b', 'c', 'd', 'e'].map((o) => allocate(cfg, used, o));
    expect(got).toEqual(['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
    expect(() => allocate(cfg, used, 'f')).toThrow('no available IPv4 addresses');
    release(used, 'c');
    expect(allocate(cfg, used, 'f')).toBe('10.9.0.4');
    const ranged = completeConfig({ Subnet: '10.9.0.0/24', IPRange: '10.9.0.128/25' });
    expect(allocate(ranged, { [ranged.Gateway]: 'gateway' }, 'x')).toBe('10.9.0.128');
  });

  it('static addresses: inside the subnet, not taken; the same owner may ask again', () => {
    const cfg = completeConfig({ Subnet: '10.9.0.0/24' });
    const used: Record<string, string> = { [cfg.Gateway]: 'gateway' };
    expect(allocate(cfg, used, 'a', '10.9.0.50')).toBe('10.9.0.50');
    expect(allocate(cfg, used, 'a', '10.9.0.50')).toBe('10.9.0.50');
    expect(() => allocate(cfg, used, 'b', '10.9.0.50')).toThrow('Address already in use');
    expect(() => allocate(cfg, used, 'b', '10.9.0.1')).toThrow('Address already in use');
    expect(() => allocate(cfg, used, 'b', '10.8.0.5')).toThrow('no configured subnet or ip-range contain the IP address 10.8.0.5');
    expect(() => allocate(cfg, used, 'b', '10.9.0.255')).toThrow('no configured subnet or ip-range contain the IP address');
  });

  it('picks the first pool subnet clear of taken ones (host routes, other networks)', () => {
    const pools = [
      { base: '172.17.0.0/16', size: 16 },
      { base: '172.18.0.0/15', size: 16 },
    ];
    expect(formatCidr(pickSubnet(pools, []))).toBe('172.17.0.0/16');
    expect(formatCidr(pickSubnet(pools, [cidr('172.17.5.0/24')]))).toBe('172.18.0.0/16');
    expect(formatCidr(pickSubnet(pools, [cidr('172.17.0.0/16'), cidr('172.18.0.0/16')]))).toBe('172.19.0.0/16');
    expect(() => pickSubnet(pools, [cidr('172.16.0.0/12')])).toThrow('could not find an available, non-overlapping IPv4 address pool');
    expect(parseAddressPool('base=10.10.0.0/16,size=24')).toEqual({ base: '10.10.0.0/16', size: 24 });
    expect(() => parseAddressPool('base=10.10.0.0/16,size=8')).toThrow('invalid default address pool');
  });

  it('derives the MAC from the address as Docker does', () => {
    expect(macFor('172.17.0.2')).toBe('02:42:ac:11:00:02');
  });
});
