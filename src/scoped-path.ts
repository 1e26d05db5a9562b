/**
 * Resolves a path inside a root as if the root were "/": symlinks are followed, absolute link
 * targets restart at the root, and ".." never climbs above it. One walk serves every view of
 * a container's filesystem (the host's mounted root, an ext4 disk read offline), each giving
 * its own way to read a link.
 */
import { InvalidParameterError } from './errors.js';

/** Linux's limit on symlinks followed in one lookup. */
export const MAX_SYMLINKS = 40;

/**
 * @param readLinkAt the target if `parts` (relative to the root) names a symlink, else null
 *   (including when nothing is there: the rest of the path is then taken literally)
 * @returns the resolved path's components, relative to the root
 */
export async function resolveScoped(
  unsafe: string,
  followLast: boolean,
  readLinkAt: (parts: string[]) => Promise<string | null>,
): Promise<string[]> {
  let rel: string[] = [];
  let todo = unsafe.split('/').filter((c) => c && c !== '.');
  let links = 0;
  while (todo.length) {
    const comp = todo.shift()!;
    if (comp === '..') {
      rel.pop();
      continue;
    }
    const target = followLast || todo.length ? await readLinkAt([...rel, comp]) : null;
    if (target !== null) {
      if (++links > MAX_SYMLINKS) throw new InvalidParameterError(`too many symlinks resolving ${unsafe}`);
      if (target.startsWith('/')) rel = [];
      todo = [...target.split('/').filter((c) => c && c !== '.'), ...todo];
      continue;
    }
    rel.push(comp);
  }
  return rel;
}
