/**
 * HostIsolation with user namespaces, without the daemon: maps given directly (two uid ranges,
 * so container uid 1000 lands in a second host range), base disks id-shifted by a real
 * BaseDiskCache. /etc/subuid is not involved.
 */
import { chmodSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extract, pack } from 'tar-stream';
import { BaseDiskCache } from '../../../../src/disks/base-disk.js';
import { HostIsolation } from '../../../../src/runtime/host/isolation.js';
import { PRIVILEGED_WITH_REMAP } from '../../../../src/runtime/host/remap.js';
import { busyboxRootfsEntries, packTar } from '../../../fixtures/rootfs.js';
import { AGENT, fakeImages, makeSpec, run, setup, type Env } from './harness.js';

const maps = {
  uidMap: [
    { containerID: 0, hostID: 200000, size: 1000 },
    { containerID: 1000, hostID: 300000, size: 64536 },
  ],
  gidMap: [{ containerID: 0, hostID: 200000, size: 65536 }],
};

let env: Env;
let iso: HostIsolation;
const made: ReturnType<typeof makeSpec>[] = [];

beforeAll(async () => {
  env = await setup();
  // mkdtemp made the root 0700: the namespace's root must pass through it (the daemon checks this)
  chmodSync(env.root, 0o711);
  const entries = busyboxRootfsEntries();
  entries.push({ name: 'bin/setpriv', type: 'symlink', linkname: 'busybox' });
  const tar = await packTar(entries);
  const { images, baseDisks } = fakeImages(env.disk);
  const shifted = new BaseDiskCache({
    dataRoot: env.dataRoot,
    layerStreams: () =>
      (async function* () {
        yield Readable.from([tar]);
      })(),
    idShift: maps,
  });
  iso = new HostIsolation({
    dataRoot: env.dataRoot,
    runRoot: env.runRoot,
    agentPath: AGENT,
    images,
    baseDisks,
    userns: { maps, baseDisks: shifted },
  });
});

afterAll(async () => {
  for (const s of made) {
    // teardown is best effort: a test may already have killed or removed its container
    await iso.kill(s, 'KILL').catch(() => {});
    await iso.wait(s).catch(() => {});
    await iso.remove(s).catch(() => {});
  }
  rmSync(env.root, { recursive: true, force: true });
});

function spec(args: string[], over = {}, proc = {}) {
  const s = makeSpec(env, args, over, proc);
  made.push(s);
  return s;
}

async function tarEntries(s: Readable): Promise<{ name: string; uid: number; gid: number }[]> {
  const ex = extract();
  const out: { name: string; uid: number; gid: number }[] = [];
  ex.on('entry', (h, body, next) => {
    out.push({ name: h.name, uid: h.uid ?? -1, gid: h.gid ?? -1 });
    body.on('end', next);
    body.resume();
  });
  const done = new Promise<void>((resolve, reject) => {
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  s.pipe(ex);
  await done;
  return out;
}

describe('HostIsolation with a user namespace', () => {
  it('runs as the namespace root over an id-shifted base disk; a second uid range maps container uid 1000', async () => {
    const s = spec(['sh', '-c', 'id -u; cat /proc/self/uid_map; stat -c "%u %g" /bin/busybox /home/app; touch /made-by-root']);
    const r = await run(env, s, iso);
    expect(r.status.exitCode, r.stderr).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/).join(' '));
    expect(lines).toEqual(['0', '0 200000 1000', '1000 300000 64536', '0 0', '1000 1000']);
    // restarted as uid 1000 (the second range): its files are 300000 on the host
    await iso.start({
      ...s,
      process: { ...s.process, args: ['sh', '-c', 'touch /tmp/by-app; id -u; stat -c %u /tmp/by-app'], user: '1000:1000' },
    });
    expect((await iso.wait(s)).exitCode).toBe(0);
    const rec = JSON.parse(readFileSync(path.join(s.stateDir, 'host.json'), 'utf8')) as { userns?: unknown; lower: string };
    expect(rec.userns).toEqual(maps);
    expect(rec.lower).toContain(`${path.sep}userns-u200000-g200000-`);
    // on the host: the overlay upper dir and what the workload made carry the mapped ids
    expect(statSync(path.join(s.stateDir, 'upper')).uid).toBe(200000);
    expect(statSync(path.join(s.stateDir, 'upper', 'made-by-root')).uid).toBe(200000);
    expect(statSync(path.join(s.stateDir, 'upper', 'tmp', 'by-app')).uid).toBe(300000);
    expect(statSync(s.stateDir).mode & 0o777).toBe(0o710);
    expect(statSync(s.stateDir).gid).toBe(200000);
    // docker cp of the stopped container shows container ids
    const entries = await tarEntries(await iso.archive(s, '/tmp/by-app'));
    expect(entries).toEqual([{ name: 'by-app', uid: 1000, gid: 1000 }]);
    // copied in: container ids become host ids; an id outside the maps is refused before anything is written
    const inTar = pack();
    inTar.entry({ name: 'given', uid: 1000, gid: 1000 }, 'x');
    inTar.finalize();
    await iso.extract(s, '/tmp', inTar as unknown as Readable);
    expect(statSync(path.join(s.stateDir, 'upper', 'tmp', 'given')).uid).toBe(300000);
    const bad = pack();
    bad.entry({ name: 'unmapped', uid: 70000, gid: 0 }, 'x');
    bad.finalize();
    await expect(iso.extract(s, '/tmp', bad as unknown as Readable)).rejects.toThrow(/unmapped: container uid 70000 cannot be mapped/);
    expect(existsSync(path.join(s.stateDir, 'upper', 'tmp', 'unmapped'))).toBe(false);
  });

  it('opts out with usernsMode host, and refuses privileged without it', async () => {
    const host = spec(['cat', '/proc/self/uid_map'], { usernsMode: 'host' });
    const r = await run(env, host, iso);
    expect(r.stdout.trim().split(/\s+/)).toEqual(['0', '0', '4294967295']);
    const rec = JSON.parse(readFileSync(path.join(host.stateDir, 'host.json'), 'utf8')) as { userns?: unknown; lower: string };
    expect(rec.userns).toBeUndefined();
    expect(rec.lower).not.toContain('userns-');
    await expect(iso.create(spec(['true'], { privileged: true }))).rejects.toThrow(PRIVILEGED_WITH_REMAP);
  });
});
