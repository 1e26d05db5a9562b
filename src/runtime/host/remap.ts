/**
 * Container isolation under `tvm daemon --userns-remap`: which containers get a user namespace,
 * and the host-side ownership their state needs so that the namespace's root (a subordinate id
 * on the host) can use it.
 */
import { chmod, chown, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { InvalidParameterError } from '../../errors.js';
import type { ContainerSpec } from '../types.js';
import { rootOf, type IdMappings } from '../userns.js';

/** Docker's messages (daemon/daemon_unix.go verifyPlatformContainerSettings) */
export const PRIVILEGED_WITH_REMAP =
  'privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode';
export const HOST_NETWORK_WITH_REMAP = "cannot share the host's network namespace when user namespaces are enabled";

/**
 * The id maps a new container runs with: the daemon's, unless it opted out with
 * `--userns=host`. Refuses what Docker refuses with remapping on.
 */
export function containerUserns(remap: IdMappings | undefined, spec: ContainerSpec): IdMappings | undefined {
  if (!remap || spec.usernsMode === 'host') return undefined;
  if (spec.privileged) throw new InvalidParameterError(PRIVILEGED_WITH_REMAP);
  if (spec.network === 'host') throw new InvalidParameterError(HOST_NETWORK_WITH_REMAP);
  return remap;
}

/**
 * Ownership for a remapped container's state directory: the overlay upper/work dirs and the
 * rootfs mount point belong to the mapped root (overlayfs creates files with the mounter's
 * ids), and the state dir itself becomes 0710 root:<mapped root gid> so the namespace's root may
 * pass through it to them, and nobody else may (Docker does the same with its remapped root).
 */
export async function ownStateForRoot(stateDir: string, dirs: string[], maps: IdMappings): Promise<void> {
  const root = rootOf(maps);
  for (const d of dirs) await chown(d, root.uid, root.gid);
  await chown(stateDir, 0, root.gid);
  await chmod(stateDir, 0o710);
}

/**
 * The overlay upper/work dirs and the rootfs mount point of a state dir: in it, or (with a sized
 * writable layer) in the layer's mount at layer/.
 */
export async function overlayDirsOf(stateDir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of ['upper', 'work', 'rootfs', 'layer/upper', 'layer/work']) {
    const p = path.join(stateDir, d);
    try {
      if ((await stat(p)).isDirectory()) out.push(p);
    } catch {
      // not this layout
    }
  }
  return out;
}

/**
 * Files and volumes the daemon made for the container (its /etc/hostname, hosts, resolv.conf and
 * fresh named volumes) go to the mapped root, as Docker chowns them; only what the host's root
 * still owns is changed, so a volume already handed to a remapped root keeps its owners.
 */
export async function giveToRoot(paths: string[], maps: IdMappings): Promise<void> {
  const root = rootOf(maps);
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch {
      continue;
    }
    if (st.uid !== 0 || st.gid !== 0) continue;
    // a volume with content (another container's, or copied from the image) keeps its owners
    if (st.isDirectory() && (await readdir(p)).length > 0) continue;
    await chown(p, root.uid, root.gid);
  }
}
