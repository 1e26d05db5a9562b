#define _GNU_SOURCE
/* Runs the assembled filter through a small classic-BPF interpreter and checks its verdicts. */
#include "caps.h"
#include "check.h"
#include "seccomp.h"
#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/syscall.h>

static uint32_t run_bpf(const struct sock_filter *f, int n, const struct seccomp_data *d) {
  uint32_t a = 0;
  for (int pc = 0; pc < n; pc++) {
    const struct sock_filter *i = &f[pc];
    switch (i->code) {
      case BPF_LD | BPF_W | BPF_ABS: memcpy(&a, (const char *)d + i->k, 4); break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += a == i->k ? i->jt : i->jf; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += a >= i->k ? i->jt : i->jf; break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += (a & i->k) ? i->jt : i->jf; break;
      case BPF_RET | BPF_K: return i->k;
      default: return 0xdeadbeef;
    }
    if (pc >= n) return 0xdeadbeef;
  }
  return 0xdeadbeef; /* fell off the end: the kernel would refuse the program */
}

static uint32_t verdict(uint64_t caps, uint32_t arch, int nr, uint64_t arg0) {
  struct sock_filter f[SECCOMP_MAX_INSNS];
  int n = seccomp_build(caps, f, SECCOMP_MAX_INSNS);
  struct seccomp_data d;
  memset(&d, 0, sizeof d);
  d.arch = arch;
  d.nr = nr;
  d.args[0] = arg0;
  return n < 0 ? 0xdeadbeef : run_bpf(f, n, &d);
}

#define EPERM_RET (SECCOMP_RET_ERRNO | EPERM)
#define X86_64 AUDIT_ARCH_X86_64

int main(void) {
  uint64_t def = caps_docker_default(), all = caps_all();
  CHECK(seccomp_build(def, (struct sock_filter[SECCOMP_MAX_INSNS]){0}, SECCOMP_MAX_INSNS) > 10);
  CHECK(verdict(def, X86_64, __NR_read, 0) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, X86_64, __NR_execve, 0) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, AUDIT_ARCH_I386, __NR_read, 0) == SECCOMP_RET_KILL_PROCESS);
  CHECK(verdict(def, X86_64, 0x40000000 | __NR_read, 0) == EPERM_RET);
  const int denied[] = {__NR_kexec_load, __NR_init_module, __NR_finit_module, __NR_delete_module, __NR_add_key,
                        __NR_request_key, __NR_keyctl, __NR_bpf, __NR_perf_event_open, __NR_mount, __NR_umount2,
                        __NR_pivot_root, __NR_unshare, __NR_setns, __NR_reboot, __NR_swapon, __NR_swapoff, __NR_acct,
                        __NR_settimeofday, __NR_clock_settime, __NR_open_by_handle_at, __NR_userfaultfd};
  for (size_t i = 0; i < sizeof denied / sizeof denied[0]; i++) {
    uint32_t v = verdict(def, X86_64, denied[i], 0);
    if (v != EPERM_RET) fprintf(stderr, "  syscall %d: 0x%x\n", denied[i], v);
    CHECK(v == EPERM_RET);
  }
  /* capability-gated: CAP_SYS_ADMIN opens mount/unshare, CAP_SYS_TIME settimeofday */
  CHECK(verdict(def | (1ull << CAP_SYS_ADMIN), X86_64, __NR_mount, 0) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def | (1ull << CAP_SYS_TIME), X86_64, __NR_settimeofday, 0) == SECCOMP_RET_ALLOW);
  CHECK(verdict(all, X86_64, __NR_keyctl, 0) == EPERM_RET);
  /* clone: threads/forks fine, namespaces refused; clone3 answers ENOSYS */
  CHECK(verdict(def, X86_64, __NR_clone, CLONE_VM | CLONE_THREAD | CLONE_SIGHAND) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, X86_64, __NR_clone, CLONE_NEWUSER) == EPERM_RET);
  CHECK(verdict(def, X86_64, __NR_clone, CLONE_NEWNS | 17) == EPERM_RET);
  CHECK(verdict(def | (1ull << CAP_SYS_ADMIN), X86_64, __NR_clone, CLONE_NEWNS) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, X86_64, __NR_clone3, 0) == (SECCOMP_RET_ERRNO | ENOSYS));
  /* personality: only Docker's values */
  CHECK(verdict(def, X86_64, __NR_personality, 0) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, X86_64, __NR_personality, 0xffffffff) == SECCOMP_RET_ALLOW);
  CHECK(verdict(def, X86_64, __NR_personality, 0x0040000) == EPERM_RET); /* ADDR_NO_RANDOMIZE */
  CHECK_DONE("test_seccomp");
}
