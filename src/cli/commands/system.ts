/** `tvm version`, `tvm info`. */
import type { Command } from 'commander';
import { TvmClient } from '../client.js';
import { API_VERSION } from '../../api/version.js';
import { SERVER_VERSION } from '../../api/streaming.js';

export function registerSystemCommands(program: Command): void {
  program
    .command('version')
    .description('Show the tvm client and daemon versions')
    .action(async () => {
      const out = process.stdout;
      out.write(`Client:\n Version:      ${SERVER_VERSION}\n API version:  ${API_VERSION}\n Node:         ${process.version}\n\n`);
      const c = new TvmClient();
      try {
        const v = await c.json<{
          Version: string;
          ApiVersion: string;
          MinAPIVersion: string;
          KernelVersion: string;
          Components: { Details: Record<string, string> }[];
        }>('GET', '/version');
        const d = v.Components[0]?.Details ?? {};
        out.write(
          `Server: tvm\n Version:      ${v.Version}\n API version:  ${v.ApiVersion} (minimum version ${v.MinAPIVersion})\n Kernel:       ${v.KernelVersion}\n Isolations:   ${d.Isolations ?? ''} (default ${d.DefaultIsolation ?? ''})\n`,
        );
      } finally {
        await c.close();
      }
    });

  program
    .command('info')
    .description('Show daemon-wide information')
    .action(async () => {
      const c = new TvmClient();
      try {
        const i = await c.json<Record<string, unknown>>('GET', '/info');
        const lines = [
          `Containers: ${String(i.Containers)}`,
          ` Running: ${String(i.ContainersRunning)}`,
          ` Paused: ${String(i.ContainersPaused)}`,
          ` Stopped: ${String(i.ContainersStopped)}`,
          `Images: ${String(i.Images)}`,
          `Server Version: ${String(i.ServerVersion)}`,
          `Default Isolation: ${String(i.Isolation)}`,
          `Cgroup Version: ${String(i.CgroupVersion)}`,
          `Kernel Version: ${String(i.KernelVersion)}`,
          `Operating System: ${String(i.OperatingSystem)}`,
          `CPUs: ${String(i.NCPU)}`,
          `Total Memory: ${String(i.MemTotal)}`,
          `Docker Root Dir: ${String(i.DockerRootDir)}`,
          // Isolations, VM backend: what runs containers here
          ...((i.DriverStatus as [string, string][] | undefined) ?? []).map(([k, v]) => `${k}: ${v}`),
        ];
        process.stdout.write(lines.join('\n') + '\n');
      } finally {
        await c.close();
      }
    });
}
