/* The container's seccomp filter. The daemon compiles the profile (Docker's default or the
 * user's) to classic BPF (src/runtime/seccomp-compile.ts) and sends the struct sock_filter
 * array base64-encoded in the spec; the agent checks its shape and installs it verbatim. */
#ifndef TVM_SECCOMP_H
#define TVM_SECCOMP_H
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

/* BPF_MAXINSNS: the kernel's limit */
#define SECCOMP_MAX_INSNS 4096
/* SECCOMP_FILTER_FLAG_TSYNC | LOG | SPEC_ALLOW: the flags a profile may ask for */
#define SECCOMP_ALLOWED_FLAGS 0x7u

typedef struct {
  struct sock_filter *insns; /* NULL: no filter (privileged, seccomp=unconfined) */
  size_t n;
  unsigned flags;
} seccomp_prog;

/* Decodes base64 into a program of 1..SECCOMP_MAX_INSNS instructions whose last one is a
 * return; returns 0 or -1 with a message naming the problem. */
int seccomp_decode(const char *b64, unsigned flags, seccomp_prog *out, char *err, size_t errlen);
void seccomp_free(seccomp_prog *p);
/* seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): the caller holds CAP_SYS_ADMIN or has set
 * no_new_privs. Returns 0 (also when there is no filter) or -1 with errno. */
int seccomp_install(const seccomp_prog *p);
#endif
