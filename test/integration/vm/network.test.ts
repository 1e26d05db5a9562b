/**
 * --isolation=vm on bridge networks, through the docker CLI against a real tvm daemon in a
 * network namespace of its own (startTestDaemon's `network`): the VM's virtio-net NIC (tvm's
 * device, over vhost-user under TCG) on a tap joined by tc to the container's veth. One VM,
 * many checks: it serves HTTP on a user network, reached by name and alias from a host
 * container and through a published port; it resolves a host container by name; inspect shows
 * its address and MAC, which the guest holds; Docker's refusals; nothing left after rm -f.
 * All traffic stays on that namespace's loopback and bridges.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';

const SERVE = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec busybox httpd -f -p 80 -h /www';

describe('--isolation=vm on bridge networks (docker CLI, daemon in its own network namespace)', () => {
  let d: TestDaemon;
  let tmp: string;
  const run = (args: string[]) => d.docker(args);
  const netnsFile = () => path.join(path.dirname(d.dataRoot), 'netns');
  /** a command in the daemon's network namespace (the test's "host") */
  const host = (cmd: string[]) => execa('nsenter', [`--net=${netnsFile()}`, ...cmd], { reject: false });
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.exitCode, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  /** retried: a server in a just-booted guest may take a moment to listen */
  let lastError = '';
  const until = async (what: string, f: () => Promise<string | undefined>, tries = 50) => {
    for (let i = 0; i < tries; i++) {
      const v = await f();
      if (v !== undefined) return v;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`gave up waiting for ${what}: ${lastError}`);
  };
  const curl = (url: string) =>
    until(url, async () => {
      const r = await host(['curl', '-sS', '-m', '3', url]);
      lastError = r.stderr;
      return r.exitCode === 0 ? r.stdout.trim() : undefined;
    });

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.216.0.1/24'] });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-vmnet-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive('busybox:latest', { ExposedPorts: { '80/tcp': {} } }));
    await ok(['load', '-i', path.join(tmp, 'busybox.tar')]);
    await ok(['network', 'create', '--subnet', '10.217.0.0/24', 'vmnet-user']);
  }, 120_000);
  afterAll(async () => {
    if (d) {
      if (process.env.TVM_NET_DEBUG) process.stderr.write(d.logs());
      const ids = (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await run(['rm', '-f', ...ids]);
      await d.destroy();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('refuses --network host and container: for a VM with a 400 naming the reason', async () => {
    const h = await run(['run', '--rm', '--isolation=vm', '--network', 'host', 'busybox', 'true']);
    expect(h.exitCode).not.toBe(0);
    expect(h.stderr).toContain('--network host is not supported with --isolation=vm: a microVM has its own network stack');
    await ok(['run', '-d', '--name', 'vmnet-other', 'busybox', 'sleep', '60']);
    const c = await run(['create', '--isolation=vm', '--network', 'container:vmnet-other', 'busybox', 'true']);
    expect(c.stderr).toContain('is not supported with --isolation=vm');
    await ok(['rm', '-f', 'vmnet-other']);
  });

  it('a VM on a user network serves a host container by name and a published port; inspect matches the guest; rm -f leaves nothing', async () => {
    // a host container the VM resolves by name
    await ok(['run', '-d', '--name', 'vmnet-hostweb', '--network', 'vmnet-user', 'busybox', 'sh', '-c', SERVE]);
    const id = await ok([
      'run',
      '-d',
      '--isolation=vm',
      '--name',
      'vmnet-web',
      '--network',
      'vmnet-user',
      '--network-alias',
      'vmalias',
      '-p',
      '18080:80',
      'busybox',
      'sh',
      '-c',
      SERVE,
    ]);
    const short = id.slice(0, 12);
    const ins = JSON.parse(await ok(['inspect', 'vmnet-web']))[0];
    expect(ins.HostConfig.Isolation).toBe('vm');
    const ep = ins.NetworkSettings.Networks['vmnet-user'];
    expect(ep.IPAddress).toMatch(/^10\.217\.0\.\d+$/);
    expect(ep.Gateway).toBe('10.217.0.1');
    expect(ep.MacAddress).toMatch(/^02:42:/);
    expect(ins.NetworkSettings.Ports['80/tcp']).toEqual([{ HostIp: '0.0.0.0', HostPort: '18080' }]);

    // the guest holds the endpoint's address, MAC and route; its /etc files name the network's DNS
    const inGuest = await ok([
      'exec',
      'vmnet-web',
      'sh',
      '-c',
      'busybox ip -4 addr show eth0; busybox ip link show eth0; busybox ip route; cat /etc/resolv.conf /etc/hosts; uname -r',
    ]);
    expect(inGuest).toContain(`inet ${ep.IPAddress}/24`);
    expect(inGuest).toContain(`link/ether ${ep.MacAddress}`);
    expect(inGuest).toContain('default via 10.217.0.1 dev eth0');
    expect(inGuest).toContain('nameserver 10.217.0.1');
    expect(inGuest).toContain(`${ep.IPAddress}\t${short}`);
    // the guest's own kernel, not the host's
    expect(inGuest.split('\n').pop()).not.toBe(os.release());

    // a host container resolves the VM's name and alias (the network's DNS) and reaches it over the bridge
    // (busybox's nslookup, then HTTP by address through nc: this host's static busybox wget
    // segfaults before it connects, between host containers too)
    const lookup = async (where: string[], name: string) =>
      (await ok([...where, 'busybox', 'nslookup', name]))
        .split('\n')
        .filter((l) => l.startsWith('Address:'))
        .pop();
    const fromHost = ['run', '--rm', '--network', 'vmnet-user', 'busybox'];
    expect(await lookup(fromHost, 'vmnet-web')).toBe(`Address: ${ep.IPAddress}`);
    expect(await lookup(fromHost, 'vmalias')).toBe(`Address: ${ep.IPAddress}`);
    const byAddr = await until(
      'the VM over the bridge',
      async () => {
        const r = await run([...fromHost, 'sh', '-c', httpGet(ep.IPAddress)]);
        lastError = `exit ${r.exitCode}: ${r.stdout} ${r.stderr}`;
        return r.exitCode === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
      },
      10,
    );
    expect(byAddr).toBe(`hello from ${short}`);
    // the VM resolves a host container by name (the embedded DNS on the gateway, over its NIC) and reaches it
    const hostweb = JSON.parse(await ok(['inspect', 'vmnet-hostweb']))[0];
    const hostwebIp = hostweb.NetworkSettings.Networks['vmnet-user'].IPAddress as string;
    expect(await lookup(['exec', 'vmnet-web'], 'vmnet-hostweb')).toBe(`Address: ${hostwebIp}`);
    expect(await ok(['exec', 'vmnet-web', 'sh', '-c', httpGet(hostwebIp)])).toBe(`hello from ${(hostweb.Id as string).slice(0, 12)}`);
    // the published port, from the host's loopback and to the VM's address directly
    expect(await curl('http://127.0.0.1:18080/')).toBe(`hello from ${short}`);
    expect(await curl(`http://${ep.IPAddress}/`)).toBe(`hello from ${short}`);

    // no hot-plug: connect is refused while it runs (and for a VM at all), disconnect while it runs
    const conn = await run(['network', 'connect', 'bridge', 'vmnet-web']);
    expect(conn.exitCode).not.toBe(0);
    expect(conn.stderr).toContain('runs with --isolation=vm: connecting it to another network is not supported');
    const disc = await run(['network', 'disconnect', 'vmnet-user', 'vmnet-web']);
    expect(disc.stderr).toContain('its NIC cannot be unplugged while it runs');

    // what the VM holds on the host: its supervisor (in the container's namespace), a veth
    const execRoot = d.execRoot;
    const supervisor = await supervisorOf(id);
    expect(supervisor, 'the VM supervisor process').toBeDefined();
    await ok(['rm', '-f', 'vmnet-web']);
    await until('the supervisor to exit', async () =>
      existsSync(`/proc/${supervisor}`) && !(await isZombie(supervisor!)) ? undefined : 'gone',
    );
    expect(await supervisorOf(id)).toBeUndefined();
    const nsDir = path.join(execRoot, 'netns');
    // no netns directory at all is as empty as one without this container's
    expect((await readdir(nsDir).catch(() => [] as string[])).filter((f) => f === id)).toEqual([]);
    const links = (await host(['ip', '-o', 'link'])).stdout;
    expect(links).not.toMatch(/tap0/);
    // only the host container's veth is left on the user network's bridge
    const rules = (await host(['iptables-save'])).stdout;
    expect(rules).not.toContain(ep.IPAddress);
    expect(rules).not.toContain('18080');
    await ok(['rm', '-f', 'vmnet-hostweb']);
    expect((await host(['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout.trim()).toBe('');
  }, 300_000);

  it('a VM defaults to the bridge; a killed supervisor takes QEMU, the tap and the namespace with it', async () => {
    const id = await ok(['run', '-d', '--isolation=vm', '--name', 'vmnet-default', 'busybox', 'sleep', '600']);
    const ins = JSON.parse(await ok(['inspect', 'vmnet-default']))[0];
    expect(ins.HostConfig.NetworkMode).toBe('bridge');
    const ip = ins.NetworkSettings.Networks.bridge.IPAddress as string;
    expect(ip).toMatch(/^10\.216\.0\.\d+$/);
    // the guest reaches the default bridge's gateway (the host's end)
    expect(await ok(['exec', 'vmnet-default', 'busybox', 'ping', '-c', '1', '-W', '5', '10.216.0.1'])).toContain('1 packets received');
    const supervisor = await supervisorOf(id);
    expect(supervisor).toBeDefined();
    const qemu = await childrenNamed(supervisor!, 'qemu-system');
    expect(qemu.length).toBe(1);
    process.kill(supervisor!, 'SIGKILL');
    await until(
      'the container to exit',
      async () => ((await ok(['inspect', '-f', '{{.State.Status}}', 'vmnet-default'])) === 'exited' ? 'yes' : undefined),
      150,
    );
    await until('QEMU to go', async () => (existsSync(`/proc/${qemu[0]}`) && !(await isZombie(qemu[0]!)) ? undefined : 'gone'));
    // the network goes right after the exit is recorded (the manager tears it down behind it)
    await until('the namespace to go', async () => (existsSync(path.join(d.execRoot, 'netns', id)) ? undefined : 'gone'));
    expect((await host(['iptables-save'])).stdout).not.toContain(`${ip}/`);
    // the address went back to the pool: the next container may take it
    expect(JSON.parse(await ok(['network', 'inspect', 'bridge']))[0].Containers[id]).toBeUndefined();
    await ok(['rm', 'vmnet-default']);
  }, 300_000);
});

/** Pids of the children of `pid` whose command line names `what`. */
async function childrenNamed(pid: number, what: string): Promise<number[]> {
  const out: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    // a process that exited meanwhile has no stat: it is no child of ours any more
    const stat = await readFile(`/proc/${e}/stat`, 'utf8').catch(() => '');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid !== pid) continue;
    // setpriv execs QEMU: the child's command line is QEMU's once it runs
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(what)) out.push(Number(e));
  }
  return out;
}

/** A shell line printing the body of http://ADDR/ (busybox nc; the body is the last line). */
function httpGet(addr: string): string {
  return `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 ${addr} 80 | busybox tail -n 1`;
}

/** The pid of the VM supervisor of container `id` (ours: its command line names the id's state dir). */
async function supervisorOf(id: string): Promise<number | undefined> {
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    // a process that exited meanwhile has no command line: it is not the supervisor
    const cmd = await readFile(`/proc/${e}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes('supervisor-main') && cmd.includes(id)) return Number(e);
  }
  return undefined;
}

async function isZombie(pid: number): Promise<boolean> {
  // no stat: the process is gone, as good as a zombie for the callers' wait
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
}
