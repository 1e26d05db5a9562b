/**
 * The real parts the daemon runs on: the image store (src/images), the per-image base disks
 * (src/disks) and the isolations (src/runtime/host, src/runtime/vm).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TvmError } from '../errors.js';
import { openImageStore } from '../images/store.js';
import { BaseDiskCache } from '../disks/base-disk.js';
import { HostIsolation } from '../runtime/host/isolation.js';
import { VmIsolation } from '../runtime/vm/isolation.js';
import { chooseVmBackend } from '../vmm/launch/backend.js';
import type { VmBackendKind } from '../vmm/launch/types.js';
import type { ImageStore } from '../images/types.js';
import type { Isolation, IsolationKind } from '../runtime/types.js';
import type { IdMappings } from '../runtime/userns.js';

export interface Components {
  images: ImageStore;
  isolations: Partial<Record<IsolationKind, Isolation>>;
  /**
   * Tells the base-disk cache which images containers still use, once the container manager
   * exists: a base disk from an older writer version is kept (not rebuilt) under them.
   */
  bindImagesInUse?: (inUse: () => Set<string>) => void;
  /**
   * Daemon start, once the records are loaded: deletes what an interrupted load/pull/remove
   * left behind (blobs no image uses, base disks of images that are gone, build temp files);
   * returns one line per thing reclaimed, for the log.
   */
  reclaim?: () => Promise<string[]>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const AGENT_PATH = path.join(REPO_ROOT, 'native', 'build', 'tvm-agent');

export async function loadComponents(o: {
  dataRoot: string;
  execRoot: string;
  insecureRegistries?: string[];
  maxConcurrentDownloads?: number;
  baseDiskSize?: number;
  /** `--userns-remap`: container isolation runs in user namespaces with these maps */
  userns?: IdMappings;
  /** `--vm-backend` (default auto: kvm where /dev/kvm is usable, else tcg where QEMU is installed) */
  vmBackend?: VmBackendKind | 'auto';
  log?: (msg: string) => void;
}): Promise<Components> {
  if (!existsSync(AGENT_PATH))
    throw new TvmError('ERR_PART_MISSING', `the agent binary ${AGENT_PATH} is missing: run scripts/setup.sh (make -C native)`, 500);
  // Bound below, once the base-disk caches exist: an image's removal deletes its disks too.
  let onImageDeleted: ((id: string) => Promise<void>) | undefined;
  const images = await openImageStore({
    dataRoot: o.dataRoot,
    onImageDeleted: (id) => onImageDeleted?.(id) ?? Promise.resolve(),
    ...(o.insecureRegistries && { insecureRegistries: o.insecureRegistries }),
    ...(o.maxConcurrentDownloads !== undefined && { maxConcurrentDownloads: o.maxConcurrentDownloads }),
  });
  // Until the manager has loaded the records, every image counts as in use: never rebuild a
  // base disk that a container's overlay may sit on.
  let imagesInUse: (() => Set<string>) | undefined;
  const baseDisks = new BaseDiskCache({
    dataRoot: o.dataRoot,
    layerStreams: (id: string) => images.layerStreams(id),
    inUse: (id: string) => (imagesInUse === undefined ? true : imagesInUse().has(id)),
    ...(o.baseDiskSize !== undefined && { sizeBytes: o.baseDiskSize }),
  });
  // with remapping, a second cache holds the id-shifted variant of each disk (--userns=host
  // containers and VMs keep using the plain one)
  const userns = o.userns && {
    maps: o.userns,
    baseDisks: new BaseDiskCache({
      dataRoot: o.dataRoot,
      layerStreams: (id: string) => images.layerStreams(id),
      inUse: (id: string) => (imagesInUse === undefined ? true : imagesInUse().has(id)),
      ...(o.baseDiskSize !== undefined && { sizeBytes: o.baseDiskSize }),
      idShift: o.userns,
    }),
  };
  const container = new HostIsolation({
    dataRoot: o.dataRoot,
    runRoot: o.execRoot,
    agentPath: AGENT_PATH,
    baseDisks,
    images,
    ...(userns && { userns }),
  });
  // VMs use the plain base disk: the VM is the boundary, and the guest's root is its own
  const choice = chooseVmBackend(o.vmBackend ?? 'auto');
  const vm =
    choice &&
    new VmIsolation({
      dataRoot: o.dataRoot,
      runRoot: o.execRoot,
      agentPath: AGENT_PATH,
      baseDisks,
      images,
      backend: choice.backend,
      ...(o.log && { log: o.log }),
    });
  o.log?.(
    choice
      ? `VM isolation: backend ${choice.backend} (${choice.reason})`
      : 'VM isolation unavailable: no usable /dev/kvm and no qemu-system-x86_64 (apt-get install qemu-system-x86)',
  );
  const caches = [baseDisks, ...(userns ? [userns.baseDisks] : [])];
  onImageDeleted = async (id) => {
    // A container still on it (rmi -f) keeps its disk: reclaimed at a daemon start once it is gone.
    if (imagesInUse === undefined || imagesInUse().has(id)) return;
    for (const c of caches) await c.remove(id);
  };
  return {
    images,
    isolations: { container, ...(vm && { vm }) },
    bindImagesInUse: (f) => {
      imagesInUse = f;
    },
    reclaim: async () => {
      const live = new Set(await images.imageIds());
      const used = imagesInUse?.() ?? live;
      const blobs = await images.collectGarbage();
      // The caches share one directory: one prune covers every variant.
      const disks = await baseDisks.prune((id) => live.has(id) || used.has(id));
      return [...blobs.map((d) => `blob ${d} (no image uses it)`), ...disks.map((n) => `base disk ${n} (its image is gone)`)];
    },
  };
}
