#define _GNU_SOURCE
#include "caps.h"
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const names[CAPS_KNOWN] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

int cap_from_name(const char *name) {
  if (strncasecmp(name, "CAP_", 4) == 0) name += 4;
  for (int i = 0; i < CAPS_KNOWN; i++)
    if (strcasecmp(names[i], name) == 0) return i;
  return -1;
}

const char *cap_name(int cap) { return cap >= 0 && cap < CAPS_KNOWN ? names[cap] : "?"; }

uint64_t caps_docker_default(void) {
  static const int def[] = {CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,  CAP_FOWNER,           CAP_MKNOD,      CAP_NET_RAW, CAP_SETGID,
                            CAP_SETUID, CAP_SETFCAP,      CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,    CAP_AUDIT_WRITE};
  uint64_t m = 0;
  for (size_t i = 0; i < sizeof def / sizeof def[0]; i++) m |= 1ull << def[i];
  return m;
}

uint64_t caps_all(void) { return (1ull << CAPS_KNOWN) - 1; }

static int has_all(const char *const *v, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcasecmp(v[i], "ALL") == 0 || strcasecmp(v[i], "CAP_ALL") == 0) return 1;
  return 0;
}

static int mask_of(const char *const *v, size_t n, uint64_t *out, char *err, size_t errlen) {
  uint64_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (strcasecmp(v[i], "ALL") == 0 || strcasecmp(v[i], "CAP_ALL") == 0) continue;
    int c = cap_from_name(v[i]);
    if (c < 0) {
      snprintf(err, errlen, "unknown capability: \"%s\"", v[i]);
      return -1;
    }
    m |= 1ull << c;
  }
  *out = m;
  return 0;
}

int caps_compute(const char *const *add, size_t nadd, const char *const *drop, size_t ndrop, int privileged, uint64_t *out, char *err,
                 size_t errlen) {
  uint64_t a, d;
  if (mask_of(add, nadd, &a, err, errlen) < 0 || mask_of(drop, ndrop, &d, err, errlen) < 0) return -1;
  if (privileged) *out = caps_all();
  else if (has_all(add, nadd)) *out = caps_all() & ~d;
  else if (has_all(drop, ndrop)) *out = a;
  /* moby's TweakCapabilities: drop from the defaults first, then add (add X + drop X keeps X) */
  else *out = (caps_docker_default() & ~d) | a;
  return 0;
}

static int last_cap(void) {
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
  int v = CAPS_KNOWN - 1;
  if (f) {
    if (fscanf(f, "%d", &v) != 1) v = CAPS_KNOWN - 1;
    fclose(f);
  }
  return v;
}

int caps_apply_bounding(uint64_t keep) {
  int last = last_cap();
  for (int c = 0; c <= last && c < CAPS_MAX; c++) {
    if (keep & (1ull << c)) continue;
    if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL) return -1;
  }
  return 0;
}

int caps_apply_sets(uint64_t keep) {
  int last = last_cap();
  if (last < 63) keep &= (2ull << last) - 1;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  /* never ask for more than we hold (a host may withhold some, e.g. from a privileged container) */
  memset(data, 0, sizeof data);
  if (syscall(SYS_capget, &hdr, data) < 0) return -1;
  keep &= ((uint64_t)data[1].permitted << 32) | data[0].permitted;
  memset(data, 0, sizeof data);
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  data[0].effective = data[0].permitted = (uint32_t)keep;
  data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
  if (syscall(SYS_capset, &hdr, data) < 0) return -1;
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
  return 0;
}
