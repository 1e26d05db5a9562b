/**
 * One endpoint: a veth pair with one end on the network's bridge and the other in the
 * container's namespace, with its address, MAC and (unless the network is internal) a default
 * route via the gateway. As CNI's bridge plugin: each step undone if a later one fails.
 */
import { ip, ipBatchIn, Undo } from './exec.js';

export interface EndpointPlumbing {
  netns: string;
  bridge: string;
  /** host end, at most 15 bytes */
  hostIf: string;
  /** container end: eth0, eth1, ... */
  ifname: string;
  /** address/prefix */
  address: string;
  mac: string;
  /** default route via (absent: none, an internal network or a second network) */
  gateway?: string;
}

/**
 * The namespace's side, as `ip -batch` lines run inside it: the pair is made there with its
 * peer sent to the daemon's namespace (no temporary name to rename), then addressed and routed.
 */
export function insideCommands(e: EndpointPlumbing): string[] {
  return [
    `link add ${e.ifname} type veth peer name ${e.hostIf} netns ${process.pid}`,
    `link set dev ${e.ifname} address ${e.mac}`,
    `addr add ${e.address} dev ${e.ifname}`,
    `link set dev ${e.ifname} up`,
    ...(e.gateway ? [`route add default via ${e.gateway} dev ${e.ifname}`] : []),
  ];
}

/** The host's side: the peer on the bridge, up. `insideDone`: the inside commands already ran (with the namespace's creation). */
export async function attachEndpoint(e: EndpointPlumbing, log: (m: string) => void, insideDone = false): Promise<void> {
  const undo = new Undo();
  try {
    if (!insideDone) await ipBatchIn(e.netns, insideCommands(e));
    undo.push(() => ip('link', 'del', 'dev', e.hostIf));
    await ip('link', 'set', 'dev', e.hostIf, 'master', e.bridge, 'up');
  } catch (err) {
    await undo.rollback(log);
    throw err;
  }
}

/** Deleting the host end deletes the pair; a pair already gone (its namespace died) is fine. */
export async function detachEndpoint(hostIf: string): Promise<void> {
  try {
    await ip('link', 'del', 'dev', hostIf);
  } catch (e) {
    if (!/Cannot find device|does not exist/.test((e as Error).message)) throw e;
  }
}
