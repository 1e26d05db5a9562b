import { defineConfig } from 'vitest/config';

// Three projects, so that CI can run what this machine can run and name what it cannot:
// unit (pure logic, milliseconds), integration (real tools: registry, qemu-img, e2fsck,
// docker CLI, namespaces; needs root), kvm (needs /dev/kvm).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
          // One module cache per worker, not one per file: importing and transforming the
          // sources again for each of ~110 files was most of the project's time. The files
          // restore what they change (timers, env) and hold no module-level state between them.
          isolate: false,
          // Forks (the default): tests count /proc/self/fd, which threads of one process share.
          // Three on two cores: much of the time goes to worker threads starting and sockets.
          maxWorkers: 3,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // Integration tests share host resources (loop devices, cgroups, ports): one file at a time.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'kvm',
          include: ['test/kvm/**/*.test.ts'],
          testTimeout: 900_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
