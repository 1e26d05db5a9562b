/**
 * Docker's 127.0.0.11 inside each container's namespace. Docker's daemon listens in the
 * container's namespace itself and DNATs 127.0.0.11:53 to its sockets there; a Node daemon
 * cannot open a socket in another namespace from its event loop (setns moves the whole
 * thread), and a forwarder process per container would cost a process and its memory for each.
 * So the container's own netfilter sends 127.0.0.11:53 (UDP and TCP) on to the network's
 * embedded server at the gateway address, which the daemon already serves for every container
 * on the network: DNAT in nat OUTPUT, then SNAT to the container's address on that network so
 * the answer comes back to it and the server knows who asked (names are scoped by the
 * networks the asker shares). A packet with a 127/8 source may leave by eth0, and its answer
 * be delivered to 127/8, only with route_localnet=1, set in that namespace alone.
 */
import { run } from './exec.js';

export const EMBEDDED_DNS_ADDRESS = '127.0.0.11';

/**
 * The iptables-restore input for the container's nat table (pure: unit-tested). A fresh
 * namespace's table is empty: ours replaces it whole.
 */
export function renderDnsRedirect(server: string, containerIp: string): string {
  const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  for (const p of ['udp', 'tcp']) {
    lines.push(`-A OUTPUT -d ${EMBEDDED_DNS_ADDRESS}/32 -p ${p} -m ${p} --dport 53 -j DNAT --to-destination ${server}:53`);
  }
  for (const p of ['udp', 'tcp']) {
    lines.push(`-A POSTROUTING -s 127.0.0.0/8 -d ${server}/32 -p ${p} -m ${p} --dport 53 -j SNAT --to-source ${containerIp}`);
  }
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Points the namespace at `netns`'s 127.0.0.11:53 to the embedded server at `server`, as `containerIp`. */
export async function redirectDns(netns: string, server: string, containerIp: string): Promise<void> {
  // one process: the sysctl is the namespace's own only when written from inside it
  await run(
    'nsenter',
    [`--net=${netns}`, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/conf/all/route_localnet && exec iptables-restore -w'],
    renderDnsRedirect(server, containerIp),
  );
}
