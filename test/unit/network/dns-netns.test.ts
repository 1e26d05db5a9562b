import { describe, it, expect } from 'vitest';
import { renderDnsRedirect } from '../../../src/network/dns-netns.js';

describe('127.0.0.11 in a container namespace', () => {
  it("DNATs UDP and TCP port 53 to the network's server, SNATed to the container's address", () => {
    expect(renderDnsRedirect('10.5.0.1', '10.5.0.7').split('\n')).toEqual([
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':INPUT ACCEPT [0:0]',
      ':OUTPUT ACCEPT [0:0]',
      ':POSTROUTING ACCEPT [0:0]',
      '-A OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 -j DNAT --to-destination 10.5.0.1:53',
      '-A OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 -j DNAT --to-destination 10.5.0.1:53',
      '-A POSTROUTING -s 127.0.0.0/8 -d 10.5.0.1/32 -p udp -m udp --dport 53 -j SNAT --to-source 10.5.0.7',
      '-A POSTROUTING -s 127.0.0.0/8 -d 10.5.0.1/32 -p tcp -m tcp --dport 53 -j SNAT --to-source 10.5.0.7',
      'COMMIT',
      '',
    ]);
  });
});
