/**
 * Queue notifications without a VM exit: each queue's QueueNotify write is bound to an
 * eventfd with KVM_IOEVENTFD (datamatch = queue index), so KVM signals the eventfd and the
 * vCPU goes on. Node cannot watch an arbitrary fd, so one worker thread blocks in epoll_wait
 * on all of them (notify-poller-worker.ts) and posts the fds that fired; the main thread,
 * which owns every device, then runs the queue. The worker cannot be terminated while it is
 * inside epoll_wait, hence a stop eventfd in the same epoll set.
 *
 * A socket can be watched too (`addReadable`): the worker must not read it, so it is armed
 * one-shot (EPOLLONESHOT) and re-armed on this thread after its handler has read what it
 * wanted; the epoll data carries READABLE_TAG so the worker knows not to drain it.
 */
import { Worker } from 'node:worker_threads';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import * as libc from '../../../kvm/libc.js';
import { ConflictError } from '../../../errors.js';

/** Marks an fd in the epoll data as a one-shot readable watch (not an eventfd to drain). */
export const READABLE_TAG = 1n << 32n;
const EPOLLONESHOT = 1 << 30;

export class NotifyPoller {
  private readonly epfd: number;
  private readonly stopFd: number;
  private readonly handlers = new Map<number, () => void>();
  private readonly oneShot = new Set<number>();
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

  /**
   * Watches a readable fd the worker must not touch (a socket): `handler` runs on this thread
   * when it is readable or hung up, then the watch is re-armed. The handler reads until EAGAIN.
   */
  addReadable(fd: number, handler: () => void): void {
    if (this.closed) throw new ConflictError('notify poller is closed', 'ERR_VIRTIO_POLLER_CLOSED');
    if (this.handlers.has(fd)) throw new ConflictError(`notify poller: fd ${fd} is already watched`, 'ERR_VIRTIO_POLLER_FD');
    libc.epollCtl(this.epfd, libc.EPOLL_CTL_ADD, fd, libc.EPOLLIN | EPOLLONESHOT, BigInt(fd) | READABLE_TAG);
    this.handlers.set(fd, handler);
    this.oneShot.add(fd);
    this.start();
  }

  /** Stops watching `fd` (before its owner closes it). A notification already posted is dropped. */
  remove(fd: number): void {
    if (!this.handlers.delete(fd)) return;
    this.oneShot.delete(fd);
    if (!this.closed) libc.epollCtl(this.epfd, libc.EPOLL_CTL_DEL, fd, 0);
  }

  private fire(fd: number): void {
    const h = this.handlers.get(fd);
    if (!h) return;
    try {
      h();
    } finally {
      // Re-arm only if the handler kept the watch (it may have removed it and closed the fd).
      if (this.oneShot.has(fd) && this.handlers.get(fd) === h && !this.closed) {
        libc.epollCtl(this.epfd, libc.EPOLL_CTL_MOD, fd, libc.EPOLLIN | EPOLLONESHOT, BigInt(fd) | READABLE_TAG);
      }
    }
  }

  /**
   * Starts the thread now rather than at the first watch: loading it takes a few hundred ms
   * from sources, and a vhost-user front end (QEMU) waits on every reply meanwhile.
   */
  warmUp(): void {
    if (!this.closed) this.start();
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
      const tsxApi = pathToFileURL(
        createRequire(import.meta.url)
          .resolve('tsx/esm/api')
          .replace(/\.cjs$/, '.mjs'),
      ).href;
      const script = new URL('./notify-poller-worker.ts', import.meta.url).href;
      w = new Worker(`import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`, {
        ...opts,
        eval: true,
      });
    }
    this.stopped = new Promise<void>((resolve) => w.once('exit', () => resolve()));
    w.on('message', (m: number[] | 'stopped') => {
      if (m === 'stopped') return;
      for (const fd of m) {
        try {
          this.fire(fd);
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
      // Unref'd, the thread would not keep the process alive while we wait for it to exit: a
      // caller awaiting close() with nothing else pending would see Node exit under it.
      this.worker.ref();
      libc.eventfdSignal(this.stopFd);
      await this.stopped;
    }
    libc.close(this.stopFd);
    libc.close(this.epfd);
    this.handlers.clear();
    this.oneShot.clear();
  }
}
