import { describe, it, expect } from 'vitest';
import { render } from '../../../src/network/netfilter.js';

describe('netfilter rules', () => {
  it('renders masquerade, isolation, internal and DNAT rules for iptables-restore', () => {
    const r = render(
      [
        { bridge: 'tvm0', subnet: '172.17.0.0/16', internal: false },
        { bridge: 'br-a', subnet: '10.1.0.0/24', internal: true },
      ],
      [
        { bridge: 'tvm0', proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '172.17.0.2', containerPort: 80 },
        { bridge: 'tvm0', proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerIp: '172.17.0.2', containerPort: 53 },
      ],
    );
    const f = r.filter.split('\n');
    const n = r.nat.split('\n');
    expect(f[0]).toBe('*filter');
    expect(f).toContain('-A TVM-ISOLATION -i tvm0 -o br-a -j DROP');
    expect(f).toContain('-A TVM-ISOLATION -i br-a -o tvm0 -j DROP');
    expect(f).toContain('-A TVM-FORWARD -i br-a ! -o br-a -j DROP');
    expect(f).toContain('-A TVM-FORWARD -d 172.17.0.2/32 ! -i tvm0 -o tvm0 -p tcp -m tcp --dport 80 -j ACCEPT');
    expect(f.indexOf('-A TVM-FORWARD -o tvm0 -j DROP')).toBeGreaterThan(f.indexOf('-A TVM-FORWARD -i tvm0 -j ACCEPT'));
    expect(n).toContain('-A TVM-POSTROUTING -s 172.17.0.0/16 ! -o tvm0 -j MASQUERADE');
    expect(n.some((l) => l.includes('10.1.0.0/24 ! -o br-a -j MASQUERADE'))).toBe(false);
    expect(n).toContain('-A TVM-DNAT ! -i tvm0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 172.17.0.2:80');
    expect(n).toContain('-A TVM-DNAT -d 127.0.0.1/32 ! -i tvm0 -p udp -m udp --dport 5353 -j DNAT --to-destination 172.17.0.2:53');
    expect(f.at(-2)).toBe('COMMIT');
    expect(n.at(-2)).toBe('COMMIT');
  });

  it('no networks: only the (flushed) chains', () => {
    const r = render([], []);
    expect(r.filter).toBe('*filter\n:TVM-FORWARD - [0:0]\n:TVM-ISOLATION - [0:0]\nCOMMIT\n');
  });
});
