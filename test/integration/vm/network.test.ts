/**
 * --isolation=vm on bridge networks, through the docker CLI against a real tvm daemon in a
 * network namespace of its own (startTestDaemon's `network`): the VM's virtio-net NIC (tvm's
 * device, over vhost-user under TCG) on a tap joined by tc to the container's veth. One VM,
 * many checks: it serves HTTP on a user network, reached by name and alias from a host
 * container and through a published port; it resolves a host container by name; inspect shows
 * its address and MAC, which the guest holds; `docker network connect`/`disconnect` while it
 * runs (eth1 comes and goes in the guest) and before it starts; Docker's refusals; nothing
 * left after rm -f.
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

  /** HTTP GET of addr from a container run with `where`, retried: the server may still be starting */
  const httpFrom = (where: string[], addr: string, what: string) =>
    until(
      what,
      async () => {
        const r = await run([...where, 'sh', '-c', httpGet(addr)]);
        lastError = `exit ${r.exitCode}: ${r.stdout} ${r.stderr}`;
        return r.exitCode === 0 && r.stdout.trim() !== '' ? r.stdout.trim() : undefined;
      },
      10,
    );

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
    expect(await httpFrom(fromHost, ep.IPAddress, 'the VM over the bridge')).toBe(`hello from ${short}`);
    // the VM resolves a host container by name (the embedded DNS on the gateway, over its NIC) and reaches it
    const hostweb = JSON.parse(await ok(['inspect', 'vmnet-hostweb']))[0];
    const hostwebIp = hostweb.NetworkSettings.Networks['vmnet-user'].IPAddress as string;
    expect(await lookup(['exec', 'vmnet-web'], 'vmnet-hostweb')).toBe(`Address: ${hostwebIp}`);
    expect(await ok(['exec', 'vmnet-web', 'sh', '-c', httpGet(hostwebIp)])).toBe(`hello from ${(hostweb.Id as string).slice(0, 12)}`);
    // the published port, from the host's loopback and to the VM's address directly
    expect(await curl('http://127.0.0.1:18080/')).toBe(`hello from ${short}`);
    expect(await curl(`http://${ep.IPAddress}/`)).toBe(`hello from ${short}`);

    // docker network connect while it runs: eth1 appears in the guest (a macvlan on its NIC) with
    // the endpoint's MAC and address; the VM and that network's containers reach each other
    await ok(['network', 'create', '--subnet', '10.218.0.0/24', 'vmnet-second']);
    await ok(['run', '-d', '--name', 'vmnet-second-web', '--network', 'vmnet-second', 'busybox', 'sh', '-c', SERVE]);
    await ok(['network', 'connect', '--alias', 'vmsecond', 'vmnet-second', 'vmnet-web']);
    const ep2 = JSON.parse(await ok(['inspect', 'vmnet-web']))[0].NetworkSettings.Networks['vmnet-second'];
    expect(ep2.IPAddress).toMatch(/^10\.218\.0\.\d+$/);
    const eth1 = await ok(['exec', 'vmnet-web', 'sh', '-c', 'busybox ip -4 addr show eth1; busybox ip link show eth1; busybox ip route']);
    expect(eth1).toContain(`inet ${ep2.IPAddress}/24`);
    expect(eth1).toContain(`link/ether ${ep2.MacAddress}`);
    // the first network keeps the default route, as with Docker
    expect(eth1).toContain('default via 10.217.0.1 dev eth0');
    const second = JSON.parse(await ok(['inspect', 'vmnet-second-web']))[0];
    const secondIp = second.NetworkSettings.Networks['vmnet-second'].IPAddress as string;
    expect(await ok(['exec', 'vmnet-web', 'sh', '-c', httpGet(secondIp)])).toBe(`hello from ${(second.Id as string).slice(0, 12)}`);
    const fromSecond = ['run', '--rm', '--network', 'vmnet-second', 'busybox'];
    expect(await lookup(fromSecond, 'vmsecond')).toBe(`Address: ${ep2.IPAddress}`);
    expect(await ok([...fromSecond, 'sh', '-c', httpGet(ep2.IPAddress)])).toBe(`hello from ${short}`);
    expect(await curl(`http://${ep.IPAddress}/`)).toBe(`hello from ${short}`);

    // disconnect: eth1 goes from the guest, the second network no longer reaches the VM
    await ok(['network', 'disconnect', 'vmnet-second', 'vmnet-web']);
    expect(await ok(['exec', 'vmnet-web', 'busybox', 'ip', '-o', 'link'])).not.toContain('eth1');
    // (from the container already there: a new one would be given the address just released)
    const cut = await run(['exec', 'vmnet-second-web', 'busybox', 'ping', '-c', '1', '-W', '2', ep2.IPAddress]);
    expect(cut.exitCode).not.toBe(0);
    expect(await curl(`http://${ep.IPAddress}/`)).toBe(`hello from ${short}`);

    // the first network too (the NIC stays, without an address), then back: eth0 again
    await ok(['network', 'disconnect', 'vmnet-user', 'vmnet-web']);
    expect(await ok(['exec', 'vmnet-web', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).toBe('');
    await ok(['network', 'connect', 'vmnet-user', 'vmnet-web']);
    const ep3 = JSON.parse(await ok(['inspect', 'vmnet-web']))[0].NetworkSettings.Networks['vmnet-user'];
    expect(await ok(['exec', 'vmnet-web', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth0'])).toContain(`inet ${ep3.IPAddress}/24`);
    expect(await curl(`http://${ep3.IPAddress}/`)).toBe(`hello from ${short}`);

    // a network connected while it is stopped is there at the next boot, before the workload runs
    await ok(['stop', '-t', '1', 'vmnet-web']);
    await ok(['network', 'connect', 'vmnet-second', 'vmnet-web']);
    await ok(['start', 'vmnet-web']);
    const ep4 = JSON.parse(await ok(['inspect', 'vmnet-web']))[0].NetworkSettings.Networks['vmnet-second'];
    expect(await ok(['exec', 'vmnet-web', 'busybox', 'ip', '-4', '-o', 'addr', 'show', 'eth1'])).toContain(`inet ${ep4.IPAddress}/24`);
    expect(await httpFrom(fromSecond, ep4.IPAddress, 'the rebooted VM on the second network')).toBe(`hello from ${short}`);
    await ok(['rm', '-f', 'vmnet-second-web']);

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
    expect(rules).not.toContain(ep3.IPAddress);
    expect(rules).not.toContain('18080');
    await ok(['rm', '-f', 'vmnet-hostweb']);
    expect((await host(['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout.trim()).toBe('');
  }, 300_000);

  it('a VM on an --internal network resolves its peers by name (the network has no route, its DNS is on the subnet)', async () => {
    await ok(['network', 'create', '--internal', '--subnet', '10.219.0.0/24', 'vmnet-int']);
    await ok(['run', '-d', '--name', 'vmnet-int-peer', '--network', 'vmnet-int', 'busybox', 'sleep', '600']);
    const peer = JSON.parse(await ok(['inspect', 'vmnet-int-peer']))[0].NetworkSettings.Networks['vmnet-int'].IPAddress as string;
    const out = await ok([
      'run',
      '--rm',
      '--isolation=vm',
      '--network',
      'vmnet-int',
      'busybox',
      'sh',
      '-c',
      'cat /etc/resolv.conf; busybox ip route; busybox nslookup vmnet-int-peer',
    ]);
    expect(out).toContain('nameserver 10.219.0.1');
    expect(out).not.toContain('default via');
    expect(
      out
        .split('\n')
        .filter((l) => l.startsWith('Address:'))
        .pop(),
    ).toBe(`Address: ${peer}`);
    await ok(['rm', '-f', 'vmnet-int-peer']);
    await ok(['network', 'rm', 'vmnet-int']);
  }, 120_000);

  it('a VM defaults to the bridge; a killed supervisor takes QEMU, the tap and the namespace with it', async () => {
    // a daemon keeps a standby supervisor once it has started a VM (run alone, this test starts one first)
    if (!existsSync(path.join(d.dataRoot, 'vm', 'standby.log')))
      await ok(['run', '--rm', '--isolation=vm', '--network', 'none', 'busybox', 'true']);
    const id = await ok(['run', '-d', '--isolation=vm', '--name', 'vmnet-default', 'busybox', 'sleep', '600']);
    // not this daemon's first VM: a standby supervisor took it, entering its network namespace
    // for the tap (standby.ts); ps shows it under the container's state dir all the same
    expect(await readFile(path.join(d.dataRoot, 'containers', id, 'supervisor.log'), 'utf8')).toContain(
      'a standby supervisor takes this container',
    );
    const ins = JSON.parse(await ok(['inspect', 'vmnet-default']))[0];
    expect(ins.HostConfig.NetworkMode).toBe('bridge');
    const ip = ins.NetworkSettings.Networks.bridge.IPAddress as string;
    expect(ip).toMatch(/^10\.216\.0\.\d+$/);
    // the guest reaches the default bridge's gateway (the host's end)
    expect(await ok(['exec', 'vmnet-default', 'busybox', 'ping', '-c', '1', '-W', '5', '10.216.0.1'])).toContain('1 packets received');
    // its first user network while it runs brings the network's DNS: resolv.conf is rebuilt in the guest
    expect(await ok(['exec', 'vmnet-default', 'cat', '/etc/resolv.conf'])).not.toContain('nameserver 10.217.0.1');
    await ok(['network', 'connect', 'vmnet-user', 'vmnet-default']);
    expect(await ok(['exec', 'vmnet-default', 'cat', '/etc/resolv.conf'])).toMatch(/^nameserver 10\.217\.0\.1$/m);
    const userIp = JSON.parse(await ok(['inspect', 'vmnet-default']))[0].NetworkSettings.Networks['vmnet-user'].IPAddress as string;
    expect(await ok(['exec', 'vmnet-default', 'busybox', 'nslookup', 'vmnet-default'])).toContain(`Address: ${userIp}`);
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
