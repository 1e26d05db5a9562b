/**
 * The virtio-net device's port on a tap fd (src/kvm/tun.ts): a write is one packet out, a read
 * one packet in, each a virtio_net_hdr_v1 and a frame. Readiness comes from the VM's NotifyPoller as a one-shot readable watch, re-armed
 * after each handler run, so frames left waiting wake the handler again.
 */
import * as libc from '../../../kvm/libc.js';
import { SysError } from '../../../kvm/libc.js';
import type { NotifyPoller } from './notify-poller.js';
import type { FramePort, RxOffloads } from './net.js';
import { setTapOffload, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 } from '../../../kvm/tun.js';

export class TapPort implements FramePort {
  private watched = false;
  private closed = false;
  /** the first write error is logged; the rest only counted (a tap down in a dying namespace repeats) */
  private writeErrors = 0;

  constructor(
    private readonly fd: number,
    private readonly poller: NotifyPoller,
    private readonly log?: (line: string) => void,
  ) {}

  send(frame: Uint8Array): boolean {
    if (this.closed) return false;
    try {
      return libc.write(this.fd, frame) === frame.length;
    } catch (e) {
      if (!(e instanceof SysError)) throw e;
      if (this.writeErrors++ === 0) this.log?.(`tap: a frame was dropped: ${e.message}`);
      return false;
    }
  }

  receive(buf: Uint8Array): number {
    if (this.closed) return -1;
    return libc.read(this.fd, buf);
  }

  setOffloads(o: RxOffloads): void {
    if (this.closed) return;
    setTapOffload(this.fd, (o.csum ? TUN_F_CSUM : 0) | (o.tso4 ? TUN_F_TSO4 : 0) | (o.tso6 ? TUN_F_TSO6 : 0));
  }

  watch(onReadable: (() => void) | undefined): void {
    if (this.closed) return;
    if (this.watched) this.poller.remove(this.fd);
    this.watched = false;
    if (onReadable) {
      this.poller.addReadable(this.fd, onReadable);
      this.watched = true;
    }
  }

  close(): void {
    if (this.closed) return;
    this.watch(undefined);
    this.closed = true;
    libc.close(this.fd);
  }
}
