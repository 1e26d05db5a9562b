/**
 * The ext4 superblock (struct ext4_super_block, fs/ext4/ext4.h): 1024 bytes at byte 1024 of the
 * filesystem, with backup copies at the start of groups 1 and powers of 3, 5 and 7 (sparse_super).
 */
import { defineStruct } from './struct.js';
import { crc32cUpdate } from './crc32c.js';

export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT4_SUPER_MAGIC = 0xef53;

export const EXT4_FEATURE_COMPAT = {
  DIR_PREALLOC: 0x0001,
  IMAGIC_INODES: 0x0002,
  HAS_JOURNAL: 0x0004,
  EXT_ATTR: 0x0008,
  RESIZE_INODE: 0x0010,
  DIR_INDEX: 0x0020,
  SPARSE_SUPER2: 0x0200,
} as const;

export const EXT4_FEATURE_INCOMPAT = {
  COMPRESSION: 0x0001,
  FILETYPE: 0x0002,
  RECOVER: 0x0004,
  JOURNAL_DEV: 0x0008,
  META_BG: 0x0010,
  EXTENTS: 0x0040,
  BIT64: 0x0080,
  MMP: 0x0100,
  FLEX_BG: 0x0200,
  EA_INODE: 0x0400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
} as const;

export const EXT4_FEATURE_RO_COMPAT = {
  SPARSE_SUPER: 0x0001,
  LARGE_FILE: 0x0002,
  BTREE_DIR: 0x0004,
  HUGE_FILE: 0x0008,
  GDT_CSUM: 0x0010,
  DIR_NLINK: 0x0020,
  EXTRA_ISIZE: 0x0040,
  QUOTA: 0x0100,
  BIGALLOC: 0x0200,
  METADATA_CSUM: 0x0400,
} as const;

export const EXT4_STATE_VALID_FS = 0x0001;
export const EXT4_ERRORS_CONTINUE = 1;
export const EXT4_OS_LINUX = 0;
export const EXT4_DYNAMIC_REV = 1;
export const EXT4_CRC32C_CHKSUM = 1;
export const EXT4_FLAGS_SIGNED_HASH = 0x0001;
export const EXT4_DEFM_XATTR_USER = 0x0004;
export const EXT4_DEFM_ACL = 0x0008;
export const DX_HASH_HALF_MD4 = 1;
export const EXT3_JNL_BACKUP_BLOCKS = 1;
export const EXT4_LABEL_MAX = 16;

export const SUPERBLOCK = defineStruct(SUPERBLOCK_SIZE, {
  s_inodes_count: [0x00, 'u32'],
  s_blocks_count_lo: [0x04, 'u32'],
  s_r_blocks_count_lo: [0x08, 'u32'],
  s_free_blocks_count_lo: [0x0c, 'u32'],
  s_free_inodes_count: [0x10, 'u32'],
  s_first_data_block: [0x14, 'u32'],
  s_log_block_size: [0x18, 'u32'],
  s_log_cluster_size: [0x1c, 'u32'],
  s_blocks_per_group: [0x20, 'u32'],
  s_clusters_per_group: [0x24, 'u32'],
  s_inodes_per_group: [0x28, 'u32'],
  s_mtime: [0x2c, 'u32'],
  s_wtime: [0x30, 'u32'],
  s_mnt_count: [0x34, 'u16'],
  s_max_mnt_count: [0x36, 'u16'],
  s_magic: [0x38, 'u16'],
  s_state: [0x3a, 'u16'],
  s_errors: [0x3c, 'u16'],
  s_minor_rev_level: [0x3e, 'u16'],
  s_lastcheck: [0x40, 'u32'],
  s_checkinterval: [0x44, 'u32'],
  s_creator_os: [0x48, 'u32'],
  s_rev_level: [0x4c, 'u32'],
  s_def_resuid: [0x50, 'u16'],
  s_def_resgid: [0x52, 'u16'],
  s_first_ino: [0x54, 'u32'],
  s_inode_size: [0x58, 'u16'],
  s_block_group_nr: [0x5a, 'u16'],
  s_feature_compat: [0x5c, 'u32'],
  s_feature_incompat: [0x60, 'u32'],
  s_feature_ro_compat: [0x64, 'u32'],
  s_uuid: [0x68, { bytes: 16 }],
  s_volume_name: [0x78, { bytes: 16 }],
  s_last_mounted: [0x88, { bytes: 64 }],
  s_algorithm_usage_bitmap: [0xc8, 'u32'],
  s_prealloc_blocks: [0xcc, 'u8'],
  s_prealloc_dir_blocks: [0xcd, 'u8'],
  s_reserved_gdt_blocks: [0xce, 'u16'],
  s_journal_uuid: [0xd0, { bytes: 16 }],
  s_journal_inum: [0xe0, 'u32'],
  s_journal_dev: [0xe4, 'u32'],
  s_last_orphan: [0xe8, 'u32'],
  s_hash_seed: [0xec, { bytes: 16 }],
  s_def_hash_version: [0xfc, 'u8'],
  s_jnl_backup_type: [0xfd, 'u8'],
  s_desc_size: [0xfe, 'u16'],
  s_default_mount_opts: [0x100, 'u32'],
  s_first_meta_bg: [0x104, 'u32'],
  s_mkfs_time: [0x108, 'u32'],
  s_jnl_blocks: [0x10c, { bytes: 68 }],
  s_blocks_count_hi: [0x150, 'u32'],
  s_r_blocks_count_hi: [0x154, 'u32'],
  s_free_blocks_count_hi: [0x158, 'u32'],
  s_min_extra_isize: [0x15c, 'u16'],
  s_want_extra_isize: [0x15e, 'u16'],
  s_flags: [0x160, 'u32'],
  s_raid_stride: [0x164, 'u16'],
  s_mmp_update_interval: [0x166, 'u16'],
  s_mmp_block: [0x168, 'u64'],
  s_raid_stripe_width: [0x170, 'u32'],
  s_log_groups_per_flex: [0x174, 'u8'],
  s_checksum_type: [0x175, 'u8'],
  s_encryption_level: [0x176, 'u8'],
  s_reserved_pad: [0x177, 'u8'],
  s_kbytes_written: [0x178, 'u64'],
  s_snapshot_inum: [0x180, 'u32'],
  s_snapshot_id: [0x184, 'u32'],
  s_snapshot_r_blocks_count: [0x188, 'u64'],
  s_snapshot_list: [0x190, 'u32'],
  s_error_count: [0x194, 'u32'],
  s_first_error_time: [0x198, 'u32'],
  s_first_error_ino: [0x19c, 'u32'],
  s_first_error_block: [0x1a0, 'u64'],
  s_first_error_func: [0x1a8, { bytes: 32 }],
  s_first_error_line: [0x1c8, 'u32'],
  s_last_error_time: [0x1cc, 'u32'],
  s_last_error_ino: [0x1d0, 'u32'],
  s_last_error_line: [0x1d4, 'u32'],
  s_last_error_block: [0x1d8, 'u64'],
  s_last_error_func: [0x1e0, { bytes: 32 }],
  s_mount_opts: [0x200, { bytes: 64 }],
  s_usr_quota_inum: [0x240, 'u32'],
  s_grp_quota_inum: [0x244, 'u32'],
  s_overhead_clusters: [0x248, 'u32'],
  s_backup_bgs: [0x24c, { bytes: 8 }],
  s_encrypt_algos: [0x254, { bytes: 4 }],
  s_encrypt_pw_salt: [0x258, { bytes: 16 }],
  s_lpf_ino: [0x268, 'u32'],
  s_prj_quota_inum: [0x26c, 'u32'],
  s_checksum_seed: [0x270, 'u32'],
  s_wtime_hi: [0x274, 'u8'],
  s_mtime_hi: [0x275, 'u8'],
  s_mkfs_time_hi: [0x276, 'u8'],
  s_lastcheck_hi: [0x277, 'u8'],
  s_first_error_time_hi: [0x278, 'u8'],
  s_last_error_time_hi: [0x279, 'u8'],
  s_first_error_errcode: [0x27a, 'u8'],
  s_last_error_errcode: [0x27b, 'u8'],
  s_encoding: [0x27c, 'u16'],
  s_encoding_flags: [0x27e, 'u16'],
  s_orphan_file_inum: [0x280, 'u32'],
  s_reserved: [0x284, { bytes: 94 * 4 }],
  s_checksum: [0x3fc, 'u32'],
} as const);

/** s_checksum: crc32c(~0, superblock up to the checksum field) */
export function superblockChecksum(sb: Uint8Array): number {
  return crc32cUpdate(0xffffffff, sb, 0, SUPERBLOCK.offsetOf('s_checksum'));
}

export function setSuperblockChecksum(sb: Buffer): void {
  sb.writeUInt32LE(superblockChecksum(sb), SUPERBLOCK.offsetOf('s_checksum'));
}
