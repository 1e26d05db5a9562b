/**
 * Queue notifications without a VM exit: each queue's QueueNotify write is bound to an
 * eventfd with KVM_IOEVENTFD (datamatch = queue index), so KVM signals the eventfd and the
 * vCPU goes on. Node cannot watch an arbitrary fd, so one worker thread blocks in epoll_wait
 * on all of them (notify-poller-worker.ts) and posts the fds that fired; the main thread,
 * which owns every device, then runs the queue. The worker cannot be terminated while it is
 * inside epoll_wait, hence a stop eventfd in the same epoll set.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as libc from '../../../kvm/libc.js';
import { ConflictError } from '../../../errors.js';

export class NotifyPoller {
  private readonly epfd: number;
  private readonly stopFd: number;
  private readonly handlers = new Map<number, () => void>();
  private worker?: Worker;
  private stopped?: Promise<void>;
  private closed = false;

  constructor(private readonly onError: (e: unknown) => void = () => {}) {
    this.epfd = libc.epollCreate1();
    try {
      this.stopFd = libc.eventfd(0, libc.EFD_CLOEXEC | libc.EFD_NONBLOCK);
      libc.epollCtl(this.epfd, libc.EPOLL_CTL_ADD, this.stopFd, libc.EPOLLIN);
    } catch (e) {
      libc.close(this.epfd);
      throw e;
    }
  }

  /** Watches `fd` (non-blocking eventfd); `handler` runs on this thread each time it fires. */
  add(fd: number, handler: () => void): void {
    if (this.closed) throw new ConflictError('notify poller is closed', 'ERR_VIRTIO_POLLER_CLOSED');
    if (this.handlers.has(fd)) throw new ConflictError(`notify poller: fd ${fd} is already watched`, 'ERR_VIRTIO_POLLER_FD');
    libc.epollCtl(this.epfd, libc.EPOLL_CTL_ADD, fd, libc.EPOLLIN);
    this.handlers.set(fd, handler);
    this.start();
  }

  private start(): void {
    if (this.worker) return;
    const data = { epfd: this.epfd, stopFd: this.stopFd };
    const opts = { workerData: data, stdout: false, stderr: false };
    let w: Worker;
    if (!import.meta.url.endsWith('.ts')) {
      w = new Worker(new URL('./notify-poller-worker.js', import.meta.url), opts);
    } else {
      // From sources (tsx, vitest) the worker registers tsx's loader in its own thread first.
      const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
      const script = new URL('./notify-poller-worker.ts', import.meta.url).href;
      w = new Worker(`import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`, { ...opts, eval: true });
    }
    this.stopped = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.on('message', (m: number[] | 'stopped') => {
      if (m === 'stopped') return;
      for (const fd of m) {
        try {
          this.handlers.get(fd)?.();
        } catch (e) {
          this.onError(e);
        }
      }
    });
    w.on('error', (e) => this.onError(e));
    // The poller must not keep the VMM process alive on its own.
    w.unref();
    this.worker = w;
  }

  /** Stops the thread and closes the epoll set (the watched fds belong to their owners). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.worker) {
      libc.eventfdSignal(this.stopFd);
      await this.stopped;
    }
    libc.close(this.stopFd);
    libc.close(this.epfd);
    this.handlers.clear();
  }
}
