/** `tvm run`, `ps`, `exec`, `logs`, `stop`, `kill`, `rm`, `start`, `inspect`. */
import { Command, Option } from 'commander';
import type { Duplex } from 'node:stream';
import { ApiError, TvmClient, withClient } from '../client.js';
import { copyStream, table } from '../output.js';
import { parseBytes, parseCpus, parseIntFlag } from '../units.js';
import { humanDuration } from '../../api/human-duration.js';
import { collect } from '../options.js';
import { parseRestartFlag } from './restart.js';
import { parseLogOptFlags } from '../../runtime/log-opts.js';
import { parseStorageOptFlags } from './storage-opt.js';
import { addSecurityFlags, securityHostConfig, type SecurityFlags } from './run-security.js';

/** Pulls with progress on stderr (like docker run's implicit pull). */
export async function pullImage(c: TvmClient, ref: string, out: NodeJS.WritableStream = process.stderr): Promise<void> {
  const at = ref.lastIndexOf('@');
  const colon = ref.lastIndexOf(':');
  const query =
    at > 0
      ? { fromImage: ref.slice(0, at), tag: ref.slice(at + 1) }
      : colon > ref.lastIndexOf('/')
        ? { fromImage: ref.slice(0, colon), tag: ref.slice(colon + 1) }
        : { fromImage: ref, tag: 'latest' };
  for await (const m of c.jsonStream<{ status?: string; id?: string; progress?: string; error?: string }>('POST', '/images/create', {
    query,
  })) {
    if (m.error) throw new ApiError(500, m.error);
    if (m.status) out.write(`${m.id ? `${m.id}: ` : ''}${m.status}${m.progress ? ` ${m.progress}` : ''}\n`);
  }
}

/** Terminal raw mode + resize forwarding while a TTY session runs. */
function ttySession(resize: (h: number, w: number) => Promise<unknown>): () => void {
  const stdin = process.stdin;
  const isTty = stdin.isTTY === true && process.stdout.isTTY === true;
  if (!isTty) return () => {};
  stdin.setRawMode(true);
  // a resize racing the container's exit has nothing to resize; the next one is sent on the next SIGWINCH
  const onResize = () => void resize(process.stdout.rows, process.stdout.columns).catch(() => {});
  process.stdout.on('resize', onResize);
  onResize();
  return () => {
    process.stdout.off('resize', onResize);
    stdin.setRawMode(false);
  };
}

function pumpStdin(sock: Duplex): void {
  process.stdin.on('data', (d: Buffer) => sock.write(d));
  process.stdin.on('end', () => (sock as unknown as { end(): void }).end());
  process.stdin.resume();
}

export function registerContainerCommands(program: Command): void {
  addSecurityFlags(program.command('run'))
    .description('Create and run a container')
    // everything after the image belongs to the container's command, like docker's
    .passThroughOptions()
    .argument('<image>')
    .argument('[command...]')
    .addOption(
      new Option('--isolation <kind>', 'container (shared kernel) or vm (KVM microVM)').choices([
        'vm',
        'container',
        'process',
        'hyperv',
        'default',
      ]),
    )
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-d, --detach', 'run in the background and print the container ID')
    .option('--rm', 'remove the container when it exits')
    .option('-e, --env <VAR=value>', 'set an environment variable (repeatable)', collect, [])
    .option('-m, --memory <bytes>', 'memory limit (e.g. 512m)')
    .option('--cpus <n>', 'number of CPUs')
    .option('--pids-limit <n>', 'maximum number of processes')
    .option('--name <name>', 'container name')
    .option('-v, --volume <spec>', 'bind mount or volume: /host:/ctr[:ro] or name:/ctr (repeatable)', collect, [])
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'user[:group] to run as')
    .option('--entrypoint <cmd>', 'override the image entrypoint')
    .option('--network <mode>', 'none or host', 'none')
    .option('-l, --label <k=v>', 'label (repeatable)', collect, [])
    .option('--stop-signal <sig>', 'signal to stop the container')
    .option('-p, --publish <spec>', 'publish a port (not supported yet)', collect, [])
    .option('--restart <policy>', 'restart policy: no, always, unless-stopped, on-failure[:max-retries]')
    .option('--log-opt <k=v>', 'json-file log option: max-size=10m, max-file=3 (repeatable)', collect, [])
    .option('--storage-opt <k=v>', 'storage option: size=<bytes|k|m|g> limits the writable layer (repeatable)', collect, [])
    .action(
      async (
        image: string,
        command: string[],
        o: {
          restart?: string;
          logOpt: string[];
          storageOpt: string[];
          isolation?: string;
          interactive?: boolean;
          tty?: boolean;
          detach?: boolean;
          rm?: boolean;
          env: string[];
          memory?: string;
          cpus?: string;
          pidsLimit?: string;
          name?: string;
          volume: string[];
          workdir?: string;
          user?: string;
          entrypoint?: string;
          network: string;
          label: string[];
          stopSignal?: string;
          publish: string[];
        } & SecurityFlags,
      ) => {
        const code = await withClient(async (c) => {
          const labels = Object.fromEntries(o.label.map((l) => [l.split('=')[0]!, l.slice(l.indexOf('=') + 1)]));
          const body = {
            Image: image,
            ...(command.length > 0 && { Cmd: command }),
            ...(o.entrypoint !== undefined && { Entrypoint: [o.entrypoint] }),
            Env: o.env,
            Tty: o.tty === true,
            OpenStdin: o.interactive === true,
            StdinOnce: o.interactive === true,
            AttachStdin: o.interactive === true && !o.detach,
            AttachStdout: !o.detach,
            AttachStderr: !o.detach,
            ...(o.workdir && { WorkingDir: o.workdir }),
            ...(o.user && { User: o.user }),
            ...(o.stopSignal && { StopSignal: o.stopSignal }),
            Labels: labels,
            HostConfig: {
              Binds: o.volume,
              AutoRemove: o.rm === true,
              NetworkMode: o.network,
              ...(o.isolation && { Isolation: o.isolation }),
              ...(o.memory && { Memory: parseBytes(o.memory) }),
              ...(o.cpus && { NanoCpus: parseCpus(o.cpus) }),
              ...(o.pidsLimit && { PidsLimit: parseIntFlag(o.pidsLimit, '--pids-limit') }),
              ...(o.restart !== undefined && { RestartPolicy: parseRestartFlag(o.restart) }),
              ...(o.logOpt.length > 0 && { LogConfig: { Type: '', Config: parseLogOptFlags(o.logOpt) } }),
              ...(o.storageOpt.length > 0 && { StorageOpt: parseStorageOptFlags(o.storageOpt) }),
              ...(o.publish.length > 0 && { PortBindings: Object.fromEntries(o.publish.map((p) => [p, [{}]])) }),
              ...securityHostConfig(o),
            },
          };
          const query = o.name ? { name: o.name } : {};
          let created: { Id: string };
          try {
            created = await c.json<{ Id: string }>('POST', '/containers/create', { query, body });
          } catch (e) {
            if (!(e instanceof ApiError) || e.status !== 404 || !/No such image/.test(e.message)) throw e;
            process.stderr.write(`Unable to find image '${image}' locally\n`);
            await pullImage(c, image);
            created = await c.json<{ Id: string }>('POST', '/containers/create', { query, body });
          }
          const id = created.Id;
          if (o.detach) {
            await c.ok('POST', `/containers/${id}/start`);
            process.stdout.write(`${id}\n`);
            return 0;
          }
          const { socket } = await c.hijack(`/containers/${id}/attach`, {
            query: { stream: 1, stdout: 1, stderr: 1, ...(o.interactive && { stdin: 1 }) },
          });
          const waitRes = c.json<{ StatusCode: number; Error?: { Message: string } | null }>('POST', `/containers/${id}/wait`, {
            query: { condition: o.rm ? 'removed' : 'next-exit' },
          });
          const output = copyStream(socket, o.tty === true);
          await c.ok('POST', `/containers/${id}/start`);
          const restore = o.tty ? ttySession((h, w) => c.ok('POST', `/containers/${id}/resize`, { query: { h, w } })) : () => {};
          if (o.interactive) pumpStdin(socket);
          try {
            await output;
            const r = await waitRes;
            if (r.Error?.Message) process.stderr.write(`${r.Error.Message}\n`);
            return r.StatusCode;
          } finally {
            restore();
            process.stdin.pause();
          }
        });
        process.exitCode = code;
      },
    );

  program
    .command('ps')
    .description('List containers')
    .option('-a, --all', 'show all containers (default shows just running)')
    .option('-q, --quiet', 'only display container IDs')
    .option('--no-trunc', 'do not truncate output')
    .option('-f, --filter <k=v>', 'filter (status, name, id, label, ancestor, exited, isolation)', collect, [])
    .option('-n, --last <n>', 'show n last created containers')
    .action(async (o: { all?: boolean; quiet?: boolean; trunc: boolean; filter: string[]; last?: string }) => {
      await withClient(async (c) => {
        const filters: Record<string, Record<string, boolean>> = {};
        for (const f of o.filter) {
          const eq = f.indexOf('=');
          const k = eq < 0 ? f : f.slice(0, eq);
          (filters[k] ??= {})[eq < 0 ? '' : f.slice(eq + 1)] = true;
        }
        const list = await c.json<{ Id: string; Names: string[]; Image: string; Command: string; Created: number; Status: string }[]>(
          'GET',
          '/containers/json',
          {
            query: { all: o.all === true, filters: JSON.stringify(filters), ...(o.last && { limit: o.last }) },
          },
        );
        if (o.quiet) {
          for (const x of list) process.stdout.write(`${o.trunc ? x.Id.slice(0, 12) : x.Id}\n`);
          return;
        }
        const rows = [['CONTAINER ID', 'IMAGE', 'COMMAND', 'CREATED', 'STATUS', 'PORTS', 'NAMES']];
        for (const x of list) {
          const cmd = o.trunc && x.Command.length > 20 ? `${x.Command.slice(0, 19)}…` : x.Command;
          rows.push([
            o.trunc ? x.Id.slice(0, 12) : x.Id,
            x.Image,
            `"${cmd}"`,
            `${humanDuration(Date.now() - x.Created * 1000)} ago`,
            x.Status,
            '',
            x.Names.map((n) => n.slice(1)).join(','),
          ]);
        }
        table(rows);
      });
    });

  program
    .command('exec')
    .description('Run a command in a running container')
    .passThroughOptions()
    .argument('<container>')
    .argument('<command...>')
    .option('-i, --interactive', 'keep stdin open')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-d, --detach', 'run in the background')
    .option('-e, --env <VAR=value>', 'environment variable (repeatable)', collect, [])
    .option('-u, --user <user>', 'user[:group]')
    .option('-w, --workdir <dir>', 'working directory')
    .action(
      async (
        container: string,
        command: string[],
        o: { interactive?: boolean; tty?: boolean; detach?: boolean; env: string[]; user?: string; workdir?: string },
      ) => {
        const code = await withClient(async (c) => {
          const { Id } = await c.json<{ Id: string }>('POST', `/containers/${encodeURIComponent(container)}/exec`, {
            body: {
              Cmd: command,
              Env: o.env,
              Tty: o.tty === true,
              AttachStdin: o.interactive === true && !o.detach,
              AttachStdout: !o.detach,
              AttachStderr: !o.detach,
              ...(o.user && { User: o.user }),
              ...(o.workdir && { WorkingDir: o.workdir }),
            },
          });
          if (o.detach) {
            await c.ok('POST', `/exec/${Id}/start`, { body: { Detach: true } });
            return 0;
          }
          const { socket } = await c.hijack(`/exec/${Id}/start`, { body: { Detach: false, Tty: o.tty === true } });
          const restore = o.tty ? ttySession((h, w) => c.ok('POST', `/exec/${Id}/resize`, { query: { h, w } })) : () => {};
          if (o.interactive) pumpStdin(socket);
          try {
            await copyStream(socket, o.tty === true);
          } finally {
            restore();
            process.stdin.pause();
          }
          const info = await c.json<{ ExitCode: number | null }>('GET', `/exec/${Id}/json`);
          return info.ExitCode ?? 0;
        });
        process.exitCode = code;
      },
    );

  program
    .command('logs')
    .description('Fetch the logs of a container')
    .argument('<container>')
    .option('-f, --follow', 'follow log output')
    .option('-n, --tail <n>', 'number of lines from the end', 'all')
    .option('--since <t>', 'since timestamp or relative (e.g. 10m)')
    .option('--until <t>', 'until timestamp or relative')
    .option('-t, --timestamps', 'show timestamps')
    .action(async (container: string, o: { follow?: boolean; tail: string; since?: string; until?: string; timestamps?: boolean }) => {
      await withClient(async (c) => {
        const info = await c.json<{ Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(container)}/json`);
        const res = await c.request('GET', `/containers/${encodeURIComponent(container)}/logs`, {
          query: {
            stdout: 1,
            stderr: 1,
            follow: o.follow === true,
            tail: o.tail,
            timestamps: o.timestamps === true,
            ...(o.since && { since: o.since }),
            ...(o.until && { until: o.until }),
          },
        });
        await copyStream(res.body, info.Config.Tty);
      });
    });

  const simple = (
    name: string,
    desc: string,
    fn: (c: TvmClient, id: string, o: Record<string, string | boolean | undefined>) => Promise<unknown>,
    opts: [string, string][] = [],
  ) => {
    const cmd = program.command(name).description(desc).argument('<containers...>');
    for (const [f, d] of opts) cmd.option(f, d);
    cmd.action(async (ids: string[], o: Record<string, string | boolean | undefined>) => {
      await withClient(async (c) => {
        let failed = false;
        for (const id of ids) {
          try {
            await fn(c, encodeURIComponent(id), o);
            process.stdout.write(`${id}\n`);
          } catch (e) {
            failed = true;
            process.stderr.write(`Error response from daemon: ${(e as Error).message}\n`);
          }
        }
        if (failed) process.exitCode = 1;
      });
    });
  };
  simple('start', 'Start stopped containers', (c, id) => c.ok('POST', `/containers/${id}/start`));
  simple(
    'stop',
    'Stop running containers',
    (c, id, o) =>
      c.ok('POST', `/containers/${id}/stop`, {
        query: { ...(o.time !== undefined && { t: String(o.time) }), ...(o.signal !== undefined && { signal: String(o.signal) }) },
      }),
    [
      ['-t, --time <seconds>', 'seconds to wait before killing'],
      ['-s, --signal <sig>', 'signal to send'],
    ],
  );
  simple(
    'kill',
    'Kill running containers',
    (c, id, o) => c.ok('POST', `/containers/${id}/kill`, { query: { signal: String(o.signal ?? 'KILL') } }),
    [['-s, --signal <sig>', 'signal to send (default KILL)']],
  );
  simple(
    'rm',
    'Remove containers',
    (c, id, o) => c.ok('DELETE', `/containers/${id}`, { query: { force: o.force === true, v: o.volumes === true } }),
    [
      ['-f, --force', 'kill a running container first'],
      ['-v, --volumes', 'remove its anonymous volumes'],
    ],
  );

  program
    .command('inspect')
    .description('Low-level information on containers or images, as JSON')
    .argument('<names...>')
    .option('--type <type>', 'container or image')
    .action(async (names: string[], o: { type?: string }) => {
      await withClient(async (c) => {
        const out: unknown[] = [];
        let failed = false;
        for (const n of names) {
          const tryGet = async (p: string) =>
            c.json<unknown>('GET', p).catch((e: unknown) => {
              if (e instanceof ApiError && e.status === 404) return undefined;
              throw e;
            });
          let v: unknown;
          if (o.type !== 'image') v = await tryGet(`/containers/${encodeURIComponent(n)}/json`);
          if (v === undefined && o.type !== 'container') v = await tryGet(`/images/${n}/json`);
          if (v === undefined) {
            failed = true;
            process.stderr.write(`Error: No such object: ${n}\n`);
          } else out.push(v);
        }
        process.stdout.write(JSON.stringify(out, null, 4) + '\n');
        if (failed) process.exitCode = 1;
      });
    });
}
