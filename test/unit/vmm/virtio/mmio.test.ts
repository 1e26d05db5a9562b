import { describe, it, expect } from 'vitest';
import { virtioTestbed } from '../../../fixtures/virtio-driver.js';
import { RngDevice } from '../../../../src/vmm/devices/virtio/rng.js';
import {
  bit,
  VIRTIO_CONFIG_S_ACKNOWLEDGE as ACK,
  VIRTIO_CONFIG_S_DRIVER as DRIVER,
  VIRTIO_CONFIG_S_FEATURES_OK as FEATURES_OK,
  VIRTIO_CONFIG_S_DRIVER_OK as DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED as FAILED,
  VIRTIO_CONFIG_S_NEEDS_RESET as NEEDS_RESET,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_VERSION,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_ID_RNG,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
} from '../../../../src/vmm/devices/virtio/mmio.js';
import { VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC } from '../../../../src/vmm/devices/virtio/virtqueue.js';

const V1 = bit(VIRTIO_F_VERSION_1);

function bed() {
  return virtioTestbed(new RngDevice());
}

describe('virtio-mmio register file', () => {
  it('identifies itself as a modern device', () => {
    const { driver } = bed();
    expect(driver.r32(VIRTIO_MMIO_MAGIC_VALUE)).toBe(VIRTIO_MMIO_MAGIC);
    expect(driver.r32(VIRTIO_MMIO_VERSION)).toBe(2);
    expect(driver.r32(VIRTIO_MMIO_DEVICE_ID)).toBe(VIRTIO_ID_RNG);
    expect(driver.r32(VIRTIO_MMIO_VENDOR_ID)).not.toBe(0);
    expect(driver.deviceFeatures()).toBe(V1 | bit(VIRTIO_RING_F_EVENT_IDX) | bit(VIRTIO_RING_F_INDIRECT_DESC));
  });

  it('walks ACKNOWLEDGE -> DRIVER -> FEATURES_OK -> DRIVER_OK as Linux does', () => {
    const { driver, transport } = bed();
    const r = driver.negotiate(V1);
    expect(r.ok).toBe(true);
    expect(driver.status()).toBe(ACK | DRIVER | FEATURES_OK);
    driver.setupQueue(0);
    driver.driverOk();
    expect(driver.status()).toBe(ACK | DRIVER | FEATURES_OK | DRIVER_OK);
    expect(transport.isActive).toBe(true);
    expect(transport.driverFeatures).toBe(V1);
  });

  it('refuses out-of-order status transitions', () => {
    const { driver, transport } = bed();
    driver.w32(VIRTIO_MMIO_STATUS, 0);
    driver.w32(VIRTIO_MMIO_STATUS, DRIVER); // skips ACKNOWLEDGE
    expect(driver.status()).toBe(0);
    driver.w32(VIRTIO_MMIO_STATUS, ACK);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | FEATURES_OK); // skips DRIVER
    expect(driver.status()).toBe(ACK);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | DRIVER | FEATURES_OK); // two bits at once
    expect(driver.status()).toBe(ACK);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | DRIVER);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | DRIVER | DRIVER_OK); // skips FEATURES_OK
    expect(driver.status()).toBe(ACK | DRIVER);
    driver.w32(VIRTIO_MMIO_STATUS, ACK); // clears a bit without reset
    expect(driver.status()).toBe(ACK | DRIVER);
    expect(transport.rejected.length).toBe(5);
  });

  // Issue 16 item 20: a guest repeating a bad write grew the list without bound.
  it('keeps a bounded list of rejected driver actions', () => {
    const { driver, transport } = bed();
    for (let i = 0; i < 10_000; i++) driver.w32(VIRTIO_MMIO_STATUS, DRIVER);
    expect(transport.rejectedTotal).toBe(10_000);
    expect(transport.rejected.length).toBe(64);
  });

  it('FAILED can be set at any time and then blocks progress; 0 resets', () => {
    const { driver } = bed();
    driver.w32(VIRTIO_MMIO_STATUS, ACK);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | FAILED);
    expect(driver.status()).toBe(ACK | FAILED);
    driver.w32(VIRTIO_MMIO_STATUS, ACK | FAILED | DRIVER);
    expect(driver.status()).toBe(ACK | FAILED);
    driver.w32(VIRTIO_MMIO_STATUS, 0);
    expect(driver.status()).toBe(0);
  });

  it('refuses FEATURES_OK without VERSION_1 or with features not offered', () => {
    const { driver } = bed();
    expect(driver.negotiate(0n, { force: true }).ok).toBe(false);
    expect(driver.negotiate(V1 | bit(5), { force: true }).ok).toBe(false);
    expect(driver.negotiate(V1).ok).toBe(true);
  });

  it('ignores DriverFeatures writes outside the DRIVER stage', () => {
    const { driver, transport } = bed();
    driver.negotiate(V1);
    driver.writeDriverFeatures(V1 | bit(VIRTIO_RING_F_EVENT_IDX));
    expect(transport.driverFeatures).toBe(V1);
  });

  it('queue registers: only between FEATURES_OK and DRIVER_OK, only on an unready queue', () => {
    const { driver, transport } = bed();
    driver.w32(VIRTIO_MMIO_STATUS, ACK);
    driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    driver.w32(VIRTIO_MMIO_QUEUE_NUM, 8);
    expect(transport.queues[0]!.size).toBe(256);
    driver.negotiate(V1);
    expect(driver.r32(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(256);
    driver.w32(VIRTIO_MMIO_QUEUE_SEL, 7);
    expect(driver.r32(VIRTIO_MMIO_QUEUE_NUM_MAX)).toBe(0);
    driver.setupQueue(0, 8);
    driver.w32(VIRTIO_MMIO_QUEUE_NUM, 16); // ready queue: refused
    expect(transport.queues[0]!.size).toBe(8);
    driver.driverOk();
    driver.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
    expect(transport.queues[0]!.descTable).not.toBe(0x1000);
  });

  it('refuses QueueReady for bad sizes, misaligned or out-of-RAM areas', () => {
    const { driver, transport } = bed();
    driver.negotiate(V1);
    driver.w32(VIRTIO_MMIO_QUEUE_SEL, 0);
    const tryReady = (num: number, desc: number, avail: number, used: number) => {
      driver.w32(VIRTIO_MMIO_QUEUE_NUM, num);
      driver.w32(VIRTIO_MMIO_QUEUE_DESC_LOW, desc);
      driver.w32(VIRTIO_MMIO_QUEUE_AVAIL_LOW, avail);
      driver.w32(VIRTIO_MMIO_QUEUE_USED_LOW, used);
      driver.w32(VIRTIO_MMIO_QUEUE_READY, 1);
      return driver.r32(VIRTIO_MMIO_QUEUE_READY);
    };
    expect(tryReady(3, 0x10000, 0x20000, 0x30000)).toBe(0);
    expect(tryReady(512, 0x10000, 0x20000, 0x30000)).toBe(0);
    expect(tryReady(8, 0x10008, 0x20000, 0x30000)).toBe(0);
    expect(tryReady(8, 0x10000, 0x20001, 0x30000)).toBe(0);
    expect(tryReady(8, 0x10000, 0x20000, 0x30002)).toBe(0);
    expect(tryReady(8, 0x10000, 0x20000, 0xfff000 + 0xff0)).toBe(0); // used ring runs past 16 MiB
    expect(transport.rejected.filter((r) => r.includes('QueueReady')).length).toBe(6);
    expect(tryReady(8, 0x10000, 0x20000, 0x30000)).toBe(1);
  });

  it('DRIVER_OK is refused while a queue is not ready', () => {
    const { driver, transport } = bed();
    driver.negotiate(V1);
    driver.driverOk();
    expect(driver.status() & DRIVER_OK).toBe(0);
    expect(transport.isActive).toBe(false);
  });

  it('notify before DRIVER_OK or for a missing queue is ignored', () => {
    const { driver, transport } = bed();
    driver.w32(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    driver.init(V1, 1);
    driver.w32(VIRTIO_MMIO_QUEUE_NOTIFY, 3);
    expect(transport.rejected).toEqual([expect.stringContaining('before DRIVER_OK'), expect.stringContaining('no such queue')]);
  });

  it('interrupt status is set on used buffers and cleared by InterruptACK', () => {
    const { driver, irq } = bed();
    driver.init(V1, 1);
    const q = driver.queues[0]!;
    driver.post(q, [{ writable: 16 }]);
    driver.notify(q);
    expect(irq.count).toBe(1);
    expect(driver.r32(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(VIRTIO_MMIO_INT_VRING);
    expect(driver.ackInterrupt()).toBe(VIRTIO_MMIO_INT_VRING);
    expect(driver.r32(VIRTIO_MMIO_INTERRUPT_STATUS)).toBe(0);
  });

  it('config change bumps ConfigGeneration and raises a config interrupt', () => {
    const { driver, transport, irq } = bed();
    driver.init(V1, 1);
    const g = driver.r32(VIRTIO_MMIO_CONFIG_GENERATION);
    transport.configChanged();
    expect(driver.r32(VIRTIO_MMIO_CONFIG_GENERATION)).toBe(g + 1);
    expect(irq.count).toBe(1);
    expect(driver.ackInterrupt()).toBe(VIRTIO_MMIO_INT_CONFIG);
  });

  it('a broken available ring sets DEVICE_NEEDS_RESET; writing 0 resets everything', () => {
    const { driver, transport } = bed();
    driver.init(V1, 1);
    const q = driver.queues[0]!;
    driver.pushAvail(q, 999); // head index beyond the queue
    driver.notify(q);
    expect(driver.status() & NEEDS_RESET).toBe(NEEDS_RESET);
    expect(driver.ackInterrupt()).toBe(VIRTIO_MMIO_INT_CONFIG);
    driver.w32(VIRTIO_MMIO_STATUS, 0);
    expect(driver.status()).toBe(0);
    expect(transport.isActive).toBe(false);
    expect(transport.queues[0]!.ready).toBe(false);
    expect(transport.driverFeatures).toBe(0n);
    driver.queues.length = 0;
    driver.init(V1, 1);
    expect(transport.isActive).toBe(true);
  });

  it('ignores registers accessed with the wrong width', () => {
    const { transport } = bed();
    const b = new Uint8Array(2);
    transport.read(VIRTIO_MMIO_MAGIC_VALUE, b);
    expect([...b]).toEqual([0, 0]);
    transport.write(VIRTIO_MMIO_STATUS, Uint8Array.of(1, 0));
    expect(transport.status).toBe(0);
  });
});

describe('virtio-mmio config space', () => {
  it('reads within the device config only; writes only after DRIVER', async () => {
    const { BlockDevice, VIRTIO_BLK_CONFIG } = await import('../../../../src/vmm/devices/virtio/block.js');
    const backend = { size: 1 << 20, readOnly: true, discardGranularity: 0 } as never;
    const { driver, transport } = virtioTestbed(new BlockDevice({ backend }));
    const cap = new DataView(driver.readConfig(0, 8).buffer).getBigUint64(0, true);
    expect(cap).toBe(2048n);
    expect([...driver.readConfig(VIRTIO_BLK_CONFIG.size - 2, 4)]).toEqual([0, 0, 0, 0]); // runs past the end
    expect(transport.rejected.at(-1)).toMatch(/config read/);
    transport.write(0x100, Uint8Array.of(1));
    expect(transport.rejected.at(-1)).toMatch(/config write before DRIVER/);
  });
});
