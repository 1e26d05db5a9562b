/* The default seccomp filter, assembled as classic BPF: x86_64 only (anything else is killed),
 * and the syscalls Docker's default profile refuses answer EPERM unless the container holds the
 * capability Docker's profile gates them on. */
#ifndef TVM_SECCOMP_H
#define TVM_SECCOMP_H
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#define SECCOMP_MAX_INSNS 256

/* Builds the filter for a container holding the capabilities in caps; returns the number of
 * instructions, or -1 if it does not fit. */
int seccomp_build(uint64_t caps, struct sock_filter *out, size_t max);
/* Installs it (no_new_privs must already be set); returns 0 or -1 with errno. */
int seccomp_install(uint64_t caps);
#endif
