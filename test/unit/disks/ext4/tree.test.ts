import { describe, it, expect } from 'vitest';
import { FsNode, MergedTree, splitPath, type NodeMeta } from '../../../../src/disks/ext4/tree.js';
import { FormatError } from '../../../../src/errors.js';

const meta = (): NodeMeta => ({
  mode: 0o644,
  uid: 0,
  gid: 0,
  atime: { sec: 0, nsec: 0 },
  mtime: { sec: 0, nsec: 0 },
  ctime: { sec: 0, nsec: 0 },
  xattrs: new Map(),
});

function setup() {
  const freed: FsNode[] = [];
  const tree = new MergedTree(meta(), (n) => freed.push(n));
  const add = (path: string, layer: number, kind: 'file' | 'dir' = 'file') => {
    const parts = splitPath(path, path);
    const parent = tree.parentOf(parts, layer, meta);
    const existing = parent.children!.get(parts[parts.length - 1]!);
    if (kind === 'dir' && existing?.kind === 'dir') {
      existing.layer = layer;
      return existing;
    }
    const n = new FsNode(kind, meta(), layer);
    tree.link(parent, parts[parts.length - 1]!, n);
    return n;
  };
  const wh = (path: string, layer: number) => {
    const parts = splitPath(path, path);
    const parent = tree.parentOf(parts, layer, meta);
    const base = parts[parts.length - 1]!;
    if (base === '.wh..wh..opq') tree.opaque(parent, layer);
    else tree.whiteout(parent, base.slice(4), layer);
  };
  const list = (): string[] => {
    const out: string[] = [];
    const walk = (n: FsNode, p: string) => {
      for (const [name, c] of n.children!) {
        out.push(p + name + (c.kind === 'dir' ? '/' : ''));
        if (c.kind === 'dir') walk(c, p + name + '/');
      }
    };
    walk(tree.root, '');
    return out.sort();
  };
  return { tree, add, wh, list, freed };
}

describe('MergedTree (OCI whiteouts)', () => {
  it('whiteouts hide lower entries, recursively, and free their nodes', () => {
    const t = setup();
    t.add('a/', 0, 'dir');
    t.add('a/x', 0);
    t.add('a/sub/', 0, 'dir');
    t.add('a/sub/y', 0);
    t.wh('a/.wh.sub', 1);
    t.wh('a/.wh.x', 1);
    t.wh('a/.wh.nothing', 1);
    expect(t.list()).toEqual(['a/']);
    expect(t.freed.map((n) => n.kind).sort()).toEqual(['dir', 'file', 'file']);
    expect(t.tree.counters.whiteouts).toBe(3);
  });

  it('a whiteout does not hide an entry of its own layer', () => {
    const t = setup();
    t.add('f', 1);
    t.wh('.wh.f', 1);
    expect(t.list()).toEqual(['f']);
  });

  it('an opaque directory hides lower children but keeps its own layer, whatever the order', () => {
    const t = setup();
    t.add('o/', 0, 'dir');
    t.add('o/old', 0);
    t.add('o/keep/', 0, 'dir');
    t.add('o/keep/lower', 0);
    t.add('o/new', 1);
    t.add('o/keep/upper', 1);
    t.wh('o/.wh..wh..opq', 1);
    expect(t.list()).toEqual(['o/', 'o/keep/', 'o/keep/upper', 'o/new']);
    expect(t.tree.counters.opaques).toBe(1);
  });

  it('hard links share a node; the node is freed only with its last name', () => {
    const t = setup();
    const f = t.add('f', 0);
    const parent = t.tree.root;
    t.tree.link(parent, 'g', f);
    expect(f.links).toBe(2);
    t.wh('.wh.f', 1);
    expect(t.freed).toEqual([]);
    t.add('g', 1); // replaced by a new file
    expect(t.freed).toEqual([f]);
  });

  it('replacing a directory by a file drops its subtree; a file by a directory too', () => {
    const t = setup();
    t.add('d/', 0, 'dir');
    t.add('d/x', 0);
    t.add('f', 0);
    t.add('d', 1);
    t.add('f/inner', 1);
    expect(t.list()).toEqual(['d', 'f/', 'f/inner']);
    expect(t.freed.length).toBe(3);
  });

  it('splitPath rejects escapes and normalises the rest', () => {
    expect(splitPath('./a//b/./c/', 'x')).toEqual(['a', 'b', 'c']);
    expect(splitPath('./', 'x')).toEqual([]);
    expect(() => splitPath('/etc/passwd', 'x')).toThrow(FormatError);
    expect(() => splitPath('a/../../b', 'x')).toThrow(/'\.\.'/);
    expect(() => splitPath('n'.repeat(256), 'x')).toThrow(/255/);
  });
});
