/* The device allowlist Docker applies, for cgroup v2: an eBPF BPF_PROG_TYPE_CGROUP_DEVICE
 * program attached to the container's cgroup (v1 uses devices.allow/deny in cgroup.c). */
#ifndef TVM_DEVICES_H
#define TVM_DEVICES_H
#include <linux/bpf.h>
#include <stddef.h>

#define DEVICES_MAX_INSNS 64

/* Assembles the program; returns the instruction count or -1. */
int devices_build(struct bpf_insn *out, size_t max);
/* The verdict the program gives (for tests, without loading it): 1 allow, 0 deny. */
int devices_eval(const struct bpf_insn *prog, int n, unsigned type, unsigned access, unsigned major, unsigned minor);
/* Loads and attaches it to the cgroup directory; 0 or -1 with errno. */
int devices_attach(const char *cgroup_dir);
#endif
