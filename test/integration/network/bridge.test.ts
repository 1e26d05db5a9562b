/**
 * Bridge networks with the real docker CLI against a real tvm daemon that runs in a network
 * namespace this test makes (see startTestDaemon's `network`): the default bridge, user-defined
 * networks, published ports, Docker's errors, a daemon restart, and nothing left behind. All
 * traffic stays on that namespace's loopback and bridges.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { startTestDaemon, missingRealParts, requireDocker, type TestDaemon } from '../../fixtures/daemon.js';
import { busyboxDockerArchive } from '../../fixtures/fake-images.js';
import { busyboxRootfsEntries, packTar } from '../../fixtures/rootfs.js';
import { buildStaticProgram } from '../../fixtures/tcg.js';

const UDP_ECHO = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../fixtures/guest-programs/udp-echo.c');
/** One datagram to argv[1]:argv[2]; prints the answer, or fails after 1 s. */
const UDP_CLIENT_JS = `const s = require('dgram').createSocket('udp4');
const [host, port] = process.argv.slice(1);
s.on('message', (m) => { console.log(m.toString()); process.exit(0); });
s.send('ping', Number(port), host);
setTimeout(() => { console.error('no answer'); process.exit(1); }, 1000);`;

const SERVE = 'mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec busybox httpd -f -p 80 -h /www';

describe('bridge networks (docker CLI, daemon in its own network namespace)', () => {
  let d: TestDaemon;
  let tmp: string;
  const run = (args: string[]) => d.docker(args);
  /** a command in the daemon's network namespace (the test's "host") */
  const host = (cmd: string[]) => execa('nsenter', [`--net=${path.join(path.dirname(d.dataRoot), 'netns')}`, ...cmd], { reject: false });
  const ok = async (args: string[]) => {
    const r = await run(args);
    expect(r.exitCode, `docker ${args.join(' ')}: ${r.stderr}`).toBe(0);
    return r.stdout.trim();
  };
  const fetch = async (url: string) => {
    for (let i = 0; i < 50; i++) {
      const r = await host(['curl', '-sS', '-m', '2', url]);
      if (r.exitCode === 0) return r.stdout.trim();
      await new Promise((res) => setTimeout(res, 100));
    }
    return undefined;
  };

  beforeAll(async () => {
    requireDocker();
    const missing = missingRealParts();
    if (missing.length > 0) throw new Error(`the real daemon needs parts that are missing: ${missing.join(', ')}`);
    d = await startTestDaemon({ network: true, daemonArgs: ['--bip', '10.213.0.1/24'] });
    tmp = await mkdtemp(path.join(os.tmpdir(), 'tvm-net-'));
    await writeFile(path.join(tmp, 'busybox.tar'), await busyboxDockerArchive('busybox:latest', { ExposedPorts: { '80/tcp': {} } }));
    await ok(['load', '-i', path.join(tmp, 'busybox.tar')]);
  }, 120_000);
  afterAll(async () => {
    if (d) {
      // the daemon's log, when a failure needs it
      if (process.env.TVM_NET_DEBUG) process.stderr.write(d.logs());
      const ids = (await run(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length > 0) await run(['rm', '-f', ...ids]);
      await d.destroy();
    }
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('lists the default bridge, host and none; containers default to the bridge', async () => {
    expect((await ok(['network', 'ls', '--format', '{{.Name}} {{.Driver}}'])).split('\n').sort()).toEqual([
      'bridge bridge',
      'host host',
      'none null',
    ]);
    const inspect = JSON.parse(await ok(['network', 'inspect', 'bridge']))[0];
    expect(inspect.IPAM.Config).toEqual([{ Subnet: '10.213.0.0/24', Gateway: '10.213.0.1' }]);
    expect(inspect.Options['com.docker.network.bridge.name']).toBe('tvm0');
    const out = await ok(['run', '--rm', 'busybox', 'sh', '-c', 'busybox ip -4 addr show eth0; busybox ip route; cat /etc/hosts']);
    expect(out).toMatch(/inet 10\.213\.0\.\d+\/24/);
    expect(out).toContain('default via 10.213.0.1 dev eth0');
    expect(out).toMatch(/10\.213\.0\.\d+\t[0-9a-f]{12}/);
    // the gateway (the host's end) answers
    expect(await ok(['run', '--rm', 'busybox', 'busybox', 'ping', '-c', '1', '-W', '2', '10.213.0.1'])).toContain('1 packets received');
    // --network none and host keep working
    expect(await ok(['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'busybox ip -o link | busybox wc -l'])).toBe('1');
    const add = await ok(['run', '--rm', '--add-host', 'gw:host-gateway', 'busybox', 'grep', 'gw', '/etc/hosts']);
    expect(add).toBe('10.213.0.1\tgw');
  });

  it("--network container:<name> joins a running container's namespace, with Docker's conflicts", async () => {
    const id = await ok(['run', '-d', '--name', 'cweb', 'busybox', 'sh', '-c', SERVE]);
    expect(
      await ok(['run', '--rm', '--network', 'container:cweb', 'busybox', 'sh', '-c', 'busybox wget -qO- http://127.0.0.1/; hostname']),
    ).toBe(`hello from ${id.slice(0, 12)}\n${id.slice(0, 12)}`);
    const c = await run(['run', '--rm', '--network', 'container:cweb', '-p', '8080:80', 'busybox', 'true']);
    expect(c.stderr).toContain('conflicting options: port publishing and the container type network mode');
    expect(await ok(['ps', '--filter', 'network=bridge', '--format', '{{.Names}}'])).toBe('cweb');
    await ok(['stop', '-t', '0', 'cweb']);
    await ok(['create', '--name', 'joiner', '--network', 'container:cweb', 'busybox', 'true']);
    const dead = await run(['start', 'joiner']);
    expect(dead.stderr).toContain(`cannot join network of a non running container: ${id}`);
    await ok(['rm', '-f', 'joiner', 'cweb']);
  });

  it('inspect shows NetworkSettings of a running container; publishes ports on 127.0.0.1 and the host addresses', async () => {
    const id = await ok(['run', '-d', '--name', 'web', '-p', '18080:80', '-p', '127.0.0.1::80', 'busybox', 'sh', '-c', SERVE]);
    const ns = JSON.parse(await ok(['inspect', id]))[0].NetworkSettings;
    expect(ns.IPAddress).toMatch(/^10\.213\.0\.\d+$/);
    expect(ns.Gateway).toBe('10.213.0.1');
    expect(ns.MacAddress).toMatch(/^02:42:/);
    expect(ns.Networks.bridge.IPAddress).toBe(ns.IPAddress);
    expect(ns.Ports['80/tcp']).toContainEqual({ HostIp: '0.0.0.0', HostPort: '18080' });
    const port = (await ok(['port', 'web', '80'])).split('\n');
    expect(port).toContain('0.0.0.0:18080');
    const lo = port.find((p) => p.startsWith('127.0.0.1:'))!;
    expect(lo).toBeDefined();
    expect(await fetch(`http://127.0.0.1:18080/`)).toBe(`hello from ${id.slice(0, 12)}`);
    expect(await fetch(`http://10.213.0.1:18080/`)).toBe(`hello from ${id.slice(0, 12)}`);
    expect(await fetch(`http://${lo}/`)).toBe(`hello from ${id.slice(0, 12)}`);
    // the container's own address from the host
    expect(await fetch(`http://${ns.IPAddress}/`)).toBe(`hello from ${id.slice(0, 12)}`);
    // a port tvm has given out: Docker's error, and the container is not started
    const clash = await run(['run', '-d', '--name', 'clash', '-p', '18080:80', 'busybox', 'sleep', '30']);
    expect(clash.exitCode).not.toBe(0);
    expect(clash.stderr).toContain('Bind for 0.0.0.0:18080 failed: port is already allocated');
    expect(await ok(['inspect', '-f', '{{.State.Status}}', 'clash'])).toBe('created');
    await ok(['rm', 'clash']);
    // -P: every exposed port on a free host port
    const p = await ok(['run', '-d', '-P', 'busybox', 'sh', '-c', SERVE]);
    const hp = await ok(['port', p, '80/tcp']);
    expect(hp).toMatch(/^0\.0\.0\.0:\d+$/);
    expect(await fetch(`http://127.0.0.1:${hp.split(':')[1]}/`)).toBe(`hello from ${p.slice(0, 12)}`);
    // a host port range for one container port: a free one of the range; --expose adds to -P's set
    const r = await ok(['run', '-d', '-p', '18090-18092:80', '--expose', '81', '-P', 'busybox', 'sh', '-c', SERVE]);
    const inRange = await ok(['port', r, '80/tcp']);
    expect(inRange.split('\n').some((l) => /^0\.0\.0\.0:1809[0-2]$/.test(l))).toBe(true);
    const ranged = inRange.split('\n').find((l) => /^0\.0\.0\.0:1809[0-2]$/.test(l))!;
    expect(await fetch(`http://127.0.0.1:${ranged.split(':')[1]}/`)).toBe(`hello from ${r.slice(0, 12)}`);
    expect(await ok(['port', r, '81/tcp'])).toMatch(/^0\.0\.0\.0:\d+$/);
    await ok(['rm', '-f', id, p, r]);
  });

  it('publishes UDP ports: -p host:container/udp on every address and on 127.0.0.1', async () => {
    await writeFile(
      path.join(tmp, 'udpecho.tar'),
      await packTar([...busyboxRootfsEntries(), { name: 'udp-echo', mode: 0o755, content: buildStaticProgram(UDP_ECHO, tmp) }]),
    );
    await ok(['import', path.join(tmp, 'udpecho.tar'), 'udpecho:1']);
    const id = await ok(['run', '-d', '-p', '18053:5353/udp', '-p', '127.0.0.1::5353/udp', 'udpecho:1', '/udp-echo', '5353']);
    const ports = (await ok(['port', id, '5353/udp'])).split('\n');
    expect(ports).toContain('0.0.0.0:18053');
    const lo = ports.find((p) => p.startsWith('127.0.0.1:'))!;
    expect(lo).toBeDefined();
    const ask = async (host: string, port: string) => {
      for (let i = 0; i < 30; i++) {
        const r = await execa(
          'nsenter',
          [`--net=${path.join(path.dirname(d.dataRoot), 'netns')}`, process.execPath, '-e', UDP_CLIENT_JS, host, port],
          {
            reject: false,
          },
        );
        if (r.exitCode === 0) return r.stdout.trim();
      }
      return undefined;
    };
    expect(await ask('127.0.0.1', '18053')).toBe('echo ping');
    expect(await ask('10.213.0.1', '18053')).toBe('echo ping');
    expect(await ask('127.0.0.1', lo.split(':')[1]!)).toBe('echo ping');
    await ok(['rm', '-f', id]);
    await ok(['rmi', 'udpecho:1']);
  });

  it("a host port another process holds is refused with Docker's error before the container starts", async () => {
    const holder = execa('nsenter', [`--net=${path.join(path.dirname(d.dataRoot), 'netns')}`, 'busybox', 'nc', '-l', '-p', '18090'], {
      reject: false,
    });
    try {
      for (let i = 0; i < 50 && !(await host(['busybox', 'sh', '-c', 'busybox netstat -ltn | grep -q :18090'])).exitCode === false; i++)
        await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 300));
      const r = await run(['run', '-d', '--name', 'busy', '-p', '18090:80', 'busybox', 'sleep', '30']);
      expect(r.exitCode).not.toBe(0);
      expect(r.stderr).toContain('Error starting userland proxy: listen tcp4 0.0.0.0:18090: bind: address already in use');
      expect(await ok(['inspect', '-f', '{{.State.Status}}', 'busy'])).toBe('created');
      await ok(['rm', 'busy']);
    } finally {
      holder.kill('SIGKILL');
      await holder;
    }
  });

  it("user-defined networks: subnet, static ip, isolation, internal, connect/disconnect, Docker's errors", async () => {
    expect(await ok(['network', 'create', '--subnet', '10.214.0.0/24', '--gateway', '10.214.0.254', '--label', 'team=a', 'neta'])).toMatch(
      /^[0-9a-f]{64}$/,
    );
    await ok(['network', 'create', '--subnet', '10.215.0.0/24', '-o', 'com.docker.network.bridge.name=tvm-netb', 'netb']);
    await ok(['network', 'create', '--internal', '--subnet', '10.216.0.0/24', 'netc']);
    const errs: [string[], string][] = [
      [['network', 'create', 'neta'], 'network with name neta already exists'],
      [['network', 'create', '--subnet', '10.214.0.128/25', 'over'], 'Pool overlaps with other one on this address space'],
      [['network', 'create', '--subnet', '10.300.0.0/24', 'bad'], 'invalid subnet 10.300.0.0/24: invalid CIDR block notation'],
      [['network', 'create', '--subnet', '10.217.0.0/24', '--gateway', '10.218.0.1', 'bad'], 'no matching subnet for gateway 10.218.0.1'],
      [['network', 'inspect', 'nope'], 'network nope not found'],
      [['run', '--rm', '--ip', '10.213.0.50', 'busybox', 'true'], 'user specified IP address is supported on user defined networks only'],
      [['network', 'rm', 'bridge'], 'bridge is a pre-defined network and cannot be removed'],
    ];
    for (const [args, msg] of errs) {
      const r = await run(args);
      expect(r.exitCode, args.join(' ')).not.toBe(0);
      expect(r.stderr).toContain(msg);
    }
    expect(await ok(['network', 'ls', '--filter', 'label=team=a', '--format', '{{.Name}}'])).toBe('neta');
    await ok(['create', '--name', 'idle', 'busybox', 'true']);
    expect((await run(['network', 'connect', 'nope', 'idle'])).stderr).toContain('network nope not found');
    await ok(['rm', 'idle']);
    expect(await ok(['network', 'ls', '-q', '--filter', 'name=nope'])).toBe('');

    const a1 = await ok(['run', '-d', '--name', 'a1', '--network', 'neta', '--ip', '10.214.0.10', 'busybox', 'sh', '-c', SERVE]);
    const b1 = await ok(['run', '-d', '--name', 'b1', '--network', 'netb', 'busybox', 'sh', '-c', SERVE]);
    expect(await ok(['inspect', '-f', '{{.NetworkSettings.Networks.neta.IPAddress}}', a1])).toBe('10.214.0.10');
    const bIp = await ok(['inspect', '-f', '{{.NetworkSettings.Networks.netb.IPAddress}}', b1]);
    // same network: reachable; other network: isolated
    expect(await ok(['run', '--rm', '--network', 'neta', 'busybox', 'busybox', 'wget', '-qO-', 'http://10.214.0.10/'])).toBe(
      `hello from ${a1.slice(0, 12)}`,
    );
    const iso = await run(['run', '--rm', '--network', 'neta', 'busybox', 'busybox', 'wget', '-qO-', '-T', '2', `http://${bIp}/`]);
    expect(iso.exitCode).not.toBe(0);
    // internal: no route out of its subnet
    const internal = await run([
      'run',
      '--rm',
      '--network',
      'netc',
      'busybox',
      'busybox',
      'wget',
      '-qO-',
      '-T',
      '2',
      'http://10.214.0.10/',
    ]);
    expect(internal.exitCode).not.toBe(0);
    const net = JSON.parse(await ok(['network', 'inspect', 'neta']))[0];
    expect(net.IPAM.Config).toEqual([{ Subnet: '10.214.0.0/24', Gateway: '10.214.0.254' }]);
    expect(net.Containers[a1]).toMatchObject({ Name: 'a1', IPv4Address: '10.214.0.10/24' });
    expect(net.Labels).toEqual({ team: 'a' });
    // an address taken
    const taken = await run(['run', '--rm', '--network', 'neta', '--ip', '10.214.0.10', 'busybox', 'true']);
    expect(taken.stderr).toContain('Address already in use');
    // the network's embedded DNS: names, --network-alias, short ids; nothing of other networks
    await ok(['run', '-d', '--name', 'a2', '--network', 'neta', '--network-alias', 'db', 'busybox', 'sleep', '60']);
    const a2Ip = await ok(['inspect', '-f', '{{.NetworkSettings.Networks.neta.IPAddress}}', 'a2']);
    const lookup = async (name: string) => (await run(['exec', a1, 'busybox', 'nslookup', name])).stdout;
    expect(await ok(['exec', a1, 'cat', '/etc/resolv.conf'])).toContain('nameserver 127.0.0.11');
    expect(await lookup('a2')).toContain(`Address: ${a2Ip}`);
    expect(await lookup('db')).toContain(`Address: ${a2Ip}`);
    expect(await lookup(a1.slice(0, 12))).toContain('Address: 10.214.0.10');
    expect(JSON.parse(await ok(['inspect', 'a2']))[0].NetworkSettings.Networks.neta.Aliases).toEqual(['db']);
    await ok(['rm', '-f', 'a2']);
    // the gateway's MAC is fixed: a port leaving must not change it under the others' ARP caches
    expect((await host(['ip', '-j', 'link', 'show', 'dev', `br-${net.Id.slice(0, 12)}`])).stdout).toContain(
      '"address":"02:42:0a:d6:00:fe"',
    );
    // connect a running container to a second network, then disconnect it
    await ok(['network', 'connect', 'netb', a1]);
    expect(await ok(['exec', a1, 'busybox', 'wget', '-qO-', `http://${bIp}/`])).toBe(`hello from ${b1.slice(0, 12)}`);
    const lb = await lookup('b1');
    expect(lb).toContain(`Address: ${bIp}`);
    expect((await run(['network', 'connect', 'netb', a1])).stderr).toContain('endpoint with name a1 already exists in network netb');
    await ok(['network', 'disconnect', 'netb', a1]);
    expect((await run(['exec', a1, 'busybox', 'ip', '-o', 'link', 'show', 'eth1'])).exitCode).not.toBe(0);
    const inUse = await run(['network', 'rm', 'neta']);
    expect(inUse.stderr).toMatch(/error while removing network: network neta id [0-9a-f]{64} has active endpoints/);
    await ok(['rm', '-f', a1, b1]);
    await ok(['network', 'rm', 'neta', 'netc']);
    expect(await ok(['network', 'prune', '-f'])).toContain('netb');
    expect((await ok(['network', 'ls', '--format', '{{.Name}}'])).split('\n').sort()).toEqual(['bridge', 'host', 'none']);
  });

  it('docker build: RUN steps join the default bridge as with dockerd, or none when asked', async () => {
    const ctx = path.join(tmp, 'build-net');
    await mkdir(ctx, { recursive: true });
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      'FROM busybox\nRUN if grep -q eth0 /proc/net/dev; then echo bridged; else echo none; fi > /net\n',
    );
    await ok(['build', '-q', '-t', 'netbuild:default', ctx]);
    expect(await ok(['run', '--rm', 'netbuild:default', 'cat', '/net'])).toBe('bridged');
    // the network is not part of the cache key (as dockerd's): a fresh build to see it
    await ok(['build', '-q', '--no-cache', '--network', 'none', '-t', 'netbuild:none', ctx]);
    expect(await ok(['run', '--rm', 'netbuild:none', 'cat', '/net'])).toBe('none');
    const bad = await run(['build', '-q', '--no-cache', '--network', 'nosuchnet', ctx]);
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/network nosuchnet not found/);
    await ok(['rmi', 'netbuild:default', 'netbuild:none']);
  });

  it('survives a daemon restart; leaves nothing behind once containers and networks are gone', async () => {
    await ok(['network', 'create', '--subnet', '10.219.0.0/24', 'keep']);
    const id = await ok(['run', '-d', '--name', 'k1', '--network', 'keep', '-p', '18100:80', 'busybox', 'sh', '-c', SERVE]);
    await d.stop();
    // what a crashed daemon could leave: a veth on our bridge, a namespace of no running container
    const add = await host(['ip', 'link', 'add', 'tv0123456789a', 'type', 'veth', 'peer', 'name', 'tvpeer0']);
    expect(add.exitCode, add.stderr).toBe(0);
    expect((await host(['ip', 'link', 'set', 'tv0123456789a', 'master', 'tvm0'])).exitCode).toBe(0);
    const stray = path.join(d.execRoot, 'netns', 'f'.repeat(64));
    await writeFile(stray, '');
    expect((await execa('unshare', [`--net=${stray}`, 'true'], { reject: false })).exitCode).toBe(0);
    await d.start();
    expect((await host(['ip', 'link', 'show', 'tv0123456789a'])).exitCode).not.toBe(0);
    expect(await readdir(path.join(d.execRoot, 'netns'))).toEqual([id]);
    expect(await ok(['network', 'ls', '--format', '{{.Name}}'])).toContain('keep');
    expect(await fetch('http://127.0.0.1:18100/')).toBe(`hello from ${id.slice(0, 12)}`);
    await ok(['stop', '-t', '1', id]);
    // a stopped container holds no address, veth or namespace
    expect(await ok(['inspect', '-f', '{{.NetworkSettings.Networks.keep.IPAddress}}', id])).toBe('');
    await ok(['start', id]);
    expect(await fetch('http://127.0.0.1:18100/')).toBe(`hello from ${id.slice(0, 12)}`);
    await ok(['rm', '-f', id]);
    await ok(['network', 'rm', 'keep']);
    const links = (await host(['ip', '-o', 'link'])).stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => l.split(': ')[1]!.split('@')[0]);
    expect(links.sort()).toEqual(['lo', 'tvm0']);
    // no netns directory at all is as empty as one with no files
    expect(await readdir(path.join(d.execRoot, 'netns')).catch(() => [])).toEqual([]);
    const rules = (await host(['iptables-save', '-t', 'nat'])).stdout;
    expect(rules).not.toContain('-j DNAT');
  });
});
