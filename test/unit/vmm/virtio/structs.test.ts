import { describe, it, expect } from 'vitest';
import { runC, parsePairs } from '../../../fixtures/guests/cc.js';
import { VIRTQ_DESC, VIRTQ_AVAIL, VIRTQ_USED, VIRTQ_USED_ELEM, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_F_INDIRECT, VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC, VIRTIO_F_VERSION_1, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../../../../src/vmm/devices/virtio/virtqueue.js';
import { VIRTIO_BLK_CONFIG, VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_WRITE_ZEROES } from '../../../../src/vmm/devices/virtio/block.js';
import { VIRTIO_BLK_OUTHDR, VIRTIO_BLK_DWZ, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP } from '../../../../src/vmm/devices/virtio/block-request.js';
import * as M from '../../../../src/vmm/devices/virtio/mmio.js';
import * as H from '../../../../src/vmm/devices/virtio/vsock/packet.js';

/** [C expression, our value] pairs: sizes, offsets and constants against the kernel's uapi headers. */
const checks: [string, number][] = [
  ['sizeof(struct vring_desc)', VIRTQ_DESC.size],
  ['offsetof(struct vring_desc, addr)', VIRTQ_DESC.addr],
  ['offsetof(struct vring_desc, len)', VIRTQ_DESC.len],
  ['offsetof(struct vring_desc, flags)', VIRTQ_DESC.flags],
  ['offsetof(struct vring_desc, next)', VIRTQ_DESC.next],
  ['offsetof(struct vring_avail, flags)', VIRTQ_AVAIL.flags],
  ['offsetof(struct vring_avail, idx)', VIRTQ_AVAIL.idx],
  ['offsetof(struct vring_avail, ring)', VIRTQ_AVAIL.ring],
  ['sizeof(((struct vring_avail*)0)->ring[0])', VIRTQ_AVAIL.entrySize],
  ['offsetof(struct vring_used, flags)', VIRTQ_USED.flags],
  ['offsetof(struct vring_used, idx)', VIRTQ_USED.idx],
  ['offsetof(struct vring_used, ring)', VIRTQ_USED.ring],
  ['sizeof(struct vring_used_elem)', VIRTQ_USED_ELEM.size],
  ['offsetof(struct vring_used_elem, id)', VIRTQ_USED_ELEM.id],
  ['offsetof(struct vring_used_elem, len)', VIRTQ_USED_ELEM.len],
  // the event-index fields that follow each ring (vring_used_event / vring_avail_event)
  ['(unsigned long)&vring_avail_event((&(struct vring){ .num = 8, .used = (void*)0 }))', VIRTQ_USED.ring + VIRTQ_USED_ELEM.size * 8],
  ['(unsigned long)&vring_used_event((&(struct vring){ .num = 8, .avail = (void*)0 }))', VIRTQ_AVAIL.ring + VIRTQ_AVAIL.entrySize * 8],
  ['VRING_DESC_F_NEXT', VIRTQ_DESC_F_NEXT],
  ['VRING_DESC_F_WRITE', VIRTQ_DESC_F_WRITE],
  ['VRING_DESC_F_INDIRECT', VIRTQ_DESC_F_INDIRECT],
  ['VRING_AVAIL_F_NO_INTERRUPT', VIRTQ_AVAIL_F_NO_INTERRUPT],
  ['VRING_USED_F_NO_NOTIFY', VIRTQ_USED_F_NO_NOTIFY],
  ['VIRTIO_RING_F_EVENT_IDX', VIRTIO_RING_F_EVENT_IDX],
  ['VIRTIO_RING_F_INDIRECT_DESC', VIRTIO_RING_F_INDIRECT_DESC],
  ['VIRTIO_F_VERSION_1', VIRTIO_F_VERSION_1],

  ['sizeof(struct virtio_blk_outhdr)', VIRTIO_BLK_OUTHDR.size],
  ['offsetof(struct virtio_blk_outhdr, type)', VIRTIO_BLK_OUTHDR.type],
  ['offsetof(struct virtio_blk_outhdr, ioprio)', VIRTIO_BLK_OUTHDR.ioprio],
  ['offsetof(struct virtio_blk_outhdr, sector)', VIRTIO_BLK_OUTHDR.sector],
  ['sizeof(struct virtio_blk_discard_write_zeroes)', VIRTIO_BLK_DWZ.size],
  ['offsetof(struct virtio_blk_discard_write_zeroes, sector)', VIRTIO_BLK_DWZ.sector],
  ['offsetof(struct virtio_blk_discard_write_zeroes, num_sectors)', VIRTIO_BLK_DWZ.num_sectors],
  ['offsetof(struct virtio_blk_discard_write_zeroes, flags)', VIRTIO_BLK_DWZ.flags],
  ['offsetof(struct virtio_blk_config, unused1) + sizeof(((struct virtio_blk_config*)0)->unused1)', VIRTIO_BLK_CONFIG.size],
  ...(['capacity', 'size_max', 'seg_max', 'geometry', 'blk_size', 'physical_block_exp', 'alignment_offset', 'min_io_size', 'opt_io_size', 'wce', 'num_queues', 'max_discard_sectors', 'max_discard_seg', 'discard_sector_alignment', 'max_write_zeroes_sectors', 'max_write_zeroes_seg', 'write_zeroes_may_unmap'] as const)
    .map((f) => [`offsetof(struct virtio_blk_config, ${f})`, VIRTIO_BLK_CONFIG[f]] as [string, number]),
  ['VIRTIO_BLK_T_IN', VIRTIO_BLK_T_IN], ['VIRTIO_BLK_T_OUT', VIRTIO_BLK_T_OUT], ['VIRTIO_BLK_T_FLUSH', VIRTIO_BLK_T_FLUSH],
  ['VIRTIO_BLK_T_GET_ID', VIRTIO_BLK_T_GET_ID], ['VIRTIO_BLK_T_DISCARD', VIRTIO_BLK_T_DISCARD], ['VIRTIO_BLK_T_WRITE_ZEROES', VIRTIO_BLK_T_WRITE_ZEROES],
  ['VIRTIO_BLK_S_OK', VIRTIO_BLK_S_OK], ['VIRTIO_BLK_S_IOERR', VIRTIO_BLK_S_IOERR], ['VIRTIO_BLK_S_UNSUPP', VIRTIO_BLK_S_UNSUPP],
  ['VIRTIO_BLK_ID_BYTES', VIRTIO_BLK_ID_BYTES], ['VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP', VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP],
  ['VIRTIO_BLK_F_SEG_MAX', VIRTIO_BLK_F_SEG_MAX], ['VIRTIO_BLK_F_RO', VIRTIO_BLK_F_RO], ['VIRTIO_BLK_F_BLK_SIZE', VIRTIO_BLK_F_BLK_SIZE],
  ['VIRTIO_BLK_F_FLUSH', VIRTIO_BLK_F_FLUSH], ['VIRTIO_BLK_F_DISCARD', VIRTIO_BLK_F_DISCARD], ['VIRTIO_BLK_F_WRITE_ZEROES', VIRTIO_BLK_F_WRITE_ZEROES],

  ['VIRTIO_MMIO_MAGIC_VALUE', M.VIRTIO_MMIO_MAGIC_VALUE], ['VIRTIO_MMIO_VERSION', M.VIRTIO_MMIO_VERSION], ['VIRTIO_MMIO_DEVICE_ID', M.VIRTIO_MMIO_DEVICE_ID],
  ['VIRTIO_MMIO_VENDOR_ID', M.VIRTIO_MMIO_VENDOR_ID], ['VIRTIO_MMIO_DEVICE_FEATURES', M.VIRTIO_MMIO_DEVICE_FEATURES], ['VIRTIO_MMIO_DEVICE_FEATURES_SEL', M.VIRTIO_MMIO_DEVICE_FEATURES_SEL],
  ['VIRTIO_MMIO_DRIVER_FEATURES', M.VIRTIO_MMIO_DRIVER_FEATURES], ['VIRTIO_MMIO_DRIVER_FEATURES_SEL', M.VIRTIO_MMIO_DRIVER_FEATURES_SEL], ['VIRTIO_MMIO_QUEUE_SEL', M.VIRTIO_MMIO_QUEUE_SEL],
  ['VIRTIO_MMIO_QUEUE_NUM_MAX', M.VIRTIO_MMIO_QUEUE_NUM_MAX], ['VIRTIO_MMIO_QUEUE_NUM', M.VIRTIO_MMIO_QUEUE_NUM], ['VIRTIO_MMIO_QUEUE_READY', M.VIRTIO_MMIO_QUEUE_READY],
  ['VIRTIO_MMIO_QUEUE_NOTIFY', M.VIRTIO_MMIO_QUEUE_NOTIFY], ['VIRTIO_MMIO_INTERRUPT_STATUS', M.VIRTIO_MMIO_INTERRUPT_STATUS], ['VIRTIO_MMIO_INTERRUPT_ACK', M.VIRTIO_MMIO_INTERRUPT_ACK],
  ['VIRTIO_MMIO_STATUS', M.VIRTIO_MMIO_STATUS], ['VIRTIO_MMIO_QUEUE_DESC_LOW', M.VIRTIO_MMIO_QUEUE_DESC_LOW], ['VIRTIO_MMIO_QUEUE_DESC_HIGH', M.VIRTIO_MMIO_QUEUE_DESC_HIGH],
  ['VIRTIO_MMIO_QUEUE_AVAIL_LOW', M.VIRTIO_MMIO_QUEUE_AVAIL_LOW], ['VIRTIO_MMIO_QUEUE_AVAIL_HIGH', M.VIRTIO_MMIO_QUEUE_AVAIL_HIGH], ['VIRTIO_MMIO_QUEUE_USED_LOW', M.VIRTIO_MMIO_QUEUE_USED_LOW],
  ['VIRTIO_MMIO_QUEUE_USED_HIGH', M.VIRTIO_MMIO_QUEUE_USED_HIGH], ['VIRTIO_MMIO_CONFIG_GENERATION', M.VIRTIO_MMIO_CONFIG_GENERATION], ['VIRTIO_MMIO_CONFIG', M.VIRTIO_MMIO_CONFIG],
  ['VIRTIO_MMIO_INT_VRING', M.VIRTIO_MMIO_INT_VRING], ['VIRTIO_MMIO_INT_CONFIG', M.VIRTIO_MMIO_INT_CONFIG],
  ['VIRTIO_CONFIG_S_ACKNOWLEDGE', M.VIRTIO_CONFIG_S_ACKNOWLEDGE], ['VIRTIO_CONFIG_S_DRIVER', M.VIRTIO_CONFIG_S_DRIVER], ['VIRTIO_CONFIG_S_DRIVER_OK', M.VIRTIO_CONFIG_S_DRIVER_OK],
  ['VIRTIO_CONFIG_S_FEATURES_OK', M.VIRTIO_CONFIG_S_FEATURES_OK], ['VIRTIO_CONFIG_S_NEEDS_RESET', M.VIRTIO_CONFIG_S_NEEDS_RESET], ['VIRTIO_CONFIG_S_FAILED', M.VIRTIO_CONFIG_S_FAILED],
  ['VIRTIO_ID_BLOCK', M.VIRTIO_ID_BLOCK], ['VIRTIO_ID_RNG', M.VIRTIO_ID_RNG], ['VIRTIO_ID_VSOCK', M.VIRTIO_ID_VSOCK],

  ['sizeof(struct virtio_vsock_hdr)', H.VSOCK_HDR.size],
  ...(['src_cid', 'dst_cid', 'src_port', 'dst_port', 'len', 'type', 'op', 'flags', 'buf_alloc', 'fwd_cnt'] as const)
    .map((f) => [`offsetof(struct virtio_vsock_hdr, ${f})`, H.VSOCK_HDR[f]] as [string, number]),
  ['sizeof(struct virtio_vsock_config)', H.VSOCK_CONFIG_SIZE],
  ['sizeof(struct virtio_vsock_event)', H.VSOCK_EVENT_SIZE],
  ['VIRTIO_VSOCK_TYPE_STREAM', H.VIRTIO_VSOCK_TYPE_STREAM],
  ['VIRTIO_VSOCK_OP_INVALID', H.VIRTIO_VSOCK_OP_INVALID], ['VIRTIO_VSOCK_OP_REQUEST', H.VIRTIO_VSOCK_OP_REQUEST], ['VIRTIO_VSOCK_OP_RESPONSE', H.VIRTIO_VSOCK_OP_RESPONSE],
  ['VIRTIO_VSOCK_OP_RST', H.VIRTIO_VSOCK_OP_RST], ['VIRTIO_VSOCK_OP_SHUTDOWN', H.VIRTIO_VSOCK_OP_SHUTDOWN], ['VIRTIO_VSOCK_OP_RW', H.VIRTIO_VSOCK_OP_RW],
  ['VIRTIO_VSOCK_OP_CREDIT_UPDATE', H.VIRTIO_VSOCK_OP_CREDIT_UPDATE], ['VIRTIO_VSOCK_OP_CREDIT_REQUEST', H.VIRTIO_VSOCK_OP_CREDIT_REQUEST],
  ['VIRTIO_VSOCK_SHUTDOWN_RCV', H.VIRTIO_VSOCK_SHUTDOWN_RCV], ['VIRTIO_VSOCK_SHUTDOWN_SEND', H.VIRTIO_VSOCK_SHUTDOWN_SEND],
  ['VIRTIO_VSOCK_EVENT_TRANSPORT_RESET', H.VIRTIO_VSOCK_EVENT_TRANSPORT_RESET],
  ['VMADDR_CID_HOST', H.VMADDR_CID_HOST],
];

describe('virtio structs and constants match the kernel uapi headers (gcc)', () => {
  const src = [
    '#include <stdio.h>', '#include <stddef.h>', '#include <sys/socket.h>', '#include <linux/vm_sockets.h>',
    '#include <linux/virtio_ring.h>', '#include <linux/virtio_blk.h>', '#include <linux/virtio_vsock.h>',
    '#include <linux/virtio_mmio.h>', '#include <linux/virtio_config.h>', '#include <linux/virtio_ids.h>',
    'int main(void){',
    ...checks.map(([expr], i) => `printf("c${i} %lu\\n", (unsigned long)(${expr}));`),
    'return 0;}',
  ].join('\n');
  const got = parsePairs(runC(src));
  it.each(checks.map(([expr, v], i) => [expr, v, i] as const))('%s = %i', (_expr, v, i) => {
    expect(got.get(`c${i}`)).toBe(v);
  });
});
