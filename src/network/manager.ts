/**
 * The daemon's networks: the default bridge, user-defined bridge networks, and each container's
 * attachment to them (its network namespace, one veth endpoint per network, published ports).
 * Every change goes through one queue: records are saved, then the kernel's state (bridges,
 * veths, netfilter rules) follows; each setup is undone when a step fails. At start the kernel
 * is reconciled with the records (a crashed daemon's leftovers removed).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import path from 'node:path';
import { ConflictError, InvalidParameterError, NotFoundError, NotImplementedError } from '../errors.js';
import { deleteBridge, enableForwarding, ensureBridge, linksOnBridges } from './bridge.js';
import { ip, Undo } from './exec.js';
import {
  allocate,
  cidr,
  completeConfig,
  DEFAULT_POOLS,
  ForbiddenError,
  formatCidr,
  formatIp,
  macFor,
  overlaps,
  parseCidr,
  pickSubnet,
  release,
  validateIpamConfig,
  type Cidr,
} from './ipam.js';
import { applyRules, removeRules, type FilterNetwork, type FilterPort } from './netfilter.js';
import { createNetns, netnsExists, removeNetns } from './netns.js';
import { allocatePorts, parseBindings, type PortMapping } from './ports.js';
import { NetworkStore, type Endpoint, type Member, type NetworkRecord } from './store.js';
import { EmbeddedDns, hostNameservers } from './dns.js';
import { EMBEDDED_DNS_ADDRESS, redirectDns } from './dns-netns.js';
import { attachEndpoint, detachEndpoint, insideCommands } from './veth.js';

export type { NetworkRecord, Member, Endpoint } from './store.js';

export interface NetworkManagerOptions {
  dataRoot: string;
  runRoot: string;
  /** `tvm daemon --bridge`: the default bridge's device; 'none': no default bridge (containers default to none) */
  bridge?: string;
  /** `--bip`: the default bridge's gateway address and prefix, e.g. 172.17.0.1/16 */
  bip?: string;
  /** `--default-address-pool` */
  pools?: { base: string; size: number }[];
  log?: (m: string) => void;
}

/** How a container is networked, decided at create. */
export interface NetworkAttach {
  /** container: another container's namespace (resolved by the container manager) */
  mode: 'none' | 'host' | 'bridge' | 'container';
  networks: { id: string; aliases: string[]; ipv4?: string }[];
}

/** What a container's start needs from its networks. */
export interface Sandbox {
  /** the prepared namespace the agent joins */
  path: string;
  /** the primary address, for /etc/hosts */
  ip: string;
  /** on a user-defined network: the embedded DNS (127.0.0.11), in place of the host's nameservers */
  nameservers?: string[];
  /** where 127.0.0.11 leads: the embedded server's address on the first user network (a VM's guest asks it there) */
  dnsServer?: string;
}

export interface EndpointConfigBody {
  IPAMConfig?: { IPv4Address?: string } | null;
  Aliases?: string[] | null;
}

export const DEFAULT_BRIDGE = 'tvm0';
const VETH_PREFIX = 'tv';
const PREDEFINED = new Set(['bridge', 'host', 'none']);
const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

function predefinedId(name: string): string {
  return createHash('sha256').update(`tvm-network-${name}`).digest('hex');
}

/**
 * A container's endpoint on a network: `ifname` inside its namespace, a host-side veth named
 * from the container and network (stable across daemon restarts), the MAC from the address.
 */
function newEndpoint(containerId: string, networkId: string, ip: string, ifname: string, dns: string[] | undefined): Endpoint {
  return {
    id: randomBytes(32).toString('hex'),
    ip,
    mac: macFor(ip),
    ifname,
    hostIf: `${VETH_PREFIX}${createHash('sha256').update(`${containerId}/${networkId}`).digest('hex').slice(0, 11)}`,
    ports: [],
    ...(dns && { dns }),
  };
}

export class NetworkManager {
  private readonly store: NetworkStore;
  private readonly nets = new Map<string, NetworkRecord>();
  private queue: Promise<unknown> = Promise.resolve();
  /** embedded DNS servers of the user-defined networks, by network id */
  private readonly dns = new Map<string, EmbeddedDns>();
  private readonly log: (m: string) => void;
  readonly defaultBridge: string | undefined;

  constructor(private readonly o: NetworkManagerOptions) {
    this.store = new NetworkStore(o.dataRoot);
    this.log = o.log ?? (() => {});
    this.defaultBridge = o.bridge === 'none' ? undefined : (o.bridge ?? DEFAULT_BRIDGE);
  }

  /** One change at a time: records, bridges and rules move together. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    // the queue only orders the work: each caller awaits `p` and gets its own error
    this.queue = p.catch(() => undefined);
    return p;
  }

  netnsPath(containerId: string): string {
    return path.join(this.o.runRoot, 'netns', containerId);
  }

  // ------------------------------------------------------------------ start, reconcile

  async init(): Promise<void> {
    for (const n of await this.store.load(this.log)) this.nets.set(n.Id, n);
    await this.serial(async () => {
      if (this.defaultBridge) await this.ensureDefault(this.defaultBridge);
      if (this.nets.size === 0) return;
      await enableForwarding();
      for (const n of this.nets.values()) {
        await ensureBridge(n.bridge, this.gatewayCidr(n), this.log);
        await this.startDns(n);
      }
      await this.applyRules();
    });
  }

  /** The daemon is going away: its DNS servers stop (containers keep their addresses). */
  close(): void {
    for (const s of this.dns.values()) s.stop();
    this.dns.clear();
  }

  private async startDns(n: NetworkRecord): Promise<void> {
    if (n.Name === 'bridge' || this.dns.has(n.Id)) return;
    const s = new EmbeddedDns(
      (from, name) => this.resolveName(from, name),
      this.log,
      (from) => this.upstreamOf(from),
    );
    try {
      await s.start(n.IPAM.Config[0]!.Gateway);
      this.dns.set(n.Id, s);
    } catch (e) {
      // containers then resolve with the host's nameservers only: worse, not broken
      this.log(`network ${n.Name}: embedded DNS on ${n.IPAM.Config[0]!.Gateway}:53 failed: ${String(e)}`);
    }
  }

  private stopDns(id: string): void {
    this.dns.get(id)?.stop();
    this.dns.delete(id);
  }

  /**
   * What `name` is for the container at address `from`: the containers (names, aliases, short
   * ids) on the user-defined networks it shares with them, by their address there; as Docker,
   * `<name>.<network>` asks one network only.
   */
  resolveName(from: string, name: string): string[] | undefined {
    const q = name.toLowerCase();
    const user = [...this.nets.values()].filter((n) => n.Name !== 'bridge');
    // the asking container, by its address on the network whose server it asked
    const askers = new Set(
      user.flatMap((n) =>
        Object.entries(n.members)
          .filter(([, m]) => m.endpoint?.ip === from)
          .map(([id]) => id),
      ),
    );
    const mine = user.filter((n) => Object.entries(n.members).some(([id, m]) => askers.has(id) && m.endpoint));
    const out: string[] = [];
    for (const n of mine) {
      const net = n.Name.toLowerCase();
      const local = q.endsWith(`.${net}`) ? q.slice(0, -net.length - 1) : undefined;
      for (const [id, m] of Object.entries(n.members)) {
        if (!m.endpoint) continue;
        const names = [m.name, id.slice(0, 12), id, ...m.aliases].map((x) => x.toLowerCase());
        if ((names.includes(q) || (local !== undefined && names.includes(local))) && !out.includes(m.endpoint.ip)) out.push(m.endpoint.ip);
      }
    }
    return out.length > 0 ? out : undefined;
  }

  /**
   * Where the container at `from` has other names resolved: its --dns servers, else the host's
   * (read at each query, as the host's may change).
   */
  private upstreamOf(from: string): string[] {
    for (const n of this.nets.values()) {
      for (const m of Object.values(n.members)) {
        if (m.endpoint?.ip === from && m.endpoint.dns?.length) return m.endpoint.dns;
      }
    }
    return hostNameservers();
  }

  private gatewayCidr(n: NetworkRecord): string {
    const c = n.IPAM.Config[0]!;
    return `${c.Gateway}/${cidr(c.Subnet).prefix}`;
  }

  /** Subnets a new network must not overlap: ours, and every route of the host that is not one of our bridges'. */
  private async takenSubnets(): Promise<Cidr[]> {
    const ours = [...this.nets.values()].map((n) => cidr(n.IPAM.Config[0]!.Subnet));
    const bridges = new Set([...this.nets.values()].map((n) => n.bridge));
    const routes = JSON.parse((await ip('-j', '-4', 'route', 'show', 'table', 'all')) || '[]') as { dst: string; dev?: string }[];
    const host: Cidr[] = [];
    for (const r of routes) {
      if (r.dst === 'default' || r.dst.startsWith('127.') || (r.dev && bridges.has(r.dev))) continue;
      const c = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
      if (c) host.push({ base: c.addr, prefix: c.prefix });
    }
    return [...ours, ...host];
  }

  private async ensureDefault(bridge: string): Promise<void> {
    const existing = this.byName('bridge');
    const bip = this.o.bip;
    if (existing) {
      const cfg = existing.IPAM.Config[0]!;
      const want = bip ? this.bipConfig(bip) : undefined;
      const endpoints = Object.values(existing.members).some((m) => m.endpoint);
      if (((want && (want.Subnet !== cfg.Subnet || want.Gateway !== cfg.Gateway)) || existing.bridge !== bridge) && !endpoints) {
        // --bip or --bridge changed: the default network follows (nothing runs on it)
        await deleteBridge(existing.bridge).catch((e) => this.log(`removing the old default bridge ${existing.bridge}: ${String(e)}`));
        existing.IPAM.Config = [want ?? cfg];
        existing.bridge = bridge;
        existing.Options['com.docker.network.bridge.name'] = bridge;
        existing.allocations = { [(want ?? cfg).Gateway]: 'gateway' };
        await this.store.save(existing);
      }
      return;
    }
    const cfg = bip
      ? this.bipConfig(bip)
      : completeConfig({ Subnet: formatCidr(pickSubnet(this.o.pools ?? DEFAULT_POOLS, await this.takenSubnets())) });
    const n: NetworkRecord = {
      Name: 'bridge',
      Id: predefinedId('bridge'),
      Created: new Date().toISOString(),
      Driver: 'bridge',
      Internal: false,
      Attachable: false,
      IPAM: { Driver: 'default', Options: null, Config: [cfg] },
      Options: {
        'com.docker.network.bridge.default_bridge': 'true',
        'com.docker.network.bridge.enable_icc': 'true',
        'com.docker.network.bridge.enable_ip_masquerade': 'true',
        'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
        'com.docker.network.bridge.name': bridge,
        'com.docker.network.driver.mtu': '1500',
      },
      Labels: {},
      bridge,
      allocations: { [cfg.Gateway]: 'gateway' },
      members: {},
    };
    await this.store.save(n);
    this.nets.set(n.Id, n);
  }

  private bipConfig(bip: string): { Subnet: string; Gateway: string } {
    const c = parseCidr(bip);
    if (!c || c.prefix > 30)
      throw new InvalidParameterError(`invalid --bip ${bip}: want the bridge's address and prefix, e.g. 172.17.0.1/16`);
    const sub = cidr(bip);
    if (c.addr === sub.base) throw new InvalidParameterError(`invalid --bip ${bip}: the bridge's address must not be the subnet's own`);
    return { Subnet: formatCidr(sub), Gateway: formatIp(c.addr) };
  }

  /**
   * After the containers are recovered: endpoints of containers that are not running, members
   * whose container is gone, namespaces and veths no record knows, go.
   */
  async reconcile(known: Set<string>, running: Set<string>): Promise<void> {
    for (const n of this.nets.values()) {
      for (const id of Object.keys(n.members)) {
        if (!known.has(id)) {
          await this.tearDown(id);
          await this.leave(id);
        } else if (!running.has(id) && n.members[id]!.endpoint) {
          await this.tearDown(id);
        }
      }
    }
    await this.serial(async () => {
      const dir = path.join(this.o.runRoot, 'netns');
      // no netns directory yet: nothing is left over to remove
      const files = await readdir(dir).catch(() => [] as string[]);
      for (const f of files) {
        if (!running.has(f))
          await removeNetns(path.join(dir, f)).catch((e) => this.log(`removing a leftover network namespace ${f}: ${String(e)}`));
      }
      const live = new Set(
        [...this.nets.values()].flatMap((n) =>
          Object.values(n.members)
            .map((m) => m.endpoint?.hostIf)
            .filter(Boolean),
        ),
      );
      // only on our bridges: another daemon's veths are not ours to judge
      const bridges = new Set([...this.nets.values()].map((n) => n.bridge));
      const links =
        bridges.size > 0
          ? await linksOnBridges(bridges).catch((e) => (this.log(`listing the bridges' links: ${String(e)}`), [] as string[]))
          : [];
      for (const l of links) {
        if (!live.has(l) && /^tv[0-9a-f]{11}$/.test(l))
          await detachEndpoint(l).catch((e) => this.log(`removing a leftover veth ${l}: ${String(e)}`));
      }
    });
  }

  // ------------------------------------------------------------------ lookups

  list(): NetworkRecord[] {
    return [...this.nets.values()].sort((a, b) => a.Created.localeCompare(b.Created));
  }

  private byName(name: string): NetworkRecord | undefined {
    return [...this.nets.values()].find((n) => n.Name === name);
  }

  /** Docker's lookup: exact name, exact id, then a unique id prefix. Absent: undefined. */
  find(ref: string): NetworkRecord | undefined {
    const byName = this.byName(ref);
    if (byName) return byName;
    const exact = this.nets.get(ref);
    if (exact) return exact;
    const pre = [...this.nets.values()].filter((n) => n.Id.startsWith(ref));
    return pre.length === 1 ? pre[0] : undefined;
  }

  get(ref: string): NetworkRecord {
    const n = this.find(ref);
    if (!n) throw new NotFoundError(`network ${ref} not found`, 'ERR_NO_SUCH_NETWORK');
    return n;
  }

  /** The pseudo networks "host" and "none" (not bridges; shown by ls and inspect). */
  static pseudo(name: 'host' | 'none'): { Name: string; Id: string; Driver: string } {
    return { Name: name, Id: predefinedId(name), Driver: name === 'host' ? 'host' : 'null' };
  }

  /** Networks a container is configured on, primary first. */
  networksOf(containerId: string): { net: NetworkRecord; member: Member }[] {
    return [...this.nets.values()]
      .filter((n) => n.members[containerId])
      .map((n) => ({ net: n, member: n.members[containerId]! }))
      .sort((a, b) => a.member.order - b.member.order);
  }

  /** The address --add-host name:host-gateway stands for: the default bridge's gateway. */
  hostGatewayIp(): string | undefined {
    return this.byName('bridge')?.IPAM.Config[0]?.Gateway;
  }

  publishedPorts(containerId: string): PortMapping[] {
    return this.networksOf(containerId).flatMap((x) => x.member.endpoint?.ports ?? []);
  }

  // ------------------------------------------------------------------ networks

  async create(body: {
    Name?: string;
    Driver?: string | null;
    Internal?: boolean | null;
    Attachable?: boolean | null;
    EnableIPv6?: boolean | null;
    CheckDuplicate?: boolean | null;
    IPAM?: {
      Driver?: string | null;
      Config?: { Subnet?: string | null; Gateway?: string | null; IPRange?: string | null; AuxiliaryAddresses?: unknown }[] | null;
      Options?: Record<string, string> | null;
    } | null;
    Options?: Record<string, string> | null;
    Labels?: Record<string, string> | null;
    Scope?: string | null;
    ConfigOnly?: boolean | null;
    ConfigFrom?: unknown;
    Ingress?: boolean | null;
  }): Promise<{ Id: string; Warning: string }> {
    const name = body.Name ?? '';
    if (name === '') throw new InvalidParameterError('network name cannot be empty');
    if (!NAME_RE.test(name))
      throw new InvalidParameterError(`invalid network name ${JSON.stringify(name)}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const driver = body.Driver || 'bridge';
    if (driver !== 'bridge') {
      if (driver === 'host' || driver === 'null') throw new ForbiddenError(`only one instance of "${driver}" network is allowed`);
      throw new NotFoundError(`plugin "${driver}" not found`, 'ERR_NO_SUCH_DRIVER');
    }
    if (body.EnableIPv6) throw new NotImplementedError('IPv6 networks are not supported by tvm');
    if (body.Ingress || body.ConfigOnly || (body.Scope && body.Scope !== 'local'))
      throw new NotImplementedError('only local bridge networks are supported by tvm');
    if (body.IPAM?.Driver && body.IPAM.Driver !== 'default')
      throw new NotFoundError(`plugin "${body.IPAM.Driver}" not found`, 'ERR_NO_SUCH_DRIVER');
    const configs = body.IPAM?.Config ?? [];
    if (configs.length > 1) throw new NotImplementedError('tvm networks have one IPv4 subnet');
    const given = configs[0];
    if (given?.AuxiliaryAddresses && Object.keys(given.AuxiliaryAddresses).length > 0)
      throw new NotImplementedError('--aux-address is not supported by tvm');
    if (given) {
      if (!given.Subnet && (given.Gateway || given.IPRange))
        throw new InvalidParameterError('invalid network config:\nIP-Range or gateway specified without a subnet');
      if (given.Subnet)
        validateIpamConfig({
          Subnet: given.Subnet,
          ...(given.Gateway && { Gateway: given.Gateway }),
          ...(given.IPRange && { IPRange: given.IPRange }),
        });
    }
    const opts = body.Options ?? {};
    const bridgeName = opts['com.docker.network.bridge.name'];
    if (bridgeName !== undefined && !/^[a-zA-Z0-9_.-]{1,15}$/.test(bridgeName))
      throw new InvalidParameterError(`invalid bridge name ${JSON.stringify(bridgeName)}: at most 15 of [a-zA-Z0-9_.-]`);
    return this.serial(async () => {
      if (PREDEFINED.has(name) || this.byName(name))
        throw new ConflictError(`network with name ${name} already exists`, 'ERR_NETWORK_EXISTS');
      const id = randomBytes(32).toString('hex');
      const bridge = bridgeName ?? `br-${id.slice(0, 12)}`;
      if ([...this.nets.values()].some((n) => n.bridge === bridge))
        throw new ConflictError(`bridge name ${bridge} is used by another network`);
      let cfg;
      if (given?.Subnet) {
        cfg = completeConfig({
          Subnet: given.Subnet,
          ...(given.Gateway && { Gateway: given.Gateway }),
          ...(given.IPRange && { IPRange: given.IPRange }),
        });
        const sub = cidr(cfg.Subnet);
        if ([...this.nets.values()].some((n) => overlaps(cidr(n.IPAM.Config[0]!.Subnet), sub))) {
          throw new ForbiddenError('invalid pool request: Pool overlaps with other one on this address space', 'ERR_POOL_OVERLAP');
        }
      } else {
        cfg = completeConfig({ Subnet: formatCidr(pickSubnet(this.o.pools ?? DEFAULT_POOLS, await this.takenSubnets())) });
      }
      const n: NetworkRecord = {
        Name: name,
        Id: id,
        Created: new Date().toISOString(),
        Driver: 'bridge',
        Internal: body.Internal === true,
        Attachable: body.Attachable === true,
        IPAM: { Driver: 'default', Options: body.IPAM?.Options ?? {}, Config: [cfg] },
        Options: opts,
        Labels: body.Labels ?? {},
        bridge,
        allocations: { [cfg.Gateway]: 'gateway' },
        members: {},
      };
      const undo = new Undo();
      try {
        await enableForwarding();
        await ensureBridge(bridge, this.gatewayCidr(n), this.log);
        undo.push(() => deleteBridge(bridge));
        await this.store.save(n);
        undo.push(() => this.store.remove(id));
        this.nets.set(id, n);
        undo.push(async () => this.nets.delete(id));
        await this.startDns(n);
        undo.push(async () => this.stopDns(id));
        await this.applyRules();
      } catch (e) {
        await undo.rollback(this.log);
        await this.applyRules().catch((err) => this.log(`restoring the netfilter rules: ${String(err)}`));
        throw e;
      }
      return { Id: id, Warning: '' };
    });
  }

  async remove(ref: string): Promise<NetworkRecord> {
    if (ref === 'host' || ref === 'none') throw new ForbiddenError(`${ref} is a pre-defined network and cannot be removed`);
    return this.serial(async () => {
      const n = this.get(ref);
      if (n.Name === 'bridge') throw new ForbiddenError('bridge is a pre-defined network and cannot be removed');
      if (Object.values(n.members).some((m) => m.endpoint)) {
        throw new ForbiddenError(`error while removing network: network ${n.Name} id ${n.Id} has active endpoints`, 'ERR_NETWORK_IN_USE');
      }
      await this.store.remove(n.Id);
      this.nets.delete(n.Id);
      this.stopDns(n.Id);
      await deleteBridge(n.bridge);
      await this.applyRules();
      return n;
    });
  }

  /** Networks no container is configured on (docker network prune). */
  unused(): NetworkRecord[] {
    return this.list().filter((n) => n.Name !== 'bridge' && Object.keys(n.members).length === 0);
  }

  private async applyRules(): Promise<void> {
    const nets = [...this.nets.values()];
    if (nets.length === 0) {
      await removeRules();
      return;
    }
    const fn: FilterNetwork[] = nets.map((n) => ({ bridge: n.bridge, subnet: n.IPAM.Config[0]!.Subnet, internal: n.Internal }));
    const fp: FilterPort[] = nets.flatMap((n) =>
      Object.values(n.members).flatMap((m) =>
        (m.endpoint?.ports ?? []).map((p) => ({
          bridge: n.bridge,
          proto: p.proto,
          hostIp: p.hostIp,
          hostPort: p.hostPort,
          containerIp: m.endpoint!.ip,
          containerPort: p.containerPort,
        })),
      ),
    );
    await applyRules(fn, fp);
  }

  // ------------------------------------------------------------------ containers

  /**
   * Docker's checks of a create's NetworkMode and EndpointsConfig; changes nothing. '' and
   * 'default' mean the default bridge (none without one).
   */
  resolveCreate(networkMode: string | undefined, endpoints: Record<string, EndpointConfigBody | null> | undefined): NetworkAttach {
    let mode = networkMode ?? '';
    if (mode === '' || mode === 'default') mode = this.defaultBridge ? 'bridge' : 'none';
    // the docker CLI names the primary endpoint as it was given (e.g. "default")
    const eps = Object.entries(endpoints ?? {}).map(([k, v]): [string, EndpointConfigBody | null] => [
      k === networkMode || k === 'default' ? mode : k,
      v,
    ]);
    if (mode === 'none' || mode === 'host') {
      for (const [, ep] of eps) {
        if (ep?.Aliases?.length)
          throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
        if (ep?.IPAMConfig?.IPv4Address)
          throw new InvalidParameterError('user specified IP address is supported on user defined networks only');
      }
      if (eps.some(([k]) => k !== mode))
        throw new InvalidParameterError(
          `container cannot be connected to multiple networks with one of the networks in private (${mode}) mode`,
        );
      return { mode, networks: [] };
    }
    if (mode.startsWith('container:')) {
      if (eps.some(([k]) => k !== mode))
        throw new InvalidParameterError("conflicting options: container type network can't be used with multiple networks");
      for (const [, ep] of eps) {
        if (ep?.Aliases?.length || ep?.IPAMConfig?.IPv4Address)
          throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
      }
      return { mode: 'container', networks: [] };
    }
    const primary = this.find(mode);
    if (!primary) throw new NotFoundError(`network ${mode} not found`, 'ERR_NO_SUCH_NETWORK');
    const out: NetworkAttach = { mode: 'bridge', networks: [] };
    const add = (n: NetworkRecord, ep: EndpointConfigBody | null | undefined) => {
      if (out.networks.some((x) => x.id === n.Id)) return;
      const aliases = ep?.Aliases ?? [];
      const ipv4 = ep?.IPAMConfig?.IPv4Address || undefined;
      if (n.Name === 'bridge' && aliases.length > 0)
        throw new InvalidParameterError('network-scoped alias is supported only for containers in user defined networks');
      if (n.Name === 'bridge' && ipv4)
        throw new InvalidParameterError('user specified IP address is supported on user defined networks only');
      if (ipv4 !== undefined) {
        // outside the subnet or malformed: refused at create, as Docker's IPAM does
        allocate(n.IPAM.Config[0]!, { ...n.allocations }, 'probe', ipv4);
      }
      out.networks.push({ id: n.Id, aliases, ...(ipv4 && { ipv4 }) });
    };
    const primaryEp = eps.find(([k]) => this.find(k) === primary)?.[1];
    add(primary, primaryEp);
    for (const [k, ep] of eps) {
      const n = this.find(k);
      if (!n) throw new NotFoundError(`network ${k} not found`, 'ERR_NO_SUCH_NETWORK');
      add(n, ep);
    }
    return out;
  }

  /** Records a created container on its networks. */
  join(containerId: string, name: string, attach: NetworkAttach): Promise<void> {
    return this.serial(async () => {
      let order = 0;
      for (const a of attach.networks) {
        const n = this.nets.get(a.id);
        if (!n) throw new NotFoundError(`network ${a.id} not found`, 'ERR_NO_SUCH_NETWORK');
        n.members[containerId] = { name: name.replace(/^\//, ''), aliases: a.aliases, ...(a.ipv4 && { ipv4: a.ipv4 }), order: order++ };
        await this.store.save(n);
      }
    });
  }

  /** The container is removed: it leaves every network (its endpoints go first). */
  leave(containerId: string): Promise<void> {
    return this.serial(async () => {
      await this.tearDownLocked(containerId);
      for (const n of this.nets.values()) {
        if (!n.members[containerId]) continue;
        delete n.members[containerId];
        await this.store.save(n);
      }
    });
  }

  /** `docker rename`: the name other containers resolve. */
  rename(containerId: string, name: string): Promise<void> {
    return this.serial(async () => {
      for (const n of this.nets.values()) {
        const m = n.members[containerId];
        if (!m) continue;
        m.name = name.replace(/^\//, '');
        await this.store.save(n);
      }
    });
  }

  /**
   * Before the workload starts: its namespace, an endpoint on each of its networks, its
   * published ports. Everything undone if a step fails. Undefined: not on a bridge network.
   */
  setUp(c: {
    id: string;
    portBindings?: Record<string, unknown> | null;
    publishAll?: boolean;
    exposed?: Record<string, unknown> | null;
    dns?: string[] | null;
  }): Promise<Sandbox | undefined> {
    return this.serial(async () => {
      const nets = this.networksOf(c.id);
      if (nets.length === 0) return undefined;
      for (const { net } of nets)
        if (!this.nets.has(net.Id)) throw new NotFoundError(`network ${net.Name} not found`, 'ERR_NO_SUCH_NETWORK');
      // a start after a crash may find the last run's namespace: begin clean
      await this.tearDownLocked(c.id);
      const file = this.netnsPath(c.id);
      const bindings = parseBindings(c.portBindings, c.publishAll === true, c.exposed);
      // the embedded DNS forwards the container's other names to its --dns servers (IPv4: it forwards over udp4/tcp4)
      const upstream = (c.dns ?? []).filter((s) => isIPv4(s));
      const undo = new Undo();
      let user: { net: NetworkRecord; member: Member } | undefined;
      try {
        let routed = false;
        for (const [i, { net, member }] of nets.entries()) {
          const cfg = net.IPAM.Config[0]!;
          const addr = allocate(cfg, net.allocations, c.id, member.ipv4);
          undo.push(async () => release(net.allocations, c.id));
          const ep = newEndpoint(c.id, net.Id, addr, `eth${i}`, upstream.length > 0 ? upstream : undefined);
          const hostIf = ep.hostIf;
          const gateway = !routed && !net.Internal ? cfg.Gateway : undefined;
          if (gateway) routed = true;
          const plumbing = {
            netns: file,
            bridge: net.bridge,
            hostIf,
            ifname: ep.ifname,
            address: `${addr}/${cidr(cfg.Subnet).prefix}`,
            mac: ep.mac,
            ...(gateway && { gateway }),
          };
          if (i === 0) {
            // the namespace and its first endpoint's inside in one process (bridges exist since create/init)
            await createNetns(file, insideCommands(plumbing));
            undo.push(() => removeNetns(file));
            undo.push(() => detachEndpoint(hostIf));
          }
          await attachEndpoint(plumbing, this.log, i === 0);
          undo.push(() => detachEndpoint(hostIf));
          if (i === 0 && bindings.length > 0) {
            ep.ports = await allocatePorts(bindings, this.allPorts(), `${member.name} (${ep.id.slice(0, 12)})`);
          }
          member.endpoint = ep;
          undo.push(async () => delete member.endpoint);
        }
        user = this.dnsTarget(c.id);
        if (user) await redirectDns(file, user.net.IPAM.Config[0]!.Gateway, user.member.endpoint!.ip);
        for (const { net } of nets) await this.store.save(net);
        // the rules change only with published ports
        if (bindings.length > 0) await this.applyRules();
      } catch (e) {
        await undo.rollback(this.log);
        for (const { net } of nets) await this.store.save(net).catch((err) => this.log(`saving network ${net.Name}: ${String(err)}`));
        await this.applyRules().catch((err) => this.log(`restoring the netfilter rules: ${String(err)}`));
        throw e;
      }
      return {
        path: file,
        ip: nets[0]!.member.endpoint!.ip,
        ...(user && { nameservers: [EMBEDDED_DNS_ADDRESS], dnsServer: user.net.IPAM.Config[0]!.Gateway }),
      };
    });
  }

  /** The container's endpoint on network `ref` (its interface in the namespace), if it has one. */
  endpointOf(ref: string, containerId: string): Endpoint | undefined {
    return this.get(ref).members[containerId]?.endpoint;
  }

  /** The network whose embedded server the container's 127.0.0.11 leads to: its first user-defined one with a live endpoint. */
  private dnsTarget(containerId: string): { net: NetworkRecord; member: Member } | undefined {
    return this.networksOf(containerId).find((x) => x.net.Name !== 'bridge' && this.dns.has(x.net.Id) && x.member.endpoint);
  }

  private allPorts(): PortMapping[] {
    return [...this.nets.values()].flatMap((n) => Object.values(n.members).flatMap((m) => m.endpoint?.ports ?? []));
  }

  /** The workload has exited: endpoints, addresses, ports and namespace go. Idempotent. */
  tearDown(containerId: string): Promise<void> {
    return this.serial(() => this.tearDownLocked(containerId));
  }

  private async tearDownLocked(containerId: string): Promise<void> {
    let changed = false;
    for (const n of this.nets.values()) {
      const m = n.members[containerId];
      if (!m?.endpoint) continue;
      await detachEndpoint(m.endpoint.hostIf);
      if (m.endpoint.ports.length > 0) changed = true;
      delete m.endpoint;
      release(n.allocations, containerId);
      await this.store.save(n);
    }
    // a stale allocation (a crash between steps) is released too
    for (const n of this.nets.values()) release(n.allocations, containerId);
    const file = this.netnsPath(containerId);
    if (netnsExists(file)) await removeNetns(file);
    if (changed) await this.applyRules();
  }

  /**
   * `docker network connect`: recorded, and plumbed at once when the container runs. A running
   * container's first user-defined network also brings the embedded DNS to it (127.0.0.11 now
   * leads to that network's server): `dnsServer` says so, for its resolv.conf (Docker's sandbox
   * rebuilds it then).
   */
  connect(
    ref: string,
    containerId: string,
    name: string,
    ep: EndpointConfigBody | undefined,
    mode: string,
    running: boolean,
  ): Promise<{ dnsServer?: string }> {
    return this.serial(async () => {
      const n = this.get(ref);
      if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
        throw new ForbiddenError(
          mode === 'host'
            ? 'container cannot be disconnected from host network or connected to host network'
            : `container cannot be connected to multiple networks with one of the networks in private (${mode}) mode`,
        );
      }
      const cname = name.replace(/^\//, '');
      if (n.members[containerId]) throw new ForbiddenError(`endpoint with name ${cname} already exists in network ${n.Name}`);
      const attach = this.resolveCreate(n.Name, { [n.Name]: ep ?? null }).networks[0]!;
      const order = Math.max(-1, ...this.networksOf(containerId).map((x) => x.member.order)) + 1;
      const member: Member = { name: cname, aliases: attach.aliases, ...(attach.ipv4 && { ipv4: attach.ipv4 }), order };
      const file = this.netnsPath(containerId);
      const undo = new Undo();
      try {
        if (running) {
          if (!netnsExists(file)) throw new ConflictError(`container ${cname} has no network namespace of its own to connect`);
          const cfg = n.IPAM.Config[0]!;
          const addr = allocate(cfg, n.allocations, containerId, member.ipv4);
          undo.push(async () => release(n.allocations, containerId));
          const used = new Set(this.networksOf(containerId).map((x) => x.member.endpoint?.ifname));
          let i = 0;
          while (used.has(`eth${i}`)) i++;
          // the container's --dns servers, as its other endpoints have them
          const dns = this.networksOf(containerId).find((x) => x.member.endpoint?.dns)?.member.endpoint?.dns;
          const e = newEndpoint(containerId, n.Id, addr, `eth${i}`, dns);
          const hostIf = e.hostIf;
          await attachEndpoint(
            { netns: file, bridge: n.bridge, hostIf, ifname: e.ifname, address: `${addr}/${cidr(cfg.Subnet).prefix}`, mac: e.mac },
            this.log,
          );
          undo.push(() => detachEndpoint(hostIf));
          member.endpoint = e;
        }
        const hadDns = this.dnsTarget(containerId) !== undefined;
        n.members[containerId] = member;
        undo.push(async () => delete n.members[containerId]);
        const dns = running && !hadDns ? this.dnsTarget(containerId) : undefined;
        if (dns) await redirectDns(file, dns.net.IPAM.Config[0]!.Gateway, dns.member.endpoint!.ip);
        await this.store.save(n);
        await this.applyRules();
        return dns ? { dnsServer: dns.net.IPAM.Config[0]!.Gateway } : {};
      } catch (e) {
        await undo.rollback(this.log);
        throw e;
      }
    });
  }

  disconnect(ref: string, containerId: string): Promise<void> {
    return this.serial(async () => {
      const n = this.get(ref);
      const m = n.members[containerId];
      if (!m) throw new ForbiddenError(`container ${containerId} is not connected to network ${n.Name}`);
      const wasTarget = this.dnsTarget(containerId)?.net.Id === n.Id;
      if (m.endpoint) {
        await detachEndpoint(m.endpoint.hostIf);
        release(n.allocations, containerId);
      }
      delete n.members[containerId];
      await this.store.save(n);
      await this.applyRules();
      // 127.0.0.11 led to this network's server, now out of reach: to the next user network's
      const next = wasTarget ? this.dnsTarget(containerId) : undefined;
      if (next) await redirectDns(this.netnsPath(containerId), next.net.IPAM.Config[0]!.Gateway, next.member.endpoint!.ip);
    });
  }
}
