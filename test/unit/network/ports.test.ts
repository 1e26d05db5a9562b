import { describe, it, expect } from 'vitest';
import net from 'node:net';
import { allocatePorts, parseBindings, portsJson } from '../../../src/network/ports.js';

describe('published ports', () => {
  it("parses PortBindings and -P with Docker's errors", () => {
    expect(
      parseBindings({ '80/tcp': [{ HostIp: '', HostPort: '8080' }], '53/udp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, false, {}),
    ).toEqual([
      { proto: 'tcp', containerPort: 80, hostIp: '', hostPortLo: 8080, hostPortHi: 8080 },
      { proto: 'udp', containerPort: 53, hostIp: '127.0.0.1', hostPortLo: 0, hostPortHi: 0 },
    ]);
    expect(parseBindings({ '80/tcp': [{ HostPort: '9000-9010' }] }, true, { '80/tcp': {}, '443/tcp': {} })).toEqual([
      { proto: 'tcp', containerPort: 80, hostIp: '', hostPortLo: 9000, hostPortHi: 9010 },
      { proto: 'tcp', containerPort: 443, hostIp: '', hostPortLo: 0, hostPortHi: 0 },
    ]);
    expect(() => parseBindings({ '80/sctp': [] }, false, {})).toThrow('invalid proto: sctp');
    expect(() => parseBindings({ '0/tcp': [] }, false, {})).toThrow('invalid containerPort: 0');
    expect(() => parseBindings({ '80/tcp': [{ HostPort: '70000' }] }, false, {})).toThrow('invalid hostPort: 70000');
    expect(() => parseBindings({ '80/tcp': [{ HostIp: 'nope' }] }, false, {})).toThrow('invalid IP address: nope');
  });

  it("allocates: tvm's own bindings clash, a port another process holds is refused, ranges skip both", async () => {
    const held = net.createServer();
    await new Promise<void>((r) => held.listen({ host: '127.0.0.1', port: 0 }, r));
    const busy = (held.address() as net.AddressInfo).port;
    try {
      const taken = [{ proto: 'tcp' as const, containerPort: 80, hostIp: '', hostPort: busy + 1 }];
      await expect(
        allocatePorts([{ proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPortLo: busy + 1, hostPortHi: busy + 1 }], taken, 'c'),
      ).rejects.toThrow(`Bind for 127.0.0.1:${busy + 1} failed: port is already allocated`);
      await expect(
        allocatePorts([{ proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPortLo: busy, hostPortHi: busy }], [], 'c (abc)'),
      ).rejects.toThrow(
        `driver failed programming external connectivity on endpoint c (abc): Error starting userland proxy: listen tcp4 127.0.0.1:${busy}: bind: address already in use`,
      );
      const got = await allocatePorts(
        [{ proto: 'tcp', containerPort: 80, hostIp: '127.0.0.1', hostPortLo: busy, hostPortHi: busy + 5 }],
        taken,
        'c',
      );
      expect(got[0]!.hostPort).toBeGreaterThanOrEqual(busy + 2);
      const eph = await allocatePorts([{ proto: 'udp', containerPort: 53, hostIp: '', hostPortLo: 0, hostPortHi: 0 }], [], 'c');
      expect(eph[0]!.hostPort).toBeGreaterThan(1024);
    } finally {
      held.close();
    }
  });

  it('NetworkSettings.Ports lists exposed ports, published or not', () => {
    expect(portsJson({ '80/tcp': {}, '9000/udp': {} }, [{ proto: 'tcp', containerPort: 80, hostIp: '', hostPort: 8080 }])).toEqual({
      '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }],
      '9000/udp': null,
    });
  });
});
