/**
 * A VM container's NIC on its networks, Kata Containers' "tcfilter" way: the network manager
 * makes the container's namespace with a veth `eth0` on the bridge exactly as for a host
 * container (address, MAC, DNAT, DNS all keyed on it); here a tap joins it, and tc moves every
 * frame between the two (ingress on one, `mirred egress redirect` to the other, both ways).
 * The guest's virtio-net NIC, fed by the tap, takes eth0's MAC, address and gateway, so the
 * bridge, ARP and the published ports see the guest where they expect the container. eth0
 * keeps no address (its frames are redirected before the namespace's own stack could see
 * them anyway). All of it lives in the namespace and goes with it at teardown.
 */
import { run } from '../../network/exec.js';
import { EMBEDDED_DNS_ADDRESS } from '../../network/dns-netns.js';
import { TvmError } from '../../errors.js';

/** the tap's name in the container's namespace (each VM has a namespace of its own) */
export const GUEST_TAP = 'tap0';
const ENDPOINT_IF = 'eth0';

export interface GuestNic {
  tap: string;
  mac: string;
  /** address/prefix */
  address: string;
  /** the default route's gateway; absent on an internal network */
  gateway?: string;
}

/** The kernel command line's `tvm.net=ADDRESS/PREFIX,GATEWAY,MAC` (native/agent/guest.c). */
export function guestNetArg(n: GuestNic): string {
  return `tvm.net=${n.address},${n.gateway ?? ''},${n.mac}`;
}

/**
 * The guest's nameservers. The embedded DNS's 127.0.0.11 is a DNAT in the namespace's own
 * netfilter (network/dns-netns.ts) that the guest's packets never cross (they leave through
 * the tap and tc, and the guest's loopback is its own): the guest asks the network's server
 * where it listens, the gateway of the network its NIC is on, as itself. On an internal
 * network (no route, so no gateway known here) the address stays and names do not resolve.
 */
export function guestNameservers(nameservers: string[] | undefined, nic: GuestNic): string[] | undefined {
  return nameservers?.map((s) => (s === EMBEDDED_DNS_ADDRESS && nic.gateway ? nic.gateway : s));
}

interface IpAddr {
  address?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}
interface IpRoute {
  dst?: string;
  gateway?: string;
}

/**
 * Parses what `ip -j -batch` printed for `addr show` and `route show default`. (Not `-4`: it
 * leaves the MAC out; and not a `link show` first: iproute2 6.1's batch mode then prints the
 * next `addr show` as a link listing, without addresses.)
 */
export function parseEndpoint(out: string): Omit<GuestNic, 'tap'> {
  const lines = out.split('\n').filter((l) => l.startsWith('['));
  const bad = (why: string) => new TvmError('ERR_NETWORK_SETUP', `the VM's endpoint ${ENDPOINT_IF}: ${why}`, 500);
  if (lines.length < 2) throw bad(`unexpected output of ip: ${JSON.stringify(out.slice(0, 200))}`);
  const link = (JSON.parse(lines[0]!) as IpAddr[])[0];
  const mac = link?.address;
  const inet = link?.addr_info?.find((a) => a.family === 'inet');
  if (!mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw bad('no MAC address');
  if (!inet?.local || inet.prefixlen === undefined) throw bad(`no IPv4 address in ${lines[0]!.slice(0, 300)}`);
  const gateway = (JSON.parse(lines[1]!) as IpRoute[]).find((r) => r.dst === 'default')?.gateway;
  return { mac, address: `${inet.local}/${inet.prefixlen}`, ...(gateway && { gateway }) };
}

/**
 * Reads eth0's identity in the namespace at `netns`, makes the tap, hands eth0's address over
 * (flushed) and joins the two with tc. Two processes: one `ip -batch`, one `tc -batch`.
 */
export async function plumbGuestNic(netns: string): Promise<GuestNic> {
  const ns = `--net=${netns}`;
  const out = await run(
    'nsenter',
    [ns, 'ip', '-j', '-batch', '-'],
    [
      `addr show dev ${ENDPOINT_IF}`,
      'route show default',
      `tuntap add dev ${GUEST_TAP} mode tap`,
      `link set dev ${GUEST_TAP} up`,
      `addr flush dev ${ENDPOINT_IF}`,
    ].join('\n') + '\n',
  );
  const ep = parseEndpoint(out);
  const redirect = (from: string, to: string) => [
    `qdisc add dev ${from} ingress`,
    `filter add dev ${from} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${to}`,
  ];
  await run(
    'nsenter',
    [ns, 'tc', '-batch', '-'],
    [...redirect(ENDPOINT_IF, GUEST_TAP), ...redirect(GUEST_TAP, ENDPOINT_IF)].join('\n') + '\n',
  );
  return { tap: GUEST_TAP, ...ep };
}
