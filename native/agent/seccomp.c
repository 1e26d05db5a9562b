#define _GNU_SOURCE
#include "seccomp.h"
#include <errno.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Standard base64 with padding (RFC 4648 section 4); returns the decoded length or -1. */
static ssize_t b64_decode(const char *in, unsigned char *out, size_t max) {
  size_t len = strlen(in), o = 0;
  if (len % 4 != 0) return -1;
  for (size_t i = 0; i < len; i += 4) {
    int v[4], pad = 0;
    for (int k = 0; k < 4; k++) {
      unsigned char c = (unsigned char)in[i + k];
      if (c == '=' && i + 4 == len && k >= 2) {
        v[k] = 0;
        pad++;
        continue;
      }
      if (pad) return -1; /* data after padding */
      v[k] = b64_value(c);
      if (v[k] < 0) return -1;
    }
    uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
    unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
    for (int k = 0; k < 3 - pad; k++) {
      if (o >= max) return -1;
      out[o++] = b[k];
    }
  }
  return (ssize_t)o;
}

int seccomp_decode(const char *b64, unsigned flags, seccomp_prog *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  if (flags & ~SECCOMP_ALLOWED_FLAGS) {
    snprintf(err, errlen, "seccomp.flags: 0x%x has bits other than TSYNC, LOG, SPEC_ALLOW", flags);
    return -1;
  }
  size_t max = SECCOMP_MAX_INSNS * sizeof(struct sock_filter);
  unsigned char *buf = malloc(max);
  if (!buf) {
    snprintf(err, errlen, "seccomp.filter: out of memory");
    return -1;
  }
  ssize_t n = b64_decode(b64, buf, max);
  if (n < 0) {
    snprintf(err, errlen, "seccomp.filter: not base64, or longer than %d instructions", SECCOMP_MAX_INSNS);
    free(buf);
    return -1;
  }
  if (n == 0 || n % (ssize_t)sizeof(struct sock_filter) != 0) {
    snprintf(err, errlen, "seccomp.filter: %zd bytes is not a whole number of %zu-byte instructions", n, sizeof(struct sock_filter));
    free(buf);
    return -1;
  }
  out->insns = (struct sock_filter *)buf;
  out->n = (size_t)n / sizeof(struct sock_filter);
  out->flags = flags;
  /* the kernel checks the rest; a program must end in a return for any verdict to exist */
  if (BPF_CLASS(out->insns[out->n - 1].code) != BPF_RET) {
    snprintf(err, errlen, "seccomp.filter: the last instruction is not a return");
    seccomp_free(out);
    return -1;
  }
  return 0;
}

void seccomp_free(seccomp_prog *p) {
  free(p->insns);
  memset(p, 0, sizeof *p);
}

int seccomp_install(const seccomp_prog *p) {
  if (!p->insns) return 0;
  struct sock_fprog prog = {(unsigned short)p->n, p->insns};
  return (int)syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, p->flags, &prog);
}
