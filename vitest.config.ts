import { defineConfig } from 'vitest/config';

// Three projects, so that CI can run what this machine can run and name what it cannot:
// unit (pure logic, milliseconds), integration (real tools: registry, qemu-img, e2fsck,
// docker CLI, namespaces; needs root), kvm (needs /dev/kvm).
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
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
