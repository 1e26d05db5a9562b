/**
 * The contract between the image side (src/images, src/disks) and its users (src/api,
 * src/runtime). Additive changes only: both sides are written against this file in parallel.
 */
import type { Readable } from 'node:stream';

/** The OCI image config's `config` object (Docker's ContainerConfig subset that images carry). */
export interface ImageRunConfig {
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string> | null;
  ExposedPorts?: Record<string, object> | null;
  Volumes?: Record<string, object> | null;
  StopSignal?: string;
  /** set by the builder (HEALTHCHECK, ONBUILD, SHELL) and `docker commit` */
  Healthcheck?: {
    Test?: string[];
    Interval?: number;
    Timeout?: number;
    StartPeriod?: number;
    StartInterval?: number;
    Retries?: number;
  } | null;
  OnBuild?: string[] | null;
  Shell?: string[] | null;
}

export interface ImageRecord {
  /** 'sha256:<hex>' of the config blob, as Docker identifies images */
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** ISO time from the config's `created` */
  created: string;
  architecture: string;
  os: string;
  config: ImageRunConfig;
  /** uncompressed layer digests, bottom first (RootFS.Layers) */
  diffIds: string[];
  /** sum of uncompressed layer sizes */
  size: number;
  /** the image this one was built or committed on (Docker's Parent), when known */
  parent?: string;
  /** the config's author (`docker commit -a`), when set */
  author?: string;
  /** the config's top-level `comment` (`docker import -m`, `docker commit -m`) */
  comment?: string;
}

export interface PullProgress {
  /** Docker's JSON progress message, written as one line each to the client */
  status: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
}

export interface ImageStore {
  /** name, name:tag, name@digest, short or full ID; throws NotFoundError (404) */
  resolve(ref: string): Promise<ImageRecord>;
  list(): Promise<ImageRecord[]>;
  pull(
    ref: string,
    opts: {
      auth?: { username?: string; password?: string; identitytoken?: string; registrytoken?: string };
      onProgress?: (p: PullProgress) => void;
    },
  ): Promise<ImageRecord>;
  /** docker-archive or OCI layout tar; returns the images loaded */
  load(tar: Readable, onProgress?: (p: PullProgress) => void): Promise<ImageRecord[]>;
  /** docker-archive tar of the given refs */
  save(refs: string[]): Promise<Readable>;
  /** rootfs tar -> one-layer image; `changes` as `docker import --change` */
  importRootfs(tar: Readable, opts: { ref?: string; changes?: string[]; message?: string }): Promise<ImageRecord>;
  tag(ref: string, newRef: string): Promise<void>;
  /** untag or delete; `inUse` lists image IDs that containers use (refused unless force) */
  remove(ref: string, opts: { force: boolean; inUse: Set<string> }): Promise<{ Untagged?: string; Deleted?: string }[]>;
  /** uncompressed layer tar streams, bottom first */
  layerStreams(imageId: string): AsyncIterable<Readable>;
  /** docker history rows, newest first, Docker's field names (added by images) */
  history?(
    ref: string,
  ): Promise<{ Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }[]>;
  /** docker push: blobs then manifest under the ref's tag; returns the manifest digest (added by images) */
  /** `docker login`: checks credentials against a registry; throws AuthError (401) when refused */
  login?(serverAddress: string, creds: { username?: string; password?: string; identitytoken?: string }): Promise<void>;
  push?(
    ref: string,
    opts: {
      auth?: { username?: string; password?: string; identitytoken?: string; registrytoken?: string };
      onProgress?: (p: PullProgress) => void;
    },
  ): Promise<string>;
}

/** src/disks: the per-image read-only ext4 base disk; defined there, below the images layer. */
export type { BaseDisks } from '../disks/base-disk.js';
