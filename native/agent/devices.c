#define _GNU_SOURCE
#include "devices.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Character devices a container may read/write (minor -1: any), as in Docker's default. */
static const struct {
  int32_t major, minor;
} allowed[] = {
    {1, 3},    {1, 5}, {1, 7}, {1, 8}, {1, 9}, /* null zero full random urandom */
    {5, 0},    {5, 1}, {5, 2},                 /* tty console ptmx */
    {136, -1},                                 /* pty slaves */
    {10, 200},                                 /* tun */
};

#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})

int devices_build(struct bpf_insn *p, size_t max) {
  size_t n = 0, need = 8 + 2 * (sizeof allowed / sizeof allowed[0]) + 4;
  if (need > max) return -1;
  /* r1 = struct bpf_cgroup_dev_ctx *: access_type (type | access << 16), major, minor */
  p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 2, 1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
  p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 5, 1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
  p[n++] = INSN(BPF_LDX | BPF_MEM | BPF_W, 6, 1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
  p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_X, 3, 2, 0, 0);
  p[n++] = INSN(BPF_ALU64 | BPF_AND | BPF_K, 3, 0, 0, 0xffff); /* r3 = type */
  p[n++] = INSN(BPF_ALU64 | BPF_RSH | BPF_K, 2, 0, 0, 16);     /* r2 = access */
  size_t to_allow_mknod = n;
  /* mknod alone is always allowed (CAP_MKNOD decides) */
  p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 0, BPF_DEVCG_ACC_MKNOD);
  size_t to_deny_block = n;
  p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 3, 0, 0, BPF_DEVCG_DEV_CHAR);
  size_t jumps_allow[32], nj = 0;
  for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
    if (allowed[i].minor < 0) {
      jumps_allow[nj++] = n;
      p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 5, 0, 0, allowed[i].major);
    } else {
      p[n++] = INSN(BPF_JMP | BPF_JNE | BPF_K, 5, 0, 1, allowed[i].major); /* skip the minor test */
      jumps_allow[nj++] = n;
      p[n++] = INSN(BPF_JMP | BPF_JEQ | BPF_K, 6, 0, 0, allowed[i].minor);
    }
  }
  size_t deny = n;
  p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  size_t allow = n;
  p[n++] = INSN(BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
  p[n++] = INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
  p[to_allow_mknod].off = (int16_t)(allow - to_allow_mknod - 1);
  p[to_deny_block].off = (int16_t)(deny - to_deny_block - 1);
  for (size_t i = 0; i < nj; i++) p[jumps_allow[i]].off = (int16_t)(allow - jumps_allow[i] - 1);
  return (int)n;
}

/* Just enough of an eBPF interpreter for the instructions devices_build emits. */
int devices_eval(const struct bpf_insn *prog, int n, unsigned type, unsigned access, unsigned major, unsigned minor) {
  uint64_t r[11] = {0};
  struct bpf_cgroup_dev_ctx ctx = {type | (access << 16), major, minor};
  for (int pc = 0; pc < n; pc++) {
    const struct bpf_insn *i = &prog[pc];
    switch (i->code) {
    case BPF_LDX | BPF_MEM | BPF_W: {
      uint32_t v;
      memcpy(&v, (char *)&ctx + i->off, 4);
      r[i->dst_reg] = v;
      break;
    }
    case BPF_ALU64 | BPF_MOV | BPF_X: r[i->dst_reg] = r[i->src_reg]; break;
    case BPF_ALU64 | BPF_MOV | BPF_K: r[i->dst_reg] = (uint64_t)(int64_t)i->imm; break;
    case BPF_ALU64 | BPF_AND | BPF_K: r[i->dst_reg] &= (uint64_t)(int64_t)i->imm; break;
    case BPF_ALU64 | BPF_RSH | BPF_K: r[i->dst_reg] >>= i->imm; break;
    case BPF_JMP | BPF_JEQ | BPF_K:
      if (r[i->dst_reg] == (uint64_t)(int64_t)i->imm) pc += i->off;
      break;
    case BPF_JMP | BPF_JNE | BPF_K:
      if (r[i->dst_reg] != (uint64_t)(int64_t)i->imm) pc += i->off;
      break;
    case BPF_JMP | BPF_EXIT: return (int)r[0];
    default: return -1;
    }
  }
  return -1;
}

int devices_attach(const char *cgroup_dir) {
  struct bpf_insn insns[DEVICES_MAX_INSNS];
  int n = devices_build(insns, DEVICES_MAX_INSNS);
  if (n < 0) {
    errno = E2BIG;
    return -1;
  }
  static char license[] = "Apache-2.0";
  union bpf_attr load;
  memset(&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insn_cnt = (uint32_t)n;
  load.insns = (uint64_t)(uintptr_t)insns;
  load.license = (uint64_t)(uintptr_t)license;
  int prog = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
  if (prog < 0) return -1;
  int cg = open(cgroup_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) {
    int e = errno;
    close(prog);
    errno = e;
    return -1;
  }
  union bpf_attr at;
  memset(&at, 0, sizeof at);
  at.target_fd = (uint32_t)cg;
  at.attach_bpf_fd = (uint32_t)prog;
  at.attach_type = BPF_CGROUP_DEVICE;
  int rc = (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &at, sizeof at);
  int e = errno;
  close(cg);
  close(prog); /* the cgroup holds the program now */
  errno = e;
  return rc;
}
