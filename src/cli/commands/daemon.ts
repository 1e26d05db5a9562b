/** `tvm daemon`: serves the Docker Engine API. */
import { Command, Option } from 'commander';
import type { IsolationKind } from '../../runtime/types.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('Serve the Docker Engine API (docker CLI: DOCKER_HOST=unix:///run/tvm/tvm.sock)')
    .option('-H, --host <addr>', 'listen on unix:///path or tcp://host:port (repeatable)', collect, [])
    .option('--data-root <dir>', 'persistent state: images, disks, containers, volumes', '/var/lib/tvm')
    .option('--exec-root <dir>', 'runtime state: pid file, supervisor sockets', '/run/tvm')
    .addOption(new Option('--default-isolation <kind>', 'isolation for containers that ask for "default"').choices(['vm', 'container']).default('container'))
    .option('--group <group>', 'group owning the unix socket (mode 0660)')
    .option('--tlsverify', 'require client certificates signed by --tlscacert (TCP)')
    .option('--tls', 'serve TCP over TLS without verifying clients')
    .option('--tlscacert <file>', 'CA for client certificates')
    .option('--tlscert <file>', 'server certificate')
    .option('--tlskey <file>', 'server key')
    .option('--insecure-tcp', 'allow plain TCP without TLS (anyone reaching it is root)')
    .option('--insecure-registry <host>', 'registry reachable over plain HTTP (repeatable)', collect, [])
    .action(async (o: {
      host: string[]; dataRoot: string; execRoot: string; defaultIsolation: IsolationKind; group?: string; tlsverify?: boolean; tls?: boolean;
      tlscacert?: string; tlscert?: string; tlskey?: string; insecureTcp?: boolean; insecureRegistry: string[];
    }) => {
      // Loaded on use: the daemon pulls in fastify and every part; other commands need none of it.
      const { DEFAULT_HOST, runDaemon } = await import('../../daemon/daemon.js');
      const tlsOn = o.tlsverify === true || o.tls === true || o.tlscert !== undefined;
      await runDaemon({
        hosts: o.host.length > 0 ? o.host : [DEFAULT_HOST],
        dataRoot: o.dataRoot,
        execRoot: o.execRoot,
        defaultIsolation: o.defaultIsolation,
        ...(o.group !== undefined && { group: o.group }),
        ...(tlsOn && { tls: { verify: o.tlsverify === true, ...(o.tlscacert && { ca: o.tlscacert }), ...(o.tlscert && { cert: o.tlscert }), ...(o.tlskey && { key: o.tlskey }) } }),
        ...(o.insecureTcp && { insecureTcp: true }),
        ...(o.insecureRegistry.length > 0 && { insecureRegistries: o.insecureRegistry }),
      });
    });
}
