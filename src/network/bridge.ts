/**
 * The kernel bridge of a network and the host settings it needs (moby's bridge driver setup
 * steps, one function each): the device with the gateway address, forwarding, and
 * route_localnet so that 127.0.0.1 can be DNATed to a container (published ports on loopback).
 */
import { writeFile } from 'node:fs/promises';
import { ip, NetworkSetupError, Undo } from './exec.js';
import { macFor } from './ipam.js';

export async function linkExists(name: string): Promise<boolean> {
  try {
    await ip('link', 'show', 'dev', name);
    return true;
  } catch {
    return false;
  }
}

/** The links enslaved to these bridges (a crashed daemon's leftover veths are among them). */
export async function linksOnBridges(bridges: Set<string>): Promise<string[]> {
  const out = JSON.parse((await ip('-j', 'link', 'show')) || '[]') as { ifname: string; master?: string }[];
  return out.filter((l) => l.master !== undefined && bridges.has(l.master)).map((l) => l.ifname);
}

async function sysctl(key: string, value: string): Promise<void> {
  try {
    await writeFile(`/proc/sys/${key.replace(/\./g, '/')}`, value);
  } catch (e) {
    throw new NetworkSetupError(`sysctl ${key}=${value}: ${(e as Error).message}`, { cause: e });
  }
}

export async function enableForwarding(): Promise<void> {
  await sysctl('net.ipv4.ip_forward', '1');
}

/**
 * Makes the bridge `name` with `gatewayCidr` (e.g. 172.17.0.1/16), up; a bridge already there
 * (a daemon restart) is kept and given the address if it lacks it. Undone on failure.
 */
export async function ensureBridge(name: string, gatewayCidr: string, log: (m: string) => void): Promise<void> {
  const undo = new Undo();
  try {
    if (!(await linkExists(name))) {
      await ip('link', 'add', 'name', name, 'type', 'bridge');
      undo.push(() => ip('link', 'del', 'dev', name));
    }
    // A bridge without an address of its own takes the lowest of its ports' MACs, so it would
    // change as containers come and go and strand every container's ARP entry for the gateway
    // (seconds of lost packets): it gets a fixed one, derived from the gateway's address.
    await ip('link', 'set', 'dev', name, 'address', macFor(gatewayCidr.split('/')[0]!));
    const addrs = JSON.parse(await ip('-j', '-4', 'addr', 'show', 'dev', name)) as { addr_info?: { local: string; prefixlen: number }[] }[];
    const have = (addrs[0]?.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`);
    if (!have.includes(gatewayCidr)) await ip('addr', 'add', gatewayCidr, 'dev', name);
    await ip('link', 'set', 'dev', name, 'up');
    await sysctl(`net.ipv4.conf.${name}.route_localnet`, '1');
  } catch (e) {
    await undo.rollback(log);
    throw e;
  }
}

export async function deleteBridge(name: string): Promise<void> {
  if (await linkExists(name)) await ip('link', 'del', 'dev', name);
}
