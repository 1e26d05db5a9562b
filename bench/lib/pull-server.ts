/**
 * Store.pull in a process of its own for benchmarks: the pull engine without the daemon's
 * HTTP API or the docker CLI. It never forks (a fork would make its next pull pay a
 * copy-on-write fault per page it writes), which the benchmark process itself cannot promise.
 * Messages: { ref, root } in; { wallMs, cpuMs } or { error } out; each pull's root is removed after.
 */
import { rmSync } from 'node:fs';
import { Store } from '../../src/images/store.js';

process.on('message', (m: { ref: string; root: string }) => {
  // the body reports every failure to the parent process (the catch below)
  void (async () => {
    const t = process.hrtime.bigint();
    const c = process.cpuUsage();
    try {
      await new Store(m.root).pull(m.ref);
      const u = process.cpuUsage(c);
      process.send!({ wallMs: Number(process.hrtime.bigint() - t) / 1e6, cpuMs: (u.user + u.system) / 1000 });
    } catch (e) {
      process.send!({ error: (e as Error).message });
    } finally {
      rmSync(m.root, { recursive: true, force: true });
    }
  })();
});
process.send!({ ready: true });
