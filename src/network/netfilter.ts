/**
 * Netfilter rules for bridge networks, with iptables (Debian's iptables, nf_tables backend):
 * the same rule language Docker uses, so `iptables -S` reads like a Docker host's, and
 * `iptables-restore --noflush` replaces all of our chains of a table in one transaction. The rules
 * are never edited one by one: they are rendered from the networks and published ports and
 * applied whole, so a daemon start reconciles whatever a crashed one left.
 *
 * Chains: filter TVM-FORWARD (from FORWARD) and TVM-ISOLATION; nat TVM-DNAT (from PREROUTING
 * and OUTPUT, local destinations) and TVM-POSTROUTING (from POSTROUTING).
 */
import { run } from './exec.js';

export interface FilterNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface FilterPort {
  bridge: string;
  proto: 'tcp' | 'udp';
  /** '' or 0.0.0.0: every local address */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

const JUMPS: { table: 'filter' | 'nat'; chain: string; rule: string[] }[] = [
  { table: 'filter', chain: 'FORWARD', rule: ['-j', 'TVM-FORWARD'] },
  { table: 'nat', chain: 'PREROUTING', rule: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'TVM-DNAT'] },
  { table: 'nat', chain: 'OUTPUT', rule: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'TVM-DNAT'] },
  { table: 'nat', chain: 'POSTROUTING', rule: ['-j', 'TVM-POSTROUTING'] },
];

function dest(p: FilterPort): string[] {
  return p.hostIp && p.hostIp !== '0.0.0.0' ? ['-d', `${p.hostIp}/32`] : [];
}

/** The iptables-restore input for both tables (pure: unit-tested). */
export function render(networks: FilterNetwork[], ports: FilterPort[]): { filter: string; nat: string } {
  const filter = ['*filter', ':TVM-FORWARD - [0:0]', ':TVM-ISOLATION - [0:0]'];
  const nat = ['*nat', ':TVM-DNAT - [0:0]', ':TVM-POSTROUTING - [0:0]'];
  for (const n of networks) {
    // networks never reach each other: anything leaving one bridge for another is dropped
    filter.push(`-A TVM-FORWARD -i ${n.bridge} ! -o ${n.bridge} -j TVM-ISOLATION`);
    for (const o of networks) if (o.bridge !== n.bridge) filter.push(`-A TVM-ISOLATION -i ${n.bridge} -o ${o.bridge} -j DROP`);
    if (n.internal) {
      filter.push(`-A TVM-FORWARD -i ${n.bridge} ! -o ${n.bridge} -j DROP`, `-A TVM-FORWARD -o ${n.bridge} ! -i ${n.bridge} -j DROP`);
    } else {
      nat.push(`-A TVM-POSTROUTING -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
    }
    // published on 127.0.0.1: the DNATed packet leaves with a loopback source, which the
    // container could not answer
    nat.push(`-A TVM-POSTROUTING -s 127.0.0.0/8 -o ${n.bridge} -j MASQUERADE`);
    filter.push(`-A TVM-FORWARD -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`);
    for (const p of ports.filter((q) => q.bridge === n.bridge)) {
      filter.push(
        `-A TVM-FORWARD -d ${p.containerIp}/32 ! -i ${n.bridge} -o ${n.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j ACCEPT`,
      );
    }
    filter.push(`-A TVM-FORWARD -i ${n.bridge} -j ACCEPT`, `-A TVM-FORWARD -o ${n.bridge} -j DROP`);
  }
  for (const p of ports) {
    nat.push(
      [
        '-A TVM-DNAT',
        ...dest(p),
        `! -i ${p.bridge}`,
        `-p ${p.proto} -m ${p.proto} --dport ${p.hostPort}`,
        `-j DNAT --to-destination ${p.containerIp}:${p.containerPort}`,
      ].join(' '),
    );
  }
  filter.push('COMMIT', '');
  nat.push('COMMIT', '');
  return { filter: filter.join('\n'), nat: nat.join('\n') };
}

/** The jumps are checked once per daemon (and after removeRules): they do not change with the rules. */
let jumpsInPlace = false;

async function ensureJumps(): Promise<void> {
  if (jumpsInPlace) return;
  for (const j of JUMPS) {
    try {
      await run('iptables', ['-w', '-t', j.table, '-C', j.chain, ...j.rule]);
    } catch {
      await run('iptables', ['-w', '-t', j.table, '-I', j.chain, '1', ...j.rule]);
    }
  }
  jumpsInPlace = true;
}

/** Replaces our chains' rules with exactly these (chains made when missing). */
export async function applyRules(networks: FilterNetwork[], ports: FilterPort[]): Promise<void> {
  const r = render(networks, ports);
  // chains first (restore declares them), then the jumps into them
  await run('iptables-restore', ['-w', '--noflush'], r.filter + r.nat);
  await ensureJumps();
}

/** No network left: our jumps and chains go, so nothing of ours stays in the host's tables. */
export async function removeRules(): Promise<void> {
  jumpsInPlace = false;
  for (const j of JUMPS) {
    for (;;) {
      try {
        await run('iptables', ['-w', '-t', j.table, '-D', j.chain, ...j.rule]);
      } catch {
        break; // no (more) such rule
      }
    }
  }
  for (const [table, chains] of [
    ['filter', ['TVM-FORWARD', 'TVM-ISOLATION']],
    ['nat', ['TVM-DNAT', 'TVM-POSTROUTING']],
  ] as const) {
    for (const c of chains) {
      try {
        await run('iptables', ['-w', '-t', table, '-F', c]);
        await run('iptables', ['-w', '-t', table, '-X', c]);
      } catch {
        // the chain was not there: nothing to remove
      }
    }
  }
}
