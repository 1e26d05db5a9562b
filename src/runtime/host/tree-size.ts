/** Apparent size of a directory tree, as Docker's directory.Size: files' sizes, each inode once. */
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';

export async function treeSize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (p: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(p);
    } catch (e) {
      // removed meanwhile (the workload deletes as we count): it no longer takes space
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const n of names) {
      const f = path.join(p, n);
      const st = await lstat(f).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'ENOENT') return undefined;
        throw e;
      });
      if (!st) continue;
      if (st.isDirectory()) {
        await walk(f);
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      total += st.size;
    }
  };
  await walk(dir);
  return total;
}
