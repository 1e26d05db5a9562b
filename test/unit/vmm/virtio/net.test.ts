import { describe, it, expect } from 'vitest';
import { runC, parsePairs } from '../../../fixtures/guests/cc.js';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import {
  NetDevice,
  parseMac,
  VIRTIO_ID_NET,
  VIRTIO_NET_CONFIG,
  VIRTIO_NET_HDR,
  VIRTIO_NET_F_MAC,
  VIRTIO_NET_F_CSUM,
  VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MTU,
  VIRTIO_NET_F_MRG_RXBUF,
  VIRTIO_NET_F_STATUS,
  VIRTIO_NET_F_CTRL_VQ,
  VIRTIO_NET_F_MQ,
  VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE,
  NET_RX_QUEUE,
  NET_TX_QUEUE,
  NET_MAX_FRAME,
  VIRTIO_NET_F_GUEST_TSO4,
  VIRTIO_NET_F_GUEST_TSO6,
  VIRTIO_NET_F_HOST_TSO4,
  VIRTIO_NET_F_HOST_TSO6,
  VIRTIO_NET_HDR_F_DATA_VALID,
  VIRTIO_NET_HDR_GSO_TCPV4,
  VIRTIO_NET_HDR_GSO_TCPV6,
  type FramePort,
  type RxOffloads,
} from '../../../../src/vmm/devices/virtio/net.js';
import { bit, VIRTIO_MMIO_DEVICE_ID, VIRTIO_CONFIG_S_NEEDS_RESET } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import {
  TUNSETIFF,
  IFF_TAP,
  IFF_NO_PI,
  IFREQ,
  IFNAMSIZ,
  O_NONBLOCK,
  IFF_VNET_HDR,
  TUNSETOFFLOAD,
  TUNSETVNETHDRSZ,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
} from '../../../../src/kvm/tun.js';
import { SOCKADDR_UN, SOCK_NONBLOCK } from '../../../../src/kvm/socket.js';
import { parseEndpoints, guestNetArg, guestNameservers, nicSetting } from '../../../../src/runtime/vm/guest-net.js';

const checks: [string, number][] = [
  ['sizeof(struct virtio_net_hdr_v1)', VIRTIO_NET_HDR.size],
  ...(['flags', 'gso_type', 'hdr_len', 'gso_size', 'csum_start', 'csum_offset', 'num_buffers'] as const).map(
    (f) => [`offsetof(struct virtio_net_hdr_v1, ${f})`, VIRTIO_NET_HDR[f]] as [string, number],
  ),
  ...(['mac', 'status', 'max_virtqueue_pairs', 'mtu'] as const).map(
    (f) => [`offsetof(struct virtio_net_config, ${f})`, VIRTIO_NET_CONFIG[f]] as [string, number],
  ),
  ['offsetof(struct virtio_net_config, mtu) + 2', VIRTIO_NET_CONFIG.size],
  ['VIRTIO_NET_F_CSUM', VIRTIO_NET_F_CSUM],
  ['VIRTIO_NET_F_GUEST_CSUM', VIRTIO_NET_F_GUEST_CSUM],
  ['VIRTIO_NET_F_MTU', VIRTIO_NET_F_MTU],
  ['VIRTIO_NET_F_MAC', VIRTIO_NET_F_MAC],
  ['VIRTIO_NET_F_MRG_RXBUF', VIRTIO_NET_F_MRG_RXBUF],
  ['VIRTIO_NET_F_STATUS', VIRTIO_NET_F_STATUS],
  ['VIRTIO_NET_F_CTRL_VQ', VIRTIO_NET_F_CTRL_VQ],
  ['VIRTIO_NET_F_MQ', VIRTIO_NET_F_MQ],
  ['VIRTIO_NET_HDR_F_NEEDS_CSUM', VIRTIO_NET_HDR_F_NEEDS_CSUM],
  ['VIRTIO_NET_HDR_GSO_NONE', VIRTIO_NET_HDR_GSO_NONE],
  ['VIRTIO_ID_NET', VIRTIO_ID_NET],
  ['TUNSETIFF', TUNSETIFF],
  ['TUNSETOFFLOAD', TUNSETOFFLOAD],
  ['TUNSETVNETHDRSZ', TUNSETVNETHDRSZ],
  ['IFF_VNET_HDR', IFF_VNET_HDR],
  ['TUN_F_CSUM', TUN_F_CSUM],
  ['TUN_F_TSO4', TUN_F_TSO4],
  ['TUN_F_TSO6', TUN_F_TSO6],
  ['VIRTIO_NET_F_GUEST_TSO4', VIRTIO_NET_F_GUEST_TSO4],
  ['VIRTIO_NET_F_GUEST_TSO6', VIRTIO_NET_F_GUEST_TSO6],
  ['VIRTIO_NET_F_HOST_TSO4', VIRTIO_NET_F_HOST_TSO4],
  ['VIRTIO_NET_F_HOST_TSO6', VIRTIO_NET_F_HOST_TSO6],
  ['VIRTIO_NET_HDR_F_DATA_VALID', VIRTIO_NET_HDR_F_DATA_VALID],
  ['VIRTIO_NET_HDR_GSO_TCPV4', VIRTIO_NET_HDR_GSO_TCPV4],
  ['VIRTIO_NET_HDR_GSO_TCPV6', VIRTIO_NET_HDR_GSO_TCPV6],
  ['IFF_TAP', IFF_TAP],
  ['IFF_NO_PI', IFF_NO_PI],
  ['IFNAMSIZ', IFNAMSIZ],
  ['O_NONBLOCK', O_NONBLOCK],
  ['sizeof(struct ifreq)', IFREQ.size],
  ['offsetof(struct ifreq, ifr_name)', IFREQ.name],
  ['offsetof(struct ifreq, ifr_flags)', IFREQ.flags],
  ['sizeof(struct sockaddr_un)', SOCKADDR_UN.size],
  ['offsetof(struct sockaddr_un, sun_path)', SOCKADDR_UN.path],
  ['sizeof(((struct sockaddr_un*)0)->sun_path)', SOCKADDR_UN.pathMax],
  ['SOCK_NONBLOCK', SOCK_NONBLOCK],
];

describe('virtio-net, tun and sockaddr_un layouts match the kernel headers (gcc)', () => {
  const src = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <fcntl.h>',
    '#include <sys/ioctl.h>',
    '#include <sys/socket.h>',
    '#include <sys/un.h>',
    '#include <net/if.h>',
    '#include <linux/if_tun.h>',
    '#include <linux/virtio_net.h>',
    '#include <linux/virtio_ids.h>',
    'int main(void){',
    ...checks.map(([expr], i) => `printf("c${i} %lu\\n", (unsigned long)(${expr}));`),
    'return 0;}',
  ].join('\n');
  const got = parsePairs(runC(src));
  it.each(checks.map(([expr, v], i) => [expr, v, i] as const))('%s = %i', (_expr, v, i) => {
    expect(got.get(`c${i}`)).toBe(v);
  });
});

/** A port in memory: what the device sent, packets waiting to be received, the watch. */
class MemPort implements FramePort {
  sent: Uint8Array[] = [];
  waiting: Uint8Array[] = [];
  onReadable: (() => void) | undefined;
  offloads: RxOffloads[] = [];
  closed = false;
  send(packet: Uint8Array): boolean {
    this.sent.push(Uint8Array.from(packet));
    return true;
  }
  receive(buf: Uint8Array): number {
    const f = this.waiting.shift();
    if (!f) return -1;
    buf.set(f);
    return f.length;
  }
  setOffloads(o: RxOffloads): void {
    this.offloads.push(o);
  }
  watch(cb: (() => void) | undefined): void {
    this.onReadable = cb;
  }
  close(): void {
    this.closed = true;
  }
  /** packets arrive from the network and the port says so (as the tap's epoll would) */
  arrive(...packets: Uint8Array[]): void {
    this.waiting.push(...packets);
    this.onReadable?.();
  }
}

const MAC = '02:42:ac:11:00:05';
const frame = (n: number, fill: number) => {
  const f = new Uint8Array(n).fill(fill);
  f.set(parseMac(MAC), 0);
  return f;
};
/** a virtio_net_hdr_v1; num_buffers as the tap leaves it (not written: whatever was there) */
const hdr = (flags = 0, gso = 0, numBuffers = 0xabcd) => {
  const h = new Uint8Array(VIRTIO_NET_HDR.size);
  h[VIRTIO_NET_HDR.flags] = flags;
  h[VIRTIO_NET_HDR.gso_type] = gso;
  new DataView(h.buffer).setUint16(VIRTIO_NET_HDR.num_buffers, numBuffers, true);
  return h;
};
const packet = (h: Uint8Array, f: Uint8Array) => Uint8Array.from([...h, ...f]);
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const WANT = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_RING_F_EVENT_IDX);
const OFFLOADS =
  bit(VIRTIO_NET_F_CSUM) |
  bit(VIRTIO_NET_F_GUEST_CSUM) |
  bit(VIRTIO_NET_F_GUEST_TSO4) |
  bit(VIRTIO_NET_F_GUEST_TSO6) |
  bit(VIRTIO_NET_F_HOST_TSO4) |
  bit(VIRTIO_NET_F_HOST_TSO6);

function bed() {
  const port = new MemPort();
  const devLog: string[] = [];
  const dev = new NetDevice({ port, mac: MAC, log: (l) => devLog.push(l) });
  const tb = virtioTestbed(dev, 32 * 1024 * 1024);
  return { port, dev, devLog, ...tb };
}

describe('virtio-net device', () => {
  it('is a network device with the MAC in its config space, the checksum/TSO offloads and no MRG_RXBUF', () => {
    const { driver, dev, port } = bed();
    expect(driver.r32(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_NET);
    expect(dev.features).toBe(bit(VIRTIO_NET_F_MAC) | OFFLOADS);
    expect([...driver.readConfig(VIRTIO_NET_CONFIG.mac, 6)]).toEqual([0x02, 0x42, 0xac, 0x11, 0x00, 0x05]);
    expect(driver.init(WANT | bit(VIRTIO_NET_F_MRG_RXBUF), 2)).toBe(WANT);
    // the tap hands over nothing the driver did not accept
    expect(port.offloads).toEqual([{ csum: false, tso4: false, tso6: false }]);
  });

  it('tells the port which receive offloads the driver accepted (TSO only with GUEST_CSUM)', () => {
    const a = bed();
    a.driver.init(WANT | bit(VIRTIO_NET_F_GUEST_CSUM) | bit(VIRTIO_NET_F_GUEST_TSO4), 2);
    expect(a.port.offloads).toEqual([{ csum: true, tso4: true, tso6: false }]);
    const b = bed();
    b.driver.init(WANT | OFFLOADS, 2);
    expect(b.port.offloads).toEqual([{ csum: true, tso4: true, tso6: true }]);
  });

  it('sends each tx chain as one packet, split across descriptors or not', () => {
    const { driver, port, dev, irq } = bed();
    driver.init(WANT, 2);
    const tx = driver.queues[NET_TX_QUEUE]!;
    const f1 = frame(60, 0x11);
    const f2 = frame(1514, 0x22);
    const a = driver.post(tx, [{ data: packet(hdr(0, 0, 0), f1) }]);
    const b = driver.post(tx, [{ data: hdr(0, 0, 0) }, { data: f2.subarray(0, 100) }, { data: f2.subarray(100) }]);
    driver.notify(tx);
    expect(port.sent.map(hex)).toEqual([packet(hdr(0, 0, 0), f1), packet(hdr(0, 0, 0), f2)].map(hex));
    expect(driver.takeUsed(tx)).toEqual([
      { id: a.head, len: 0 },
      { id: b.head, len: 0 },
    ]);
    expect(irq.count).toBe(1);
    expect(dev.stats).toMatchObject({ txFrames: 2, txBytes: 60 + 1514, txDropped: 0 });
  });

  it('passes TSO segments and partial checksums on when they were negotiated', () => {
    const { driver, port, dev } = bed();
    driver.init(WANT | OFFLOADS, 2);
    const tx = driver.queues[NET_TX_QUEUE]!;
    const big = packet(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 0), frame(65000, 0x44));
    driver.post(tx, [{ data: big.subarray(0, 12) }, { data: big.subarray(12, 40000) }, { data: big.subarray(40000) }]);
    driver.post(tx, [{ data: packet(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV6, 0), frame(3000, 0x45)) }]);
    driver.notify(tx);
    expect(port.sent.map((x) => x.length)).toEqual([big.length, 3012]);
    expect(hex(port.sent[0]!)).toBe(hex(big));
    expect(dev.stats.txDropped).toBe(0);
  });

  it('refuses tx chains that are no header and frame, or ask for an offload not negotiated, and goes on', () => {
    const { driver, port, dev } = bed();
    driver.init(WANT, 2);
    const tx = driver.queues[NET_TX_QUEUE]!;
    driver.post(tx, [{ data: hdr() }]); // header only
    driver.post(tx, [{ data: packet(hdr(), frame(NET_MAX_FRAME + 1, 1)) }]); // beyond any segment
    driver.post(tx, [{ data: packet(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM), frame(60, 1)) }]);
    driver.post(tx, [{ data: packet(hdr(0, VIRTIO_NET_HDR_GSO_TCPV4), frame(60, 1)) }]);
    driver.post(tx, [{ data: packet(hdr(0, VIRTIO_NET_HDR_GSO_TCPV6), frame(60, 1)) }]);
    driver.post(tx, [{ data: packet(hdr(0x80), frame(60, 1)) }]); // unknown flag
    driver.post(tx, [{ data: packet(hdr(0, 3), frame(60, 1)) }]); // UDP (UFO)
    driver.post(tx, [{ writable: 80 }]); // nothing to read
    const ok = packet(hdr(0, 0, 0), frame(64, 0x33));
    driver.post(tx, [{ data: ok }]);
    driver.notify(tx);
    expect(driver.takeUsed(tx)).toHaveLength(9);
    expect(port.sent.map(hex)).toEqual([hex(ok)]);
    expect(dev.stats.txDropped).toBe(8);
  });

  it('delivers received packets into posted buffers, header kept, num_buffers 1', () => {
    const { driver, port, dev, irq } = bed();
    driver.init(WANT | OFFLOADS, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    const bufs = [
      driver.post(rx, [{ writable: 1526 }]),
      driver.post(rx, [{ writable: 12 }, { writable: 1514 }]),
      driver.post(rx, [{ writable: 12 }, ...Array.from({ length: 17 }, () => ({ writable: 4096 }))]),
    ];
    driver.notify(rx);
    const f1 = frame(60, 0x44);
    const f2 = frame(1514, 0x55);
    const f3 = frame(60000, 0x66);
    const before = irq.count;
    port.arrive(
      packet(hdr(VIRTIO_NET_HDR_F_DATA_VALID), f1),
      packet(hdr(), f2),
      packet(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4), f3),
    );
    expect(driver.takeUsed(rx)).toEqual([
      { id: bufs[0]!.head, len: 12 + 60 },
      { id: bufs[1]!.head, len: 12 + 1514 },
      { id: bufs[2]!.head, len: 12 + 60000 },
    ]);
    expect(irq.count).toBe(before + 1);
    expect(hex(driver.bytes(bufs[0]!.addrs[0]!, 12))).toBe(hex(hdr(VIRTIO_NET_HDR_F_DATA_VALID, 0, 1)));
    expect(hex(driver.bytes(bufs[0]!.addrs[0]! + 12, 60))).toBe(hex(f1));
    expect(hex(driver.bytes(bufs[1]!.addrs[1]!, 1514))).toBe(hex(f2));
    expect(hex(driver.bytes(bufs[2]!.addrs[0]!, 12))).toBe(hex(hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4, 1)));
    expect(hex(driver.bytes(bufs[2]!.addrs[1]!, 4096))).toBe(hex(f3.subarray(0, 4096)));
    expect(dev.stats).toMatchObject({ rxFrames: 3, rxBytes: 60 + 1514 + 60000, rxDropped: 0 });
  });

  it('leaves packets in the port while no buffer is posted and resumes at the rx kick', () => {
    const { driver, port } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    port.arrive(packet(hdr(), frame(60, 1)), packet(hdr(), frame(60, 2)));
    // nowhere to put them: they wait, and the port is no longer watched
    expect(port.waiting).toHaveLength(2);
    expect(port.onReadable).toBeUndefined();
    const a = driver.post(rx, [{ writable: 1526 }]);
    driver.notify(rx);
    expect(driver.takeUsed(rx)).toEqual([{ id: a.head, len: 72 }]);
    expect(port.waiting).toHaveLength(1);
    expect(port.onReadable).toBeUndefined();
    driver.post(rx, [{ writable: 1526 }]);
    driver.post(rx, [{ writable: 1526 }]);
    driver.notify(rx);
    expect(driver.takeUsed(rx)).toHaveLength(1);
    expect(port.waiting).toHaveLength(0);
    expect(port.onReadable).toBeDefined();
  });

  it('drops a packet too big for the posted chain and refuses rx chains with readable buffers', () => {
    const { driver, port, dev } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    const small = driver.post(rx, [{ writable: 100 }]);
    const readable = driver.post(rx, [{ data: new Uint8Array(12) }, { writable: 1526 }]);
    const good = driver.post(rx, [{ writable: 1526 }]);
    driver.notify(rx);
    port.arrive(packet(hdr(), frame(200, 1)), packet(hdr(), frame(60, 2)), packet(hdr(), frame(60, 3)), hdr());
    expect(driver.takeUsed(rx)).toEqual([
      { id: small.head, len: 0 },
      { id: readable.head, len: 0 },
      { id: good.head, len: 72 },
    ]);
    expect(dev.stats.rxDropped).toBe(2);
    expect(dev.stats.rxFrames).toBe(1);
    expect(hex(driver.bytes(good.addrs[0]! + 12, 60))).toBe(hex(frame(60, 3)));
  });

  it('a broken rx ring found on a port wake-up asks for a reset; a device reset stops the watch', () => {
    const { driver, port, transport } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    // avail.idx far beyond the queue's size
    new DataView(driver.mem.buffer.buffer).setUint16(rx.avail + 2, 5000, true);
    port.arrive(packet(hdr(), frame(60, 1)));
    expect(driver.status() & VIRTIO_CONFIG_S_NEEDS_RESET).toBeTruthy();
    expect(port.onReadable).toBeUndefined();
    transport.write(0x070, Uint8Array.of(0, 0, 0, 0));
    expect(port.onReadable).toBeUndefined();
  });

  it('close() resets and closes the port; bad MACs are refused', () => {
    const { port, dev, driver } = bed();
    driver.init(WANT, 2);
    expect(port.onReadable).toBeDefined();
    dev.close();
    expect(port.onReadable).toBeUndefined();
    expect(port.closed).toBe(true);
    for (const m of ['', '02:42:ac:11:00', '02-42-ac-11-00-05', 'zz:42:ac:11:00:05']) expect(() => parseMac(m)).toThrow(/invalid MAC/);
  });
});

describe('the VM endpoints in its namespace (guest-net.ts)', () => {
  const eth0 =
    '{"ifindex":3,"ifname":"eth0","address":"02:42:ac:12:00:02","addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64},{"family":"inet","local":"172.18.0.2","prefixlen":16}]}';
  const eth1 =
    '{"ifindex":5,"ifname":"eth1","address":"02:42:0a:01:00:05","addr_info":[{"family":"inet","local":"10.1.0.5","prefixlen":24}]}';
  const lo = '{"ifindex":1,"ifname":"lo","address":"00:00:00:00:00:00","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]}';
  const tap = '{"ifindex":7,"ifname":"tap0","address":"5a:11:22:33:44:55","addr_info":[]}';

  it('reads every endpoint: MAC, address, the gateway on the one the default route leaves by; eth0 on the command line', () => {
    const out = [`[${lo},${eth1},${eth0},${tap}]`, '[{"dst":"default","gateway":"172.18.0.1","dev":"eth0"}]'].join('\n');
    const eps = parseEndpoints(out);
    expect(eps).toEqual([
      { ifname: 'eth0', mac: '02:42:ac:12:00:02', address: '172.18.0.2/16', gateway: '172.18.0.1' },
      { ifname: 'eth1', mac: '02:42:0a:01:00:05', address: '10.1.0.5/24' },
    ]);
    expect(guestNetArg(eps[0]!)).toBe('tvm.net=172.18.0.2/16,172.18.0.1,02:42:ac:12:00:02');
    // the agent's net-up takes the same form (native/agent/guest-net.c)
    expect(nicSetting(eps[1]!)).toBe('10.1.0.5/24,,02:42:0a:01:00:05');
    // eth0 internal, eth1 routed: the gateway goes with eth1
    const routedSecond = parseEndpoints([`[${eth0},${eth1}]`, '[{"dst":"default","gateway":"10.1.0.1","dev":"eth1"}]'].join('\n'));
    expect(routedSecond.map((e) => e.gateway)).toEqual([undefined, '10.1.0.1']);
    expect(guestNetArg(parseEndpoints(`[${eth0}]\n[]`)[0]!)).toBe('tvm.net=172.18.0.2/16,,02:42:ac:12:00:02');
  });

  it('refuses endpoints it cannot pass on', () => {
    expect(() => parseEndpoints('[{"ifname":"eth0","addr_info":[]}]\n[]')).toThrow(/eth0 has no MAC/);
    expect(() => parseEndpoints('[{"ifname":"eth0","address":"02:42:ac:12:00:02","addr_info":[]}]\n[]')).toThrow(
      /eth0 has no IPv4 address/,
    );
    expect(() =>
      parseEndpoints(
        '[{"ifname":"eth1000","address":"02:42:ac:12:00:02","addr_info":[{"family":"inet","local":"10.0.0.2","prefixlen":8}]}]\n[]',
      ),
    ).toThrow(/not an ethN name/);
    expect(() => parseEndpoints('oops')).toThrow(/unexpected output/);
    expect(parseEndpoints(`[${lo},${tap}]\n[]`)).toEqual([]);
  });

  it("points the guest at the network's DNS server, not at the namespace's 127.0.0.11", () => {
    expect(guestNameservers(['127.0.0.11'], '172.18.0.1')).toEqual(['172.18.0.1']);
    expect(guestNameservers(['10.0.0.53', '127.0.0.11'], '172.18.0.1')).toEqual(['10.0.0.53', '172.18.0.1']);
    expect(guestNameservers(undefined, '172.18.0.1')).toBeUndefined();
    // no embedded server known (the default bridge): the host's nameservers pass as they are
    expect(guestNameservers(['127.0.0.11'], undefined)).toEqual(['127.0.0.11']);
  });
});
