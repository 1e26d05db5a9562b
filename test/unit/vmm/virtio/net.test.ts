import { describe, it, expect } from 'vitest';
import { runC, parsePairs } from '../../../fixtures/guests/cc.js';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import {
  NetDevice, parseMac, VIRTIO_ID_NET, VIRTIO_NET_CONFIG, VIRTIO_NET_HDR, VIRTIO_NET_F_MAC, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_GUEST_CSUM,
  VIRTIO_NET_F_MTU, VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_STATUS, VIRTIO_NET_F_CTRL_VQ, VIRTIO_NET_F_MQ, VIRTIO_NET_HDR_F_NEEDS_CSUM,
  VIRTIO_NET_HDR_GSO_NONE, NET_RX_QUEUE, NET_TX_QUEUE, type FramePort,
} from '../../../../src/vmm/devices/virtio/net.js';
import { bit, VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_DEVICE_ID, VIRTIO_CONFIG_S_NEEDS_RESET } from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { TUNSETIFF, IFF_TAP, IFF_NO_PI, IFREQ, IFNAMSIZ, O_NONBLOCK } from '../../../../src/kvm/tun.js';
import { SOCKADDR_UN, SOCK_NONBLOCK } from '../../../../src/kvm/socket.js';
import { parseEndpoint, guestNetArg } from '../../../../src/runtime/vm/guest-net.js';

const checks: [string, number][] = [
  ['sizeof(struct virtio_net_hdr_v1)', VIRTIO_NET_HDR.size],
  ...(['flags', 'gso_type', 'hdr_len', 'gso_size', 'csum_start', 'csum_offset', 'num_buffers'] as const)
    .map((f) => [`offsetof(struct virtio_net_hdr_v1, ${f})`, VIRTIO_NET_HDR[f]] as [string, number]),
  ...(['mac', 'status', 'max_virtqueue_pairs', 'mtu'] as const).map((f) => [`offsetof(struct virtio_net_config, ${f})`, VIRTIO_NET_CONFIG[f]] as [string, number]),
  ['offsetof(struct virtio_net_config, mtu) + 2', VIRTIO_NET_CONFIG.size],
  ['VIRTIO_NET_F_CSUM', VIRTIO_NET_F_CSUM], ['VIRTIO_NET_F_GUEST_CSUM', VIRTIO_NET_F_GUEST_CSUM], ['VIRTIO_NET_F_MTU', VIRTIO_NET_F_MTU],
  ['VIRTIO_NET_F_MAC', VIRTIO_NET_F_MAC], ['VIRTIO_NET_F_MRG_RXBUF', VIRTIO_NET_F_MRG_RXBUF], ['VIRTIO_NET_F_STATUS', VIRTIO_NET_F_STATUS],
  ['VIRTIO_NET_F_CTRL_VQ', VIRTIO_NET_F_CTRL_VQ], ['VIRTIO_NET_F_MQ', VIRTIO_NET_F_MQ],
  ['VIRTIO_NET_HDR_F_NEEDS_CSUM', VIRTIO_NET_HDR_F_NEEDS_CSUM], ['VIRTIO_NET_HDR_GSO_NONE', VIRTIO_NET_HDR_GSO_NONE],
  ['VIRTIO_ID_NET', VIRTIO_ID_NET],
  ['TUNSETIFF', TUNSETIFF], ['IFF_TAP', IFF_TAP], ['IFF_NO_PI', IFF_NO_PI], ['IFNAMSIZ', IFNAMSIZ], ['O_NONBLOCK', O_NONBLOCK],
  ['sizeof(struct ifreq)', IFREQ.size], ['offsetof(struct ifreq, ifr_name)', IFREQ.name], ['offsetof(struct ifreq, ifr_flags)', IFREQ.flags],
  ['sizeof(struct sockaddr_un)', SOCKADDR_UN.size], ['offsetof(struct sockaddr_un, sun_path)', SOCKADDR_UN.path],
  ['sizeof(((struct sockaddr_un*)0)->sun_path)', SOCKADDR_UN.pathMax], ['SOCK_NONBLOCK', SOCK_NONBLOCK],
];

describe('virtio-net, tun and sockaddr_un layouts match the kernel headers (gcc)', () => {
  const src = [
    '#include <stdio.h>', '#include <stddef.h>', '#include <fcntl.h>', '#include <sys/ioctl.h>', '#include <sys/socket.h>', '#include <sys/un.h>', '#include <net/if.h>',
    '#include <linux/if_tun.h>', '#include <linux/virtio_net.h>', '#include <linux/virtio_ids.h>',
    'int main(void){',
    ...checks.map(([expr], i) => `printf("c${i} %lu\\n", (unsigned long)(${expr}));`),
    'return 0;}',
  ].join('\n');
  const got = parsePairs(runC(src));
  it.each(checks.map(([expr, v], i) => [expr, v, i] as const))('%s = %i', (_expr, v, i) => {
    expect(got.get(`c${i}`)).toBe(v);
  });
});

/** A port in memory: what the device sent, frames waiting to be received, the watch. */
class MemPort implements FramePort {
  sent: Uint8Array[] = [];
  waiting: Uint8Array[] = [];
  onReadable: (() => void) | undefined;
  watches = 0;
  closed = false;
  send(frame: Uint8Array): boolean {
    this.sent.push(Uint8Array.from(frame));
    return true;
  }
  receive(buf: Uint8Array): number {
    const f = this.waiting.shift();
    if (!f) return -1;
    buf.set(f);
    return f.length;
  }
  watch(cb: (() => void) | undefined): void {
    if (cb) this.watches++;
    this.onReadable = cb;
  }
  close(): void {
    this.closed = true;
  }
  /** a frame arrives from the network and the port says so (as the tap's epoll would) */
  arrive(...frames: Uint8Array[]): void {
    this.waiting.push(...frames);
    this.onReadable?.();
  }
}

const MAC = '02:42:ac:11:00:05';
const frame = (n: number, fill: number) => {
  const f = new Uint8Array(n).fill(fill);
  f.set(parseMac(MAC), 0);
  return f;
};
const hdr = (flags = 0, gso = 0) => {
  const h = new Uint8Array(VIRTIO_NET_HDR.size);
  h[VIRTIO_NET_HDR.flags] = flags;
  h[VIRTIO_NET_HDR.gso_type] = gso;
  return h;
};
const WANT = bit(VIRTIO_F_VERSION_1) | bit(VIRTIO_NET_F_MAC) | bit(VIRTIO_RING_F_EVENT_IDX);

function bed() {
  const port = new MemPort();
  const devLog: string[] = [];
  const dev = new NetDevice({ port, mac: MAC, log: (l) => devLog.push(l) });
  const tb = virtioTestbed(dev);
  return { port, dev, devLog, ...tb };
}

describe('virtio-net device', () => {
  it('is a network device with the MAC in its config space and no offloads', () => {
    const { driver, dev } = bed();
    expect(driver.r32(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_NET);
    expect(dev.features).toBe(bit(VIRTIO_NET_F_MAC));
    expect([...driver.readConfig(VIRTIO_MMIO_CONFIG + VIRTIO_NET_CONFIG.mac - VIRTIO_MMIO_CONFIG, 6)]).toEqual([0x02, 0x42, 0xac, 0x11, 0x00, 0x05]);
    expect(driver.init(WANT | bit(VIRTIO_NET_F_CSUM) | bit(VIRTIO_NET_F_MRG_RXBUF), 2)).toBe(WANT);
  });

  it('sends each tx chain as one frame without its header, split across descriptors or not', () => {
    const { driver, port, dev, irq } = bed();
    driver.init(WANT, 2);
    const tx = driver.queues[NET_TX_QUEUE]!;
    const f1 = frame(60, 0x11);
    const f2 = frame(1514, 0x22);
    const a = driver.post(tx, [{ data: Uint8Array.from([...hdr(), ...f1]) }]);
    const b = driver.post(tx, [{ data: hdr() }, { data: f2.subarray(0, 100) }, { data: f2.subarray(100) }], { indirect: false });
    driver.notify(tx);
    expect(port.sent.map((x) => Buffer.from(x).toString('hex'))).toEqual([f1, f2].map((x) => Buffer.from(x).toString('hex')));
    expect(driver.takeUsed(tx)).toEqual([{ id: a.head, len: 0 }, { id: b.head, len: 0 }]);
    expect(irq.count).toBe(1);
    expect(dev.stats).toMatchObject({ txFrames: 2, txBytes: 60 + 1514, txDropped: 0 });
  });

  it('refuses tx chains that are no header and frame, or ask for an offload, and goes on', () => {
    const { driver, port, dev } = bed();
    driver.init(WANT, 2);
    const tx = driver.queues[NET_TX_QUEUE]!;
    driver.post(tx, [{ data: hdr() }]); // header only
    driver.post(tx, [{ data: Uint8Array.from([...hdr(), ...frame(3000, 1)]) }]); // beyond any MTU
    driver.post(tx, [{ data: Uint8Array.from([...hdr(VIRTIO_NET_HDR_F_NEEDS_CSUM), ...frame(60, 1)]) }]);
    driver.post(tx, [{ data: Uint8Array.from([...hdr(0, 1), ...frame(60, 1)]) }]); // GSO TCPv4
    driver.post(tx, [{ writable: 80 }]); // nothing to read
    const ok = frame(64, 0x33);
    driver.post(tx, [{ data: Uint8Array.from([...hdr(), ...ok]) }]);
    driver.notify(tx);
    expect(driver.takeUsed(tx)).toHaveLength(6);
    expect(port.sent).toHaveLength(1);
    expect(Buffer.from(port.sent[0]!).equals(Buffer.from(ok))).toBe(true);
    expect(dev.stats.txDropped).toBe(5);
  });

  it('delivers received frames into posted buffers with a 12-byte header (num_buffers 1)', () => {
    const { driver, port, dev, irq } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    const bufs = [driver.post(rx, [{ writable: 1526 }]), driver.post(rx, [{ writable: 12 }, { writable: 1514 }])];
    driver.notify(rx);
    const f1 = frame(60, 0x44);
    const f2 = frame(1514, 0x55);
    const before = irq.count;
    port.arrive(f1, f2);
    expect(driver.takeUsed(rx)).toEqual([{ id: bufs[0]!.head, len: 12 + 60 }, { id: bufs[1]!.head, len: 12 + 1514 }]);
    expect(irq.count).toBe(before + 1);
    const h = driver.bytes(bufs[0]!.addrs[0]!, 12);
    expect([...h]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(Buffer.from(driver.bytes(bufs[0]!.addrs[0]! + 12, 60)).equals(Buffer.from(f1))).toBe(true);
    expect(Buffer.from(driver.bytes(bufs[1]!.addrs[1]!, 1514)).equals(Buffer.from(f2))).toBe(true);
    expect(dev.stats).toMatchObject({ rxFrames: 2, rxBytes: 1574, rxDropped: 0 });
  });

  it('leaves frames in the port while no buffer is posted and resumes at the rx kick', () => {
    const { driver, port } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    port.arrive(frame(60, 1), frame(60, 2));
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

  it('drops a frame too big for the posted chain and refuses rx chains with readable buffers', () => {
    const { driver, port, dev } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    const small = driver.post(rx, [{ writable: 100 }]);
    const readable = driver.post(rx, [{ data: new Uint8Array(12) }, { writable: 1526 }]);
    const good = driver.post(rx, [{ writable: 1526 }]);
    driver.notify(rx);
    port.arrive(frame(200, 1), frame(60, 2), frame(60, 3));
    expect(driver.takeUsed(rx)).toEqual([{ id: small.head, len: 0 }, { id: readable.head, len: 0 }, { id: good.head, len: 72 }]);
    expect(dev.stats.rxDropped).toBe(2);
    expect(dev.stats.rxFrames).toBe(1);
    expect(Buffer.from(driver.bytes(good.addrs[0]! + 12, 60)).equals(Buffer.from(frame(60, 3)))).toBe(true);
  });

  it('a broken rx ring found on a port wake-up asks for a reset; a device reset stops the watch', () => {
    const { driver, port, transport } = bed();
    driver.init(WANT, 2);
    const rx = driver.queues[NET_RX_QUEUE]!;
    // avail.idx far beyond the queue's size
    new DataView(driver.mem.buffer.buffer).setUint16(rx.avail + 2, 5000, true);
    port.arrive(frame(60, 1));
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

describe('the VM endpoint in its namespace (guest-net.ts)', () => {
  it('reads MAC, address and gateway from ip -j output and passes them on the command line', () => {
    const out = [
      '[{"ifindex":3,"ifname":"eth0","address":"02:42:ac:12:00:02","addr_info":[{"family":"inet6","local":"fe80::1","prefixlen":64},{"family":"inet","local":"172.18.0.2","prefixlen":16}]}]',
      '[{"dst":"default","gateway":"172.18.0.1","dev":"eth0"}]',
    ].join('\n');
    const ep = parseEndpoint(out);
    expect(ep).toEqual({ mac: '02:42:ac:12:00:02', address: '172.18.0.2/16', gateway: '172.18.0.1' });
    expect(guestNetArg({ tap: 'tap0', ...ep })).toBe('tvm.net=172.18.0.2/16,172.18.0.1,02:42:ac:12:00:02');
    const internal = parseEndpoint(out.split('\n')[0]! + '\n[]');
    expect(guestNetArg({ tap: 'tap0', ...internal })).toBe('tvm.net=172.18.0.2/16,,02:42:ac:12:00:02');
    expect(() => parseEndpoint('[]\n[]')).toThrow(/no MAC/);
    expect(() => parseEndpoint('[{"address":"02:42:ac:12:00:02","addr_info":[]}]\n[]')).toThrow(/no IPv4 address/);
    expect(() => parseEndpoint('oops')).toThrow(/unexpected output/);
  });
});
