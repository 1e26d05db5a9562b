/**
 * A VM container's NIC on its networks, Kata Containers' "tcfilter" way: the network manager
 * makes the container's namespace with a veth `eth0` on the bridge exactly as for a host
 * container (address, MAC, DNAT, DNS all keyed on it); here a tap joins it, and tc moves every
 * frame between the two (ingress on one, `mirred egress redirect` to the other, both ways).
 * The guest's virtio-net NIC, fed by the tap, takes eth0's MAC, address and gateway, so the
 * bridge, ARP and the published ports see the guest where they expect the container. eth0
 * keeps no address (its frames are redirected before the namespace's own stack could see
 * them anyway). All of it lives in the namespace and goes with it at teardown.
 *
 * Further networks (`docker network connect`, or a second network at start) get no device of
 * their own: virtio-mmio has no hot-plug, and a spare NIC per VM would cost every boot. The
 * guest makes ethN as a macvlan on its eth0 with ethN's MAC (native/agent/guest-net.c), so
 * its frames leave through the same tap; here tc sorts the tap's frames by source MAC onto
 * each network's endpoint (one filter per network, tried before eth0's catch-all), and every
 * endpoint's frames go back through the tap, where the guest's macvlans take theirs by MAC.
 */
import { run } from '../../network/exec.js';
import { EMBEDDED_DNS_ADDRESS } from '../../network/dns-netns.js';
import { TvmError } from '../../errors.js';

/** the tap's name in the container's namespace (each VM has a namespace of its own) */
export const GUEST_TAP = 'tap0';
const FIRST_IF = 'eth0';
/** tc preference of the tap's catch-all filter (to eth0): after every per-MAC one */
const CATCH_ALL_PREF = 1000;

export interface GuestNic {
  /** the endpoint's name in the container's namespace, and the guest interface's (eth0, eth1, ...) */
  ifname: string;
  tap: string;
  mac: string;
  /** address/prefix */
  address: string;
  /** the default route's gateway; absent on an internal network and on a second network */
  gateway?: string;
}

/** ADDRESS/PREFIX,GATEWAY,MAC: the kernel command line's `tvm.net=` and the agent's `net-up` (native/agent/guest-net.c) */
export function nicSetting(n: Omit<GuestNic, 'ifname' | 'tap'>): string {
  return `${n.address},${n.gateway ?? ''},${n.mac}`;
}

/** The kernel command line's `tvm.net=` for eth0. */
export function guestNetArg(n: Omit<GuestNic, 'ifname' | 'tap'>): string {
  return `tvm.net=${nicSetting(n)}`;
}

/**
 * The guest's nameservers. The embedded DNS's 127.0.0.11 is a DNAT in the namespace's own
 * netfilter (network/dns-netns.ts) that the guest's packets never cross (they leave through
 * the tap and tc, and the guest's loopback is its own): the guest asks the network's server
 * where it listens, `dnsServer` (the network's gateway address, on the guest's own subnet, so
 * an internal network without a route reaches it too).
 */
export function guestNameservers(nameservers: string[] | undefined, dnsServer: string | undefined): string[] | undefined {
  return nameservers?.map((s) => (s === EMBEDDED_DNS_ADDRESS && dnsServer ? dnsServer : s));
}

interface IpAddr {
  ifname?: string;
  address?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}
interface IpRoute {
  dst?: string;
  gateway?: string;
  dev?: string;
}

/** 0 for eth0, 1 for eth1, ...: the tc preference of ethN's filter on the tap is 10 + N */
function ifIndex(ifname: string): number {
  const m = /^eth(0|[1-9]\d{0,2})$/.exec(ifname);
  if (!m) throw new TvmError('ERR_NETWORK_SETUP', `the VM's endpoint ${JSON.stringify(ifname)}: not an ethN name`, 500);
  return Number(m[1]);
}

/**
 * Parses what `ip -j -batch` printed for `addr show` and `route show default`: every ethN
 * endpoint with its MAC and IPv4 address, the default route's gateway on the one it leaves by.
 * (Not `-4`: it leaves the MAC out; and not a `link show` first: iproute2 6.1's batch mode then
 * prints the next `addr show` as a link listing, without addresses.)
 */
export function parseEndpoints(out: string): Omit<GuestNic, 'tap'>[] {
  const lines = out.split('\n').filter((l) => l.startsWith('['));
  const bad = (why: string) => new TvmError('ERR_NETWORK_SETUP', `the VM's endpoints: ${why}`, 500);
  if (lines.length < 2) throw bad(`unexpected output of ip: ${JSON.stringify(out.slice(0, 200))}`);
  const routes = JSON.parse(lines[1]!) as IpRoute[];
  const nics: Omit<GuestNic, 'tap'>[] = [];
  for (const link of JSON.parse(lines[0]!) as IpAddr[]) {
    const ifname = link.ifname;
    if (!ifname || !/^eth\d+$/.test(ifname)) continue;
    ifIndex(ifname); // a name the guest could not take is refused here, not in the guest
    const mac = link.address;
    const inet = link.addr_info?.find((a) => a.family === 'inet');
    if (!mac || !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(mac)) throw bad(`${ifname} has no MAC address`);
    if (!inet?.local || inet.prefixlen === undefined) throw bad(`${ifname} has no IPv4 address`);
    const gateway = routes.find((r) => r.dst === 'default' && r.dev === ifname)?.gateway;
    nics.push({ ifname, mac, address: `${inet.local}/${inet.prefixlen}`, ...(gateway && { gateway }) });
  }
  return nics.sort((a, b) => ifIndex(a.ifname) - ifIndex(b.ifname));
}

/** tc commands that join endpoint `n` and the tap, both ways (replacing a stale filter of an earlier endpoint of that name) */
function joinCommands(n: { ifname: string; mac: string }): string[] {
  const toTap = [
    `qdisc add dev ${n.ifname} ingress`,
    `filter add dev ${n.ifname} parent ffff: protocol all u32 match u8 0 0 action mirred egress redirect dev ${GUEST_TAP}`,
  ];
  const fromTap =
    n.ifname === FIRST_IF
      ? `filter add dev ${GUEST_TAP} parent ffff: pref ${CATCH_ALL_PREF} protocol all u32 match u8 0 0 action mirred egress redirect dev ${n.ifname}`
      : `filter add dev ${GUEST_TAP} parent ffff: pref ${10 + ifIndex(n.ifname)} protocol all u32 match ether src ${n.mac} action mirred egress redirect dev ${n.ifname}`;
  return [...toTap, fromTap];
}

/** the tap's filter to endpoint `ifname` (its redirect names an interface that goes with the endpoint) */
function tapFilterPref(ifname: string): number {
  return ifname === FIRST_IF ? CATCH_ALL_PREF : 10 + ifIndex(ifname);
}

/**
 * At start: reads every endpoint's identity in the namespace at `netns`, makes the tap, hands
 * the endpoints' addresses over (flushed) and joins each to the tap with tc. Two or three
 * processes: `ip -batch`, another for further endpoints' addresses, `tc -batch`. eth0 is the
 * VM's NIC (configured by the kernel command line); the others are for the agent's `net-up`.
 */
export async function plumbGuestNics(netns: string): Promise<GuestNic[]> {
  const ns = `--net=${netns}`;
  const out = await run(
    'nsenter',
    [ns, 'ip', '-j', '-batch', '-'],
    [
      'addr show',
      'route show default',
      `tuntap add dev ${GUEST_TAP} mode tap`,
      `link set dev ${GUEST_TAP} up`,
      `addr flush dev ${FIRST_IF}`,
    ].join('\n') + '\n',
  );
  const eps = parseEndpoints(out);
  if (eps[0]?.ifname !== FIRST_IF) throw new TvmError('ERR_NETWORK_SETUP', `the VM's namespace has no ${FIRST_IF}`, 500);
  const more = eps.slice(1);
  if (more.length > 0) await run('nsenter', [ns, 'ip', '-batch', '-'], more.map((e) => `addr flush dev ${e.ifname}`).join('\n') + '\n');
  await run('nsenter', [ns, 'tc', '-batch', '-'], [`qdisc add dev ${GUEST_TAP} ingress`, ...eps.flatMap(joinCommands)].join('\n') + '\n');
  return eps.map((e) => ({ ...e, tap: GUEST_TAP }));
}

/**
 * `docker network connect` of a running VM: the network manager has made endpoint `ifname`
 * in the namespace; its identity goes to the guest, its address away, and tc joins it to the tap.
 */
export async function plumbGuestNic(netns: string, ifname: string): Promise<GuestNic> {
  const ns = `--net=${netns}`;
  const eps = parseEndpoints(await run('nsenter', [ns, 'ip', '-j', '-batch', '-'], `addr show dev ${ifname}\nroute show default\n`));
  const ep = eps.find((e) => e.ifname === ifname);
  if (!ep) throw new TvmError('ERR_NETWORK_SETUP', `the VM's namespace has no endpoint ${ifname}`, 500);
  await run('nsenter', [ns, 'ip', 'addr', 'flush', 'dev', ifname]);
  // a filter left by an earlier endpoint of this name would redirect to an interface that is gone
  await run('nsenter', [ns, 'tc', 'filter', 'del', 'dev', GUEST_TAP, 'parent', 'ffff:', 'pref', String(tapFilterPref(ifname))]).catch(
    () => {
      // none there: the usual case
    },
  );
  await run('nsenter', [ns, 'tc', '-batch', '-'], joinCommands(ep).join('\n') + '\n');
  return { ...ep, tap: GUEST_TAP };
}

/** `docker network disconnect` of a running VM: the tap no longer sends endpoint `ifname` anything (its own filters go with it). */
export async function unplugGuestNic(netns: string, ifname: string): Promise<void> {
  await run('nsenter', [
    `--net=${netns}`,
    'tc',
    'filter',
    'del',
    'dev',
    GUEST_TAP,
    'parent',
    'ffff:',
    'pref',
    String(tapFilterPref(ifname)),
  ]);
}
