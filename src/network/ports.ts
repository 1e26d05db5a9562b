/**
 * Published ports: HostConfig.PortBindings and PublishAllPorts (with the image's and --expose's
 * ExposedPorts) to concrete host ports, with Docker's validation and errors. A host port is
 * checked free (tvm's own bindings, then a real bind of the address) before the container
 * starts, so a port in use fails the start and changes nothing.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { InvalidParameterError, TvmError } from '../errors.js';

export interface PortBinding {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  /** 0: any free port; a range when the user gave one */
  hostPortLo: number;
  hostPortHi: number;
}

export interface PortMapping {
  proto: 'tcp' | 'udp';
  containerPort: number;
  hostIp: string;
  hostPort: number;
}

function portNum(s: string, what: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new InvalidParameterError(`invalid ${what}: ${s}`);
  return n;
}

/** "80/tcp", "53/udp", "80" (tcp) */
export function parsePortKey(key: string): { proto: 'tcp' | 'udp'; port: number } {
  const [p, proto = 'tcp'] = key.split('/');
  if (proto !== 'tcp' && proto !== 'udp') throw new InvalidParameterError(`invalid proto: ${proto}`);
  if (!/^\d+$/.test(p ?? '')) throw new InvalidParameterError(`invalid containerPort: ${p}`);
  return { proto, port: portNum(p!, 'containerPort') };
}

/**
 * PortBindings (and, with publishAll, every exposed port without a binding) as bindings.
 * Docker's error texts for a bad port or address.
 */
export function parseBindings(
  portBindings: Record<string, unknown> | null | undefined,
  publishAll: boolean,
  exposed: Record<string, unknown> | null | undefined,
): PortBinding[] {
  const out: PortBinding[] = [];
  for (const [key, list] of Object.entries(portBindings ?? {})) {
    const { proto, port } = parsePortKey(key);
    const entries = Array.isArray(list) && list.length > 0 ? list : [{}];
    for (const raw of entries) {
      const b = (raw ?? {}) as { HostIp?: unknown; HostPort?: unknown };
      const hostIp = typeof b.HostIp === 'string' ? b.HostIp : '';
      if (hostIp !== '' && net.isIPv4(hostIp) === false) {
        if (net.isIPv6(hostIp)) continue; // IPv6 bindings: tvm networks are IPv4 only, as Docker without --ipv6 skips them
        throw new InvalidParameterError(`invalid IP address: ${hostIp}`);
      }
      const hp = typeof b.HostPort === 'string' ? b.HostPort : '';
      let lo = 0;
      let hi = 0;
      if (hp !== '') {
        const m = /^(\d+)(?:-(\d+))?$/.exec(hp);
        if (!m) throw new InvalidParameterError(`invalid hostPort: ${hp}`);
        lo = portNum(m[1]!, 'hostPort');
        hi = m[2] ? portNum(m[2], 'hostPort') : lo;
        if (hi < lo) throw new InvalidParameterError(`invalid hostPort: ${hp}`);
      }
      out.push({ proto, containerPort: port, hostIp, hostPortLo: lo, hostPortHi: hi });
    }
  }
  if (publishAll) {
    for (const key of Object.keys(exposed ?? {})) {
      const { proto, port } = parsePortKey(key);
      if (out.some((b) => b.proto === proto && b.containerPort === port)) continue;
      out.push({ proto, containerPort: port, hostIp: '', hostPortLo: 0, hostPortHi: 0 });
    }
  }
  return out;
}

/** Can `hostIp:port` be bound right now (0.0.0.0 when hostIp is '')? */
export function probe(proto: 'tcp' | 'udp', hostIp: string, port: number): Promise<NodeJS.ErrnoException | undefined> {
  const host = hostIp || '0.0.0.0';
  return new Promise((resolve) => {
    if (proto === 'tcp') {
      const s = net.createServer();
      s.once('error', (e) => resolve(e));
      s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
    } else {
      const s = dgram.createSocket('udp4');
      s.once('error', (e) => {
        s.close();
        resolve(e);
      });
      s.bind({ address: host, port, exclusive: true }, () => s.close(() => resolve(undefined)));
    }
  });
}

/** A free port the kernel picks from its ephemeral range (Docker picks from the same range). */
function ephemeral(proto: 'tcp' | 'udp', hostIp: string): Promise<number> {
  const host = hostIp || '0.0.0.0';
  return new Promise((resolve, reject) => {
    if (proto === 'tcp') {
      const s = net.createServer();
      s.once('error', reject);
      s.listen({ host, port: 0, exclusive: true }, () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    } else {
      const s = dgram.createSocket('udp4');
      s.once('error', reject);
      s.bind({ address: host, port: 0, exclusive: true }, () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    }
  });
}

function clash(a: { proto: string; hostIp: string; hostPort: number }, b: { proto: string; hostIp: string; hostPort: number }): boolean {
  const any = (ip: string) => ip === '' || ip === '0.0.0.0';
  return a.proto === b.proto && a.hostPort === b.hostPort && (any(a.hostIp) || any(b.hostIp) || a.hostIp === b.hostIp);
}

/**
 * Chooses a host port for every binding: the given one, the first free of a range, or an
 * ephemeral one. `taken`: the bindings of tvm's running containers. Errors as Docker's.
 */
export async function allocatePorts(bindings: PortBinding[], taken: PortMapping[], endpointName: string): Promise<PortMapping[]> {
  const out: PortMapping[] = [];
  const used = () => [...taken, ...out];
  for (const b of bindings) {
    const shown = `${b.hostIp || '0.0.0.0'}`;
    if (b.hostPortLo === 0) {
      for (let i = 0; ; i++) {
        const p = await ephemeral(b.proto, b.hostIp);
        const m = { proto: b.proto, containerPort: b.containerPort, hostIp: b.hostIp, hostPort: p };
        if (!used().some((t) => clash(t, m))) {
          out.push(m);
          break;
        }
        if (i > 100) throw new TvmError('ERR_PORT_ALLOCATION', `Bind for ${shown}: no free port found`, 500);
      }
      continue;
    }
    let chosen: PortMapping | undefined;
    let lastErr: NodeJS.ErrnoException | undefined;
    let allocated = false;
    for (let p = b.hostPortLo; p <= b.hostPortHi && !chosen; p++) {
      const m = { proto: b.proto, containerPort: b.containerPort, hostIp: b.hostIp, hostPort: p };
      if (used().some((t) => clash(t, m))) {
        allocated = true;
        continue;
      }
      const err = await probe(b.proto, b.hostIp, p);
      if (err) lastErr = err;
      else chosen = m;
    }
    if (!chosen) {
      const range = b.hostPortLo === b.hostPortHi ? `${b.hostPortLo}` : `${b.hostPortLo}-${b.hostPortHi}`;
      if (lastErr) {
        const what =
          lastErr.code === 'EADDRINUSE'
            ? 'bind: address already in use'
            : lastErr.code === 'EADDRNOTAVAIL'
              ? 'bind: cannot assign requested address'
              : lastErr.message;
        throw new TvmError(
          'ERR_PORT_IN_USE',
          `driver failed programming external connectivity on endpoint ${endpointName}: Error starting userland proxy: listen ${b.proto}4 ${shown}:${range}: ${what}`,
          500,
        );
      }
      if (allocated) throw new TvmError('ERR_PORT_ALLOCATED', `Bind for ${shown}:${range} failed: port is already allocated`, 500);
    }
    out.push(chosen!);
  }
  return out;
}

/** NetworkSettings.Ports: every exposed or published port, with its host bindings (null: none). */
export function portsJson(
  exposed: Record<string, unknown> | null | undefined,
  mappings: PortMapping[],
): Record<string, { HostIp: string; HostPort: string }[] | null> {
  const out: Record<string, { HostIp: string; HostPort: string }[] | null> = {};
  for (const k of Object.keys(exposed ?? {})) out[k.includes('/') ? k : `${k}/tcp`] = null;
  for (const m of mappings) {
    const k = `${m.containerPort}/${m.proto}`;
    (out[k] ??= []).push({ HostIp: m.hostIp || '0.0.0.0', HostPort: String(m.hostPort) });
  }
  return out;
}
