/**
 * An empty internal jbd2 journal (include/linux/jbd2.h): a v2 superblock in the journal's first
 * block, big-endian, s_start = 0 meaning "nothing to replay". The rest of the journal is left as
 * zeros (holes in the sparse image), as mke2fs's lazy_journal_init leaves it.
 */
import { defineStruct } from './struct.js';

export const JBD2_MAGIC_NUMBER = 0xc03b3998;
export const JBD2_SUPERBLOCK_V2 = 4;
export const JOURNAL_SUPERBLOCK_SIZE = 1024;

export const JOURNAL_SUPERBLOCK = defineStruct(
  JOURNAL_SUPERBLOCK_SIZE,
  {
    h_magic: [0x00, 'u32'],
    h_blocktype: [0x04, 'u32'],
    h_sequence: [0x08, 'u32'],
    s_blocksize: [0x0c, 'u32'],
    s_maxlen: [0x10, 'u32'],
    s_first: [0x14, 'u32'],
    s_sequence: [0x18, 'u32'],
    s_start: [0x1c, 'u32'],
    s_errno: [0x20, 'u32'],
    s_feature_compat: [0x24, 'u32'],
    s_feature_incompat: [0x28, 'u32'],
    s_feature_ro_compat: [0x2c, 'u32'],
    s_uuid: [0x30, { bytes: 16 }],
    s_nr_users: [0x40, 'u32'],
    s_dynsuper: [0x44, 'u32'],
    s_max_transaction: [0x48, 'u32'],
    s_max_trans_data: [0x4c, 'u32'],
    s_checksum_type: [0x50, 'u8'],
    s_padding2: [0x51, { bytes: 3 }],
    s_num_fc_blks: [0x54, 'u32'],
    s_padding: [0x58, { bytes: 41 * 4 }],
    s_checksum: [0xfc, 'u32'],
    s_users: [0x100, { bytes: 16 * 48 }],
  } as const,
  false,
);

/** mke2fs's ext2fs_default_journal_size(): journal blocks for a filesystem of `blocks` blocks */
export function defaultJournalBlocks(blocks: number): number {
  if (blocks < 2048) throw new Error('filesystem too small for a journal');
  if (blocks < 32768) return 1024;
  if (blocks < 256 * 1024) return 4096;
  if (blocks < 512 * 1024) return 8192;
  if (blocks < 4096 * 1024) return 16384;
  if (blocks < 8192 * 1024) return 32768;
  if (blocks < 16384 * 1024) return 65536;
  if (blocks < 32768 * 1024) return 131072;
  return 262144;
}

/** the journal's first block: a clean, empty v2 journal for a filesystem with `uuid` */
export function buildJournalSuperblock(blockSize: number, journalBlocks: number, uuid: Uint8Array): Buffer {
  const buf = Buffer.alloc(blockSize);
  JOURNAL_SUPERBLOCK.encode(
    {
      h_magic: JBD2_MAGIC_NUMBER,
      h_blocktype: JBD2_SUPERBLOCK_V2,
      h_sequence: 0,
      s_blocksize: blockSize,
      s_maxlen: journalBlocks,
      s_first: 1,
      s_sequence: 1,
      s_start: 0,
      s_uuid: uuid,
      s_nr_users: 1,
    },
    buf,
    0,
  );
  return buf;
}
