/**
 * Docker's change kinds for `docker diff` (GET /containers/{id}/changes). Both the runtime
 * (overlayfs upper dirs) and the disks (ext4 overlay vs base) compute them, so they live below
 * both layers.
 */
export const CHANGE_MODIFIED = 0;
export const CHANGE_ADDED = 1;
export const CHANGE_DELETED = 2;

export interface Change {
  /** absolute path inside the container */
  Path: string;
  Kind: typeof CHANGE_MODIFIED | typeof CHANGE_ADDED | typeof CHANGE_DELETED;
}
