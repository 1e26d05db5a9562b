#define _GNU_SOURCE
#include "seccomp.h"
#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define X32_SYSCALL_BIT 0x40000000u
#define NO_CAP (-1)

/* A syscall refused with EPERM unless the container holds cap (NO_CAP: always refused). */
struct denied { int nr; int cap; };

static const struct denied denied[] = {
  {__NR_acct, CAP_SYS_PACCT},
  {__NR_add_key, NO_CAP},
  {__NR_request_key, NO_CAP},
  {__NR_keyctl, NO_CAP},
  {__NR_bpf, CAP_SYS_ADMIN},
  {__NR_perf_event_open, CAP_SYS_ADMIN},
  {__NR_kexec_load, CAP_SYS_BOOT},
  {__NR_kexec_file_load, CAP_SYS_BOOT},
  {__NR_reboot, CAP_SYS_BOOT},
  {__NR_init_module, CAP_SYS_MODULE},
  {__NR_finit_module, CAP_SYS_MODULE},
  {__NR_delete_module, CAP_SYS_MODULE},
  {__NR_create_module, NO_CAP},
  {__NR_get_kernel_syms, NO_CAP},
  {__NR_query_module, NO_CAP},
  {__NR_mount, CAP_SYS_ADMIN},
  {__NR_umount2, CAP_SYS_ADMIN},
  {__NR_pivot_root, CAP_SYS_ADMIN},
  {__NR_unshare, CAP_SYS_ADMIN},
  {__NR_setns, CAP_SYS_ADMIN},
  {__NR_fsopen, CAP_SYS_ADMIN},
  {__NR_fsconfig, CAP_SYS_ADMIN},
  {__NR_fsmount, CAP_SYS_ADMIN},
  {__NR_fspick, CAP_SYS_ADMIN},
  {__NR_move_mount, CAP_SYS_ADMIN},
  {__NR_open_tree, CAP_SYS_ADMIN},
  {__NR_mount_setattr, CAP_SYS_ADMIN},
  {__NR_quotactl, CAP_SYS_ADMIN},
  {__NR_lookup_dcookie, CAP_SYS_ADMIN},
  {__NR_swapon, CAP_SYS_ADMIN},
  {__NR_swapoff, CAP_SYS_ADMIN},
  {__NR_settimeofday, CAP_SYS_TIME},
  {__NR_clock_settime, CAP_SYS_TIME},
  {__NR_clock_adjtime, CAP_SYS_TIME},
  {__NR_open_by_handle_at, CAP_DAC_READ_SEARCH},
  {__NR_name_to_handle_at, CAP_DAC_READ_SEARCH},
  {__NR_userfaultfd, NO_CAP},
  {__NR_iopl, CAP_SYS_RAWIO},
  {__NR_ioperm, CAP_SYS_RAWIO},
  {__NR_kcmp, CAP_SYS_PTRACE},
  {__NR_process_vm_readv, CAP_SYS_PTRACE},
  {__NR_process_vm_writev, CAP_SYS_PTRACE},
  {__NR_get_mempolicy, CAP_SYS_NICE},
  {__NR_set_mempolicy, CAP_SYS_NICE},
  {__NR_mbind, CAP_SYS_NICE},
  {__NR_move_pages, CAP_SYS_NICE},
  {__NR_syslog, CAP_SYSLOG},
  {__NR_vhangup, CAP_SYS_TTY_CONFIG},
  {__NR_nfsservctl, NO_CAP},
  {__NR_sysfs, NO_CAP},
  {__NR__sysctl, NO_CAP},
  {__NR_uselib, NO_CAP},
  {__NR_ustat, NO_CAP},
  {__NR_fanotify_init, CAP_SYS_ADMIN},
};

/* personality(2) values Docker allows: PER_LINUX, UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, query. */
static const uint32_t allowed_personality[] = {0x0, 0x0008, 0x20000, 0x20008, 0xffffffff};

enum label { L_NONE, L_ALLOW, L_EPERM, L_ENOSYS, L_KILL };

struct asm_ {
  struct sock_filter *out;
  size_t max, n;
  enum label jt[SECCOMP_MAX_INSNS], jf[SECCOMP_MAX_INSNS];
  int bad;
};

static void emit(struct asm_ *a, uint16_t code, uint32_t k, uint8_t jt, uint8_t jf, enum label ljt, enum label ljf) {
  if (a->n >= a->max || a->n >= SECCOMP_MAX_INSNS) { a->bad = 1; return; }
  a->out[a->n] = (struct sock_filter)BPF_JUMP(code, k, jt, jf);
  a->jt[a->n] = ljt;
  a->jf[a->n] = ljf;
  a->n++;
}

static int has(uint64_t caps, int cap) { return cap != NO_CAP && (caps & (1ull << cap)); }

int seccomp_build(uint64_t caps, struct sock_filter *out, size_t max) {
  struct asm_ a = {.out = out, .max = max};
  const uint32_t nr_off = offsetof(struct seccomp_data, nr);
  const uint32_t arch_off = offsetof(struct seccomp_data, arch);
  /* args[0], low 32 bits (x86_64 is little-endian) */
  const uint32_t arg0_off = offsetof(struct seccomp_data, args);

  emit(&a, BPF_LD | BPF_W | BPF_ABS, arch_off, 0, 0, L_NONE, L_NONE);
  emit(&a, BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0, L_NONE, L_NONE);
  emit(&a, BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS, 0, 0, L_NONE, L_NONE);
  emit(&a, BPF_LD | BPF_W | BPF_ABS, nr_off, 0, 0, L_NONE, L_NONE);
  /* x32 ABI numbers share the x86_64 arch value: refuse them all */
  emit(&a, BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 0, 0, L_EPERM, L_NONE);
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
    if (has(caps, denied[i].cap)) continue;
    emit(&a, BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied[i].nr, 0, 0, L_EPERM, L_NONE);
  }
  if (!has(caps, CAP_SYS_ADMIN)) {
    /* clone3 passes flags in memory BPF cannot read: ENOSYS makes libcs fall back to clone */
    emit(&a, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 0, L_ENOSYS, L_NONE);
    /* clone: no new namespaces (args[0] holds the flags on x86_64) */
    emit(&a, BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 2, L_NONE, L_NONE);
    emit(&a, BPF_LD | BPF_W | BPF_ABS, arg0_off, 0, 0, L_NONE, L_NONE);
    emit(&a, BPF_JMP | BPF_JSET | BPF_K,
         CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP |
             CLONE_NEWTIME,
         0, 0, L_EPERM, L_ALLOW);
  }
  size_t np = sizeof allowed_personality / sizeof allowed_personality[0];
  emit(&a, BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 0, 0, L_NONE, L_ALLOW);
  emit(&a, BPF_LD | BPF_W | BPF_ABS, arg0_off, 0, 0, L_NONE, L_NONE);
  for (size_t i = 0; i < np; i++) emit(&a, BPF_JMP | BPF_JEQ | BPF_K, allowed_personality[i], 0, 0, L_ALLOW, L_NONE);
  emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, 0, 0, L_NONE, L_NONE);

  size_t l_allow = a.n;
  emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ALLOW, 0, 0, L_NONE, L_NONE);
  size_t l_eperm = a.n;
  emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM, 0, 0, L_NONE, L_NONE);
  size_t l_enosys = a.n;
  emit(&a, BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS, 0, 0, L_NONE, L_NONE);
  if (a.bad) return -1;

  /* resolve labels into relative jumps (8-bit: the program must stay short) */
  for (size_t i = 0; i < a.n; i++) {
    enum label ls[2] = {a.jt[i], a.jf[i]};
    for (int k = 0; k < 2; k++) {
      if (ls[k] == L_NONE) continue;
      size_t target = ls[k] == L_ALLOW ? l_allow : ls[k] == L_EPERM ? l_eperm : l_enosys;
      size_t off = target - (i + 1);
      if (off > 255) return -1;
      if (k == 0) out[i].jt = (uint8_t)off;
      else out[i].jf = (uint8_t)off;
    }
  }
  return (int)a.n;
}

int seccomp_install(uint64_t caps) {
  struct sock_filter insns[SECCOMP_MAX_INSNS];
  int n = seccomp_build(caps, insns, SECCOMP_MAX_INSNS);
  if (n < 0) {
    errno = E2BIG;
    return -1;
  }
  struct sock_fprog prog = {(unsigned short)n, insns};
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}
