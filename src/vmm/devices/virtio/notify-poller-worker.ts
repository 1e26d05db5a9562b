/**
 * The notify poller's thread (notify-poller.ts): blocks in epoll_wait on the queue
 * ioeventfds, drains each one that fired and posts its fd to the main thread. Exits when the
 * stop eventfd fires. It touches no device state.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as libc from '../../../kvm/libc.js';

/** notify-poller.ts READABLE_TAG: a one-shot watch the main thread reads and re-arms. */
const READABLE_TAG = 1n << 32n;
const { epfd, stopFd } = workerData as { epfd: number; stopFd: number };
const counter = new Uint8Array(8);
for (;;) {
  const events = libc.epollWait(epfd, 32, -1);
  const ready: number[] = [];
  let stop = false;
  for (const e of events) {
    const fd = Number(e.data & 0xffff_ffffn);
    if (fd === stopFd) {
      stop = true;
      continue;
    }
    if (e.data & READABLE_TAG) {
      ready.push(fd);
      continue;
    }
    // Level-triggered: draining here (not on the main thread) keeps us from spinning; a write
    // that lands after this read fires epoll again, so no notification is lost.
    if (libc.read(fd, counter) > 0) ready.push(fd);
  }
  if (ready.length) parentPort!.postMessage(ready);
  if (stop) break;
}
parentPort!.postMessage('stopped');
