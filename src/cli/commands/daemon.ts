/** `tvm daemon`: serves the Docker Engine API. */
import { Command, Option } from 'commander';
import type { IsolationKind } from '../../runtime/types.js';
import { InvalidParameterError } from '../../errors.js';
import { parseBytes } from '../units.js';
import { collect } from '../options.js';
import { parseLogOptFlags, parseLogOpts } from '../../runtime/log-opts.js';

const MIN_BASE_DISK_SIZE = 64 * 1024 * 1024;

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('Serve the Docker Engine API (docker CLI: DOCKER_HOST=unix:///run/tvm/tvm.sock)')
    .option('-H, --host <addr>', 'listen on unix:///path or tcp://host:port (repeatable)', collect, [])
    .option('--data-root <dir>', 'persistent state: images, disks, containers, volumes', '/var/lib/tvm')
    .option('--exec-root <dir>', 'runtime state: pid file, supervisor sockets', '/run/tvm')
    .addOption(
      new Option('--default-isolation <kind>', 'isolation for containers that ask for "default"')
        .choices(['vm', 'container'])
        .default('container'),
    )
    .option('--group <group>', 'group owning the unix socket (mode 0660); default: docker, if that group exists')
    .option('--tlsverify', 'require client certificates signed by --tlscacert (TCP)')
    .option('--tls', 'serve TCP over TLS without verifying clients')
    .option('--tlscacert <file>', 'CA for client certificates')
    .option('--tlscert <file>', 'server certificate')
    .option('--tlskey <file>', 'server key')
    .option('--insecure-tcp', 'allow plain TCP without TLS (anyone reaching it is root)')
    .option(
      '--storage-opt <k=v>',
      'storage driver option: size=<bytes|k|m|g> sets the virtual size of image base disks (repeatable)',
      collect,
      [],
    )
    .option('--insecure-registry <host>', 'registry reachable over plain HTTP (repeatable)', collect, [])
    .option('--max-concurrent-downloads <n>', 'layer downloads at once per pull', parseDownloads, 3)
    .option('--log-opt <k=v>', 'default json-file log option for containers: max-size=10m, max-file=3 (repeatable)', collect, [])
    .addOption(
      new Option(
        '--vm-backend <kind>',
        "who runs the vCPUs of --isolation=vm containers: kvm (tvm's VMM on /dev/kvm), tcg (QEMU's software CPU with tvm's devices over vhost-user), auto",
      )
        .choices(['kvm', 'tcg', 'auto'])
        .default('auto'),
    )
    .option(
      '--userns-remap <user[:group]>',
      'run containers in user namespaces: default (user dockremap, created if absent), user, user:group, uid or uid:gid (ranges from /etc/subuid, /etc/subgid)',
    )
    .option(
      '-b, --bridge <name>',
      'device of the default bridge network; "none": no default bridge (containers default to --network none)',
      'tvm0',
    )
    .option(
      '--bip <addr/prefix>',
      "the default bridge's address and prefix, e.g. 172.17.0.1/16 (default: the first pool subnet no host route uses)",
    )
    .option(
      '--default-address-pool <base=cidr,size=n>',
      "pool subnets of new networks are taken from (repeatable; default Docker's)",
      collect,
      [],
    )
    .action(
      async (o: {
        host: string[];
        dataRoot: string;
        execRoot: string;
        defaultIsolation: IsolationKind;
        group?: string;
        tlsverify?: boolean;
        tls?: boolean;
        tlscacert?: string;
        tlscert?: string;
        tlskey?: string;
        insecureTcp?: boolean;
        insecureRegistry: string[];
        maxConcurrentDownloads: number;
        storageOpt: string[];
        logOpt: string[];
        usernsRemap?: string;
        vmBackend: 'kvm' | 'tcg' | 'auto';
        bridge: string;
        bip?: string;
        defaultAddressPool: string[];
      }) => {
        // Loaded on use: the daemon pulls in fastify and every part; other commands need none of it.
        const { DEFAULT_HOST, runDaemon } = await import('../../daemon/daemon.js');
        const baseDiskSize = parseStorageOpts(o.storageOpt);
        const logOpts = parseLogOptFlags(o.logOpt);
        parseLogOpts(logOpts); // refused at start, not at each container's create
        const { parseAddressPool } = await import('../../network/ipam.js');
        const pools = o.defaultAddressPool.map(parseAddressPool);
        const tlsOn = o.tlsverify === true || o.tls === true || o.tlscert !== undefined;
        await runDaemon({
          hosts: o.host.length > 0 ? o.host : [DEFAULT_HOST],
          dataRoot: o.dataRoot,
          execRoot: o.execRoot,
          defaultIsolation: o.defaultIsolation,
          ...(o.group !== undefined && { group: o.group }),
          ...(tlsOn && {
            tls: {
              verify: o.tlsverify === true,
              ...(o.tlscacert && { ca: o.tlscacert }),
              ...(o.tlscert && { cert: o.tlscert }),
              ...(o.tlskey && { key: o.tlskey }),
            },
          }),
          ...(o.insecureTcp && { insecureTcp: true }),
          ...(o.insecureRegistry.length > 0 && { insecureRegistries: o.insecureRegistry }),
          maxConcurrentDownloads: o.maxConcurrentDownloads,
          ...(baseDiskSize !== undefined && { baseDiskSize }),
          ...(o.logOpt.length > 0 && { logOpts }),
          ...(o.usernsRemap !== undefined && { usernsRemap: o.usernsRemap }),
          vmBackend: o.vmBackend,
          network: { bridge: o.bridge, ...(o.bip && { bip: o.bip }), ...(pools.length > 0 && { pools }) },
        });
      },
    );
}

/** `--max-concurrent-downloads N`: a whole number from 1 (dockerd refuses less, as this does). */
export function parseDownloads(v: string): number {
  if (!/^\d+$/.test(v.trim()) || Number(v) < 1)
    throw new InvalidParameterError(`--max-concurrent-downloads ${v}: needs a whole number of at least 1`);
  return Number(v);
}

/** `--storage-opt size=10G` -> bytes; any other key is refused (nothing else is configurable yet). */
export function parseStorageOpts(opts: string[]): number | undefined {
  let size: number | undefined;
  for (const kv of opts) {
    const eq = kv.indexOf('=');
    const key = eq < 0 ? kv : kv.slice(0, eq).trim().toLowerCase();
    if (key !== 'size' || eq < 0) throw new InvalidParameterError(`--storage-opt ${kv}: unknown option (supported: size=<bytes|k|m|g>)`);
    size = parseBytes(kv.slice(eq + 1));
    if (size < MIN_BASE_DISK_SIZE) throw new InvalidParameterError(`--storage-opt ${kv}: a base disk needs at least 64 MiB`);
  }
  return size;
}
