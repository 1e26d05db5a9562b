/**
 * /etc/hostname, /etc/hosts and /etc/resolv.conf, which Docker writes per container and bind-
 * mounts over the image's: the hostname is the container's, hosts has the localhost entries
 * (the host's file with --network host), resolv.conf is the host's minus loopback nameservers a
 * separate network namespace cannot reach, or on a user-defined network the embedded DNS's.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../atomic-file.js';
import type { AgentMount } from '../../guest-agent/protocol.js';
import type { ProcessOptions } from '../types.js';

const DEFAULT_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/** `ip`: the container's address on its network (bridge), which Docker lists for the hostname. */
export function hostsFile(hostname: string, extra: { name: string; ip: string }[] = [], ip?: string): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'ff00::0\tip6-mcastprefix',
    'ff02::1\tip6-allnodes',
    'ff02::2\tip6-allrouters',
    `${ip ?? '127.0.1.1'}\t${hostname}`,
    // --add-host entries, after Docker's own as Docker writes them
    ...extra.map((h) => `${h.ip}\t${h.name}`),
    '',
  ].join('\n');
}

/** The host's resolv.conf for a container: loopback nameservers dropped unless it shares the host's network. */
export function resolvConf(host: string, hostNetwork: boolean): string {
  if (hostNetwork) return host;
  const lines = host.split('\n').filter((l) => l.trim() !== '');
  const kept = lines.filter((l) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(l);
    return !m || !(m[1]!.startsWith('127.') || m[1] === '::1');
  });
  if (!kept.some((l) => /^\s*nameserver\s/.test(l))) kept.push(...DEFAULT_NAMESERVERS.map((n) => `nameserver ${n}`));
  return kept.join('\n').replace(/\n*$/, '\n');
}

/** --dns / --dns-search / --dns-option: each replaces the corresponding lines of the base file. */
export function withDnsOptions(base: string, dns: ProcessOptions['dns']): string {
  if (!dns) return base;
  const keep = (l: string) =>
    !(dns.nameservers && /^\s*nameserver\s/.test(l)) &&
    !(dns.search && /^\s*(search|domain)\s/.test(l)) &&
    !(dns.options && /^\s*options\s/.test(l));
  const lines = base.split('\n').filter((l) => l.trim() !== '' && keep(l));
  if (dns.nameservers) lines.push(...dns.nameservers.map((n) => `nameserver ${n}`));
  if (dns.search && dns.search.length > 0) lines.push(`search ${dns.search.join(' ')}`);
  if (dns.options) lines.push(`options ${dns.options.join(' ')}`);
  return `${lines.join('\n')}\n`;
}

function appendHosts(base: string, extra: { name: string; ip: string }[]): string {
  return extra.length === 0 ? base : `${base.replace(/\n*$/, '\n')}${extra.map((h) => `${h.ip}\t${h.name}\n`).join('')}`;
}

/** The fields of the last `keyword` line (as Docker's resolvconf package reads them: the last one wins); undefined: none. */
function lastFields(conf: string, keyword: string): string[] | undefined {
  let out: string[] | undefined;
  for (const l of conf.split('\n')) {
    const f = l
      .replace(/[#;].*$/, '')
      .trim()
      .split(/\s+/);
    if (f[0] === keyword) out = f.slice(1);
  }
  return out;
}

/**
 * resolv.conf of a container with the embedded DNS (a user-defined network), as Docker 20.10's
 * sandbox writes it (setupDNS, then rebuildDNS): the search domains and options of the host
 * (or --dns-search / --dns-option), the embedded server as the only IPv4 nameserver (--dns
 * servers are where it forwards, not listed), IPv6 ones kept, and ndots:0 unless an ndots
 * option is given, so a container's single-label names go to the embedded server first.
 */
export function embeddedResolvConf(host: string, dns: ProcessOptions['dns'], nameserver: string): string {
  const search = dns?.search ?? lastFields(host, 'search') ?? [];
  const options = [...(dns?.options ?? lastFields(host, 'options') ?? [])];
  const servers =
    dns?.nameservers ??
    host
      .split('\n')
      .map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1])
      .filter((x): x is string => !!x);
  const v6 = servers.filter((n) => n.includes(':') && n !== '::1');
  if (!options.some((o) => o.startsWith('ndots:'))) options.push('ndots:0');
  const lines = [
    ...(search.length > 0 && search.join(' ').trim() !== '.' ? [`search ${search.join(' ')}`] : []),
    `nameserver ${nameserver}`,
    ...v6.map((n) => `nameserver ${n}`),
    `options ${options.join(' ')}`,
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * The container connected to its first user-defined network while it runs: its resolv.conf
 * names the embedded server from now on (Docker's sandbox rebuilds it so). Written in place:
 * the container's bind mount holds this file's inode, which a rename would leave behind.
 */
export async function rewriteResolvConfForEmbeddedDns(
  stateDir: string,
  opts: ProcessOptions | undefined,
  nameserver: string,
): Promise<void> {
  await writeFile(path.join(stateDir, 'resolv.conf'), await embeddedResolvConfOfHost(opts, nameserver));
}

/** embeddedResolvConf from this host's resolv.conf (a host without one gets the defaults). */
export async function embeddedResolvConfOfHost(opts: ProcessOptions | undefined, nameserver: string): Promise<string> {
  // no host file is a host without search domains or options: nothing to carry over
  const host = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
  return embeddedResolvConf(host, opts?.dns, nameserver);
}

/**
 * Writes the three files into the state dir; returns the bind mounts the user has not
 * overridden. `net`: a bridge-networked container's address (for its hostname) and, on a
 * user-defined network, the embedded DNS server's address.
 */
export async function prepareEtcFiles(
  stateDir: string,
  hostname: string,
  network: 'none' | 'host' | 'bridge' | 'container',
  userDestinations: string[],
  opts?: ProcessOptions,
  net?: { ip: string; nameservers?: string[] },
): Promise<AgentMount[]> {
  const hostNet = network === 'host';
  const ip = net?.ip;
  // a host without the file gets the defaults
  const readHost = (p: string) => readFile(p, 'utf8').catch(() => '');
  const files: [string, string][] = [
    ['hostname', `${hostname}\n`],
    [
      'hosts',
      hostNet
        ? appendHosts((await readHost('/etc/hosts')) || hostsFile(hostname), opts?.extraHosts ?? [])
        : hostsFile(hostname, opts?.extraHosts, ip),
    ],
    [
      'resolv.conf',
      net?.nameservers?.[0]
        ? await embeddedResolvConfOfHost(opts, net.nameservers[0])
        : withDnsOptions(resolvConf(await readHost('/etc/resolv.conf'), hostNet), opts?.dns),
    ],
  ];
  const mounts: AgentMount[] = [];
  for (const [name, content] of files) {
    const dest = `/etc/${name}`;
    const src = path.join(stateDir, name);
    await writeFileAtomic(src, content);
    if (userDestinations.includes(dest)) continue;
    mounts.push({ type: 'bind', source: src, destination: dest, readonly: false });
  }
  return mounts;
}
