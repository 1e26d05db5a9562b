#define _GNU_SOURCE
/* The agent's side of seccomp: decoding the daemon's base64 program strictly, and installing it
 * for real in a child (a filter refusing mkdir with EPERM; no_new_privs first, as an
 * unprivileged caller must). The compiler itself is tested in test/unit/runtime/seccomp.test.ts. */
#include "check.h"
#include "seccomp.h"
#include "spec.h"
#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64(const void *data, size_t n) {
  const unsigned char *p = data;
  char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    *o++ = b64chars[w >> 18 & 63];
    *o++ = b64chars[w >> 12 & 63];
    *o++ = i + 1 < n ? b64chars[w >> 6 & 63] : '=';
    *o++ = i + 2 < n ? b64chars[w & 63] : '=';
  }
  *o = 0;
  return out;
}

/* x86_64 only; mkdir -> EPERM; everything else allowed */
static const struct sock_filter deny_mkdir[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mkdir, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

/* a whole create spec with extra top-level keys */
static int spec_with(const char *extra, container_spec *s, char *err, size_t errlen) {
  char buf[8192];
  snprintf(buf, sizeof buf,
           "{\"id\":\"c1\",\"network\":\"none\",\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/t\"},"
           "\"process\":{\"args\":[\"sh\"]},\"logPath\":\"/x/log\"%s}",
           extra);
  jval *v = json_parse(buf, strlen(buf), err, errlen);
  if (!v) return -2;
  int rc = spec_parse(v, s, err, errlen);
  json_free(v);
  return rc;
}

int main(void) {
  char err[256];
  seccomp_prog p;
  char *enc = b64(deny_mkdir, sizeof deny_mkdir);
  CHECK(seccomp_decode(enc, 0, &p, err, sizeof err) == 0);
  CHECK(p.n == sizeof deny_mkdir / sizeof deny_mkdir[0]);
  CHECK(p.insns && memcmp(p.insns, deny_mkdir, sizeof deny_mkdir) == 0);

  /* installed for real in a child: mkdir fails with EPERM, rmdir still runs */
  char dir[] = "/tmp/tvm-seccomp-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  pid_t pid = fork();
  if (pid == 0) {
    char sub[64];
    snprintf(sub, sizeof sub, "%s/x", dir);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_install(&p) < 0) _exit(2);
    if (mkdir(sub, 0755) == 0 || errno != EPERM) _exit(3);
    if (rmdir(dir) < 0) _exit(4);
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  rmdir(dir);
  seccomp_free(&p);
  CHECK(p.insns == NULL);
  CHECK(seccomp_install(&p) == 0); /* no filter: nothing to install */
  free(enc);

  /* flags: only TSYNC, LOG, SPEC_ALLOW */
  enc = b64(deny_mkdir, sizeof deny_mkdir);
  CHECK(seccomp_decode(enc, 2, &p, err, sizeof err) == 0 && p.flags == 2);
  seccomp_free(&p);
  CHECK(seccomp_decode(enc, 8, &p, err, sizeof err) < 0 && strstr(err, "seccomp.flags"));
  free(enc);

  /* not a whole number of instructions */
  enc = b64(deny_mkdir, 12);
  CHECK(seccomp_decode(enc, 0, &p, err, sizeof err) < 0 && strstr(err, "whole number"));
  free(enc);
  /* must end in a return */
  enc = b64(deny_mkdir, 5 * sizeof(struct sock_filter));
  CHECK(seccomp_decode(enc, 0, &p, err, sizeof err) < 0 && strstr(err, "not a return"));
  free(enc);
  /* bad base64: characters, length, data after padding, empty */
  CHECK(seccomp_decode("AAA*AAAA", 0, &p, err, sizeof err) < 0 && strstr(err, "base64"));
  CHECK(seccomp_decode("AAAAA", 0, &p, err, sizeof err) < 0);
  CHECK(seccomp_decode("AA=AAAAA", 0, &p, err, sizeof err) < 0);
  CHECK(seccomp_decode("", 0, &p, err, sizeof err) < 0);
  /* longer than BPF_MAXINSNS */
  size_t big = (SECCOMP_MAX_INSNS + 1) * sizeof(struct sock_filter);
  struct sock_filter *many = calloc(SECCOMP_MAX_INSNS + 1, sizeof *many);
  for (int i = 0; i <= SECCOMP_MAX_INSNS; i++) many[i] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  enc = b64(many, big);
  CHECK(seccomp_decode(enc, 0, &p, err, sizeof err) < 0 && strstr(err, "longer than 4096"));
  free(enc);
  enc = b64(many, big - sizeof(struct sock_filter));
  CHECK(seccomp_decode(enc, 0, &p, err, sizeof err) == 0 && p.n == SECCOMP_MAX_INSNS);
  seccomp_free(&p);
  free(enc);
  free(many);

  /* in the create spec: "seccomp" {filter, flags} and "noNewPrivileges"; absent = no filter */
  container_spec cs;
  char extra[2048];
  enc = b64(deny_mkdir, sizeof deny_mkdir);
  snprintf(extra, sizeof extra, ",\"seccomp\":{\"filter\":\"%s\",\"flags\":1},\"noNewPrivileges\":true,\"init\":true", enc);
  CHECK(spec_with(extra, &cs, err, sizeof err) == 0);
  CHECK(cs.seccomp.n == 7 && cs.seccomp.flags == 1 && cs.no_new_privs && cs.opts.init);
  spec_free(&cs);
  CHECK(spec_with("", &cs, err, sizeof err) == 0 && cs.seccomp.insns == NULL && !cs.no_new_privs);
  spec_free(&cs);
  snprintf(extra, sizeof extra, ",\"seccomp\":{\"filter\":\"%s\",\"bpf\":1}", enc);
  CHECK(spec_with(extra, &cs, err, sizeof err) < 0 && strstr(err, "spec.seccomp: unknown key \"bpf\""));
  spec_free(&cs);
  CHECK(spec_with(",\"seccomp\":{\"filter\":\"!!\"}", &cs, err, sizeof err) < 0 && strstr(err, "seccomp.filter"));
  spec_free(&cs);
  CHECK(spec_with(",\"seccomp\":{}", &cs, err, sizeof err) < 0 && strstr(err, "spec.seccomp.filter: required"));
  spec_free(&cs);
  free(enc);
  CHECK_DONE("test_seccomp");
}
