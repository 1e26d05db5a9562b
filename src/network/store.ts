/**
 * Network records, one JSON file per network under <data root>/networks/, each written
 * atomically (temp + fsync + rename): a crash leaves the old or the new record, never half.
 */
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import path from 'node:path';
import { writeJsonAtomic } from '../atomic-file.js';
import type { Allocations, IpamConfig } from './ipam.js';
import type { PortMapping } from './ports.js';

/** A container's live attachment to a network (while it runs). */
export interface Endpoint {
  id: string;
  ip: string;
  mac: string;
  /** eth0, eth1, ... inside the container */
  ifname: string;
  /** the host end of the veth pair */
  hostIf: string;
  /** published ports (on the container's first network only) */
  ports: PortMapping[];
  /** the container's --dns servers (IPv4), where the embedded DNS forwards its other names; absent: the host's */
  dns?: string[];
}

/** A container configured on a network (running or not). */
export interface Member {
  /** container name, without Docker's leading '/' */
  name: string;
  aliases: string[];
  /** --ip: the static address asked for */
  ipv4?: string;
  /** order of joining: the first network is the primary (eth0, default route, ports) */
  order: number;
  endpoint?: Endpoint;
}

export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Driver: 'bridge';
  Internal: boolean;
  Attachable: boolean;
  IPAM: { Driver: 'default'; Options: Record<string, string> | null; Config: IpamConfig[] };
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** the kernel bridge's name */
  bridge: string;
  allocations: Allocations;
  members: Record<string, Member>;
}

export class NetworkStore {
  readonly dir: string;
  constructor(dataRoot: string) {
    this.dir = path.join(dataRoot, 'networks');
  }

  async load(log: (m: string) => void): Promise<NetworkRecord[]> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const out: NetworkRecord[] = [];
    for (const f of await readdir(this.dir)) {
      if (!f.endsWith('.json') || f.startsWith('.')) continue;
      try {
        out.push(JSON.parse(await readFile(path.join(this.dir, f), 'utf8')) as NetworkRecord);
      } catch (e) {
        log(`network record ${f} is unreadable, ignored: ${String(e)}`);
      }
    }
    return out;
  }

  save(n: NetworkRecord): Promise<void> {
    return writeJsonAtomic(path.join(this.dir, `${n.Id}.json`), n);
  }

  async remove(id: string): Promise<void> {
    await unlink(path.join(this.dir, `${id}.json`)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}
