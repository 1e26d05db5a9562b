#define _GNU_SOURCE
#include "cgroup.h"
#include "devices.h"
#include "util.h"
#include <errno.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CFS_PERIOD_US 100000
/* cpu.shares range (kernel MIN_SHARES, MAX_SHARES) and cpu.weight range (CGROUP_WEIGHT_MIN/MAX) */
#define CPU_SHARES_MIN 2
#define CPU_SHARES_MAX 262144
#define CPU_WEIGHT_MIN 1
#define CPU_WEIGHT_MAX 10000

/* v1 hierarchies we use; missing ones are skipped unless a limit needs them. */
static const char *const v1_controllers[] = {"memory", "cpu", "cpuacct", "pids", "cpuset", "freezer", "blkio", "devices"};

static const char *const device_allow[] = {
    "c *:* m",      "b *:* m", "c 1:3 rwm", /* null */
    "c 1:5 rwm",                            /* zero */
    "c 1:7 rwm",                            /* full */
    "c 1:8 rwm",                            /* random */
    "c 1:9 rwm",                            /* urandom */
    "c 5:0 rwm",                            /* tty */
    "c 5:1 rwm",                            /* console */
    "c 5:2 rwm",                            /* ptmx */
    "c 136:* rwm",                          /* pty slaves */
    "c 10:200 rwm",                         /* tun */
};

static void v1_dir(const container_spec *s, const char *ctrl, char *out, size_t n) {
  snprintf(out, n, "%s/%s/%s", s->cgroup_root, ctrl, s->cgroup_path);
}
static void v2_dir(const container_spec *s, char *out, size_t n) { snprintf(out, n, "%s/%s", s->cgroup_root, s->cgroup_path); }

static int exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static int knob(const char *dir, const char *name, const char *value, char *err, size_t errlen) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  int rc = write_file_str(p, value);
  if (rc < 0) {
    snprintf(err, errlen, "cgroup: writing \"%s\" to %s: %s", value, p, strerror(-rc));
    return -1;
  }
  return 0;
}

static int64_t read_i64(const char *dir, const char *name) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  char *t = read_file(p, NULL);
  if (!t) return -1;
  int64_t v = strncmp(t, "max", 3) == 0 ? -1 : strtoll(t, NULL, 10);
  free(t);
  return v;
}

/* "key value" lines (memory.events, memory.oom_control, cpu.stat) */
static int64_t read_keyed(const char *dir, const char *name, const char *key) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  char *t = read_file(p, NULL);
  if (!t) return -1;
  int64_t v = -1;
  size_t kl = strlen(key);
  for (char *line = t; line && *line;) {
    if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
      v = strtoll(line + kl + 1, NULL, 10);
      break;
    }
    line = strchr(line, '\n');
    if (line) line++;
  }
  free(t);
  return v;
}

/* With a user namespace the group belongs to the container's root, as runc delegates it: the
 * directory and the files that move processes, so a cgroupfs the container mounts is usable. */
static int chown_to_userns_root(const container_spec *s, const char *dir, char *err, size_t errlen) {
  if (!s->userns.nuid) return 0;
  int64_t uid = userns_to_host(s->userns.uid, s->userns.nuid, 0), gid = userns_to_host(s->userns.gid, s->userns.ngid, 0);
  static const char *const files[] = {"", "/cgroup.procs", "/tasks", "/cgroup.threads", "/cgroup.subtree_control"};
  for (size_t i = 0; i < ARRAY_LEN(files); i++) {
    char p[4200];
    snprintf(p, sizeof p, "%s%s", dir, files[i]);
    if (chown(p, (uid_t)uid, (gid_t)gid) < 0 && !(i > 0 && errno == ENOENT)) {
      snprintf(err, errlen, "cgroup: chown %s to the container's root: %s", p, strerror(errno));
      return -1;
    }
  }
  return 0;
}

/* cpuset children start empty in v1: copy cpus/mems down from the parent at each new level. */
static int v1_cpuset_mkdir(const container_spec *s, char *err, size_t errlen) {
  char path[4096], parent[4096];
  snprintf(parent, sizeof parent, "%s/cpuset", s->cgroup_root);
  char rel[1024];
  snprintf(rel, sizeof rel, "%s", s->cgroup_path);
  for (char *save = NULL, *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
    snprintf(path, sizeof path, "%s/%s", parent, c);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
      snprintf(err, errlen, "cgroup: mkdir %s: %s", path, strerror(errno));
      return -1;
    }
    const char *files[] = {"cpuset.cpus", "cpuset.mems"};
    for (int i = 0; i < 2; i++) {
      char fp[4200];
      snprintf(fp, sizeof fp, "%s/%s", path, files[i]);
      char *cur = read_file(fp, NULL);
      int empty = !cur || cur[0] == '\n' || cur[0] == 0;
      free(cur);
      if (!empty) continue;
      snprintf(fp, sizeof fp, "%s/%s", parent, files[i]);
      char *pv = read_file(fp, NULL);
      if (pv) {
        int rc = knob(path, files[i], pv, err, errlen);
        free(pv);
        if (rc < 0) return -1;
      }
    }
    snprintf(parent, sizeof parent, "%s", path);
  }
  return 0;
}

static int create_v1(const container_spec *s, char *err, size_t errlen) {
  char dir[4096], root[4096];
  for (size_t i = 0; i < ARRAY_LEN(v1_controllers); i++) {
    const char *c = v1_controllers[i];
    snprintf(root, sizeof root, "%s/%s", s->cgroup_root, c);
    if (!exists(root)) {
      if ((!strcmp(c, "memory") && s->res.memory) || (!strcmp(c, "pids") && s->res.pids_limit > 0) ||
          (!strcmp(c, "cpu") && (s->res.nano_cpus || s->res.cpu_shares)) ||
          (!strcmp(c, "cpuset") && s->res.cpuset_cpus && *s->res.cpuset_cpus)) {
        snprintf(err, errlen, "cgroup: the %s controller is not mounted at %s", c, root);
        return -1;
      }
      continue;
    }
    v1_dir(s, c, dir, sizeof dir);
    if (exists(dir)) {
      snprintf(err, errlen, "cgroup: %s already exists", dir);
      return -1;
    }
    int rc = strcmp(c, "cpuset") == 0 ? v1_cpuset_mkdir(s, err, errlen) : mkdir_p(dir, 0755);
    if (rc < 0) {
      if (rc != -1) snprintf(err, errlen, "cgroup: mkdir %s: %s", dir, strerror(-rc));
      return -1;
    }
    if (chown_to_userns_root(s, dir, err, errlen) < 0) return -1;
  }
  char v[64];
  if (s->res.memory) {
    v1_dir(s, "memory", dir, sizeof dir);
    snprintf(v, sizeof v, "%" PRId64, s->res.memory);
    if (knob(dir, "memory.limit_in_bytes", v, err, errlen) < 0) return -1;
    char sw[4200];
    snprintf(sw, sizeof sw, "%s/memory.memsw.limit_in_bytes", dir);
    if (exists(sw)) {
      /* Docker: unset swap = as much swap as memory; -1 = unlimited */
      int64_t memsw = s->res.memory_swap == 0 ? 2 * s->res.memory : s->res.memory_swap;
      if (memsw > 0) snprintf(v, sizeof v, "%" PRId64, memsw);
      else snprintf(v, sizeof v, "-1");
      if (knob(dir, "memory.memsw.limit_in_bytes", v, err, errlen) < 0) return -1;
    }
  }
  if (s->res.memory_reservation) {
    v1_dir(s, "memory", dir, sizeof dir);
    snprintf(v, sizeof v, "%" PRId64, s->res.memory_reservation);
    if (knob(dir, "memory.soft_limit_in_bytes", v, err, errlen) < 0) return -1;
  }
  if (s->res.nano_cpus) {
    v1_dir(s, "cpu", dir, sizeof dir);
    snprintf(v, sizeof v, "%d", CFS_PERIOD_US);
    if (knob(dir, "cpu.cfs_period_us", v, err, errlen) < 0) return -1;
    snprintf(v, sizeof v, "%" PRId64, s->res.nano_cpus * CFS_PERIOD_US / 1000000000);
    if (knob(dir, "cpu.cfs_quota_us", v, err, errlen) < 0) return -1;
  }
  if (s->res.cpu_shares) {
    v1_dir(s, "cpu", dir, sizeof dir);
    snprintf(v, sizeof v, "%" PRId64, s->res.cpu_shares < 2 ? 2 : s->res.cpu_shares);
    if (knob(dir, "cpu.shares", v, err, errlen) < 0) return -1;
  }
  if (s->res.pids_limit > 0) {
    v1_dir(s, "pids", dir, sizeof dir);
    snprintf(v, sizeof v, "%" PRId64, s->res.pids_limit);
    if (knob(dir, "pids.max", v, err, errlen) < 0) return -1;
  }
  if (s->res.cpuset_cpus && *s->res.cpuset_cpus) {
    v1_dir(s, "cpuset", dir, sizeof dir);
    if (knob(dir, "cpuset.cpus", s->res.cpuset_cpus, err, errlen) < 0) return -1;
  }
  v1_dir(s, "devices", dir, sizeof dir);
  if (exists(dir) && !s->privileged) {
    /* Docker's device allowlist: mknod of anything (CAP_MKNOD decides), but read/write only
     * the standard nodes and ptys; without it CAP_MKNOD would open the host's disks */
    if (knob(dir, "devices.deny", "a", err, errlen) < 0) return -1;
    for (size_t i = 0; i < ARRAY_LEN(device_allow); i++)
      if (knob(dir, "devices.allow", device_allow[i], err, errlen) < 0) return -1;
  }
  return 0;
}

int cgroup_list_has(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == 0)) return 1;
  return 0;
}

int64_t cgroup_shares_to_weight(int64_t shares) {
  if (shares <= 0) return 0;
  if (shares <= CPU_SHARES_MIN) return CPU_WEIGHT_MIN;
  if (shares >= CPU_SHARES_MAX) return CPU_WEIGHT_MAX;
  /* The quadratic in log2(shares) that runc (>= 1.3.2) and crun (>= 1.23) use: it maps the
   * ends onto each other and v1's default 1024 onto v2's default 100, which the older linear
   * 1 + (shares - 2) * 9999 / 262142 did not (1024 -> 39). */
  double l = log2((double)shares);
  double w = ceil(pow(10.0, (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0));
  return w < CPU_WEIGHT_MIN ? CPU_WEIGHT_MIN : w > CPU_WEIGHT_MAX ? CPU_WEIGHT_MAX : (int64_t)w;
}

/* A kernel built without bpf() (our guest kernel: CONFIG_BPF_SYSCALL is off) can attach no
 * device program. Probed with a call that fails with EFAULT/EINVAL wherever bpf() exists. */
static int bpf_missing(void) {
  static int cached = -1;
  if (cached < 0) cached = syscall(SYS_bpf, BPF_PROG_LOAD, NULL, 0) < 0 && errno == ENOSYS;
  return cached;
}

int cgroup_devices_unfiltered(const container_spec *s) { return s->cgroup_version == 2 && !s->privileged && bpf_missing(); }

/* v2: every ancestor must delegate the controllers we use to its children. */
static int v2_enable_controllers(const container_spec *s, char *err, size_t errlen) {
  char path[4096], rel[1024];
  snprintf(path, sizeof path, "%s", s->cgroup_root);
  snprintf(rel, sizeof rel, "%s", s->cgroup_path);
  char *save = NULL;
  char *c = strtok_r(rel, "/", &save);
  while (c) {
    char fp[4200];
    snprintf(fp, sizeof fp, "%s/cgroup.controllers", path);
    char *avail = read_file(fp, NULL);
    const char *want[] = {"memory", "cpu", "pids", "cpuset"};
    for (int i = 0; avail && i < 4; i++) {
      if (!cgroup_list_has(avail, want[i])) continue;
      char val[32];
      snprintf(val, sizeof val, "+%s", want[i]);
      knob(path, "cgroup.subtree_control", val, err, errlen); /* best effort: checked via limits below */
    }
    free(avail);
    size_t l = strlen(path);
    snprintf(path + l, sizeof path - l, "/%s", c);
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
      snprintf(err, errlen, "cgroup: mkdir %s: %s", path, strerror(errno));
      return -1;
    }
    c = strtok_r(NULL, "/", &save);
  }
  err[0] = 0;
  return 0;
}

static int create_v2(container_spec *s, char *err, size_t errlen) {
  char dir[4096], v[64];
  v2_dir(s, dir, sizeof dir);
  if (exists(dir)) {
    snprintf(err, errlen, "cgroup: %s already exists", dir);
    return -1;
  }
  if (v2_enable_controllers(s, err, errlen) < 0) return -1;
  if (chown_to_userns_root(s, dir, err, errlen) < 0) return -1;
  if (s->res.memory) {
    snprintf(v, sizeof v, "%" PRId64, s->res.memory);
    if (knob(dir, "memory.max", v, err, errlen) < 0) return -1;
    int64_t memsw = s->res.memory_swap == 0 ? 2 * s->res.memory : s->res.memory_swap;
    if (memsw > 0) snprintf(v, sizeof v, "%" PRId64, memsw - s->res.memory);
    else snprintf(v, sizeof v, "max");
    char sw[4200];
    snprintf(sw, sizeof sw, "%s/memory.swap.max", dir);
    if (exists(sw) && knob(dir, "memory.swap.max", v, err, errlen) < 0) return -1;
  }
  if (s->res.memory_reservation) {
    snprintf(v, sizeof v, "%" PRId64, s->res.memory_reservation);
    if (knob(dir, "memory.low", v, err, errlen) < 0) return -1;
  }
  if (s->res.nano_cpus) {
    snprintf(v, sizeof v, "%" PRId64 " %d", s->res.nano_cpus * CFS_PERIOD_US / 1000000000, CFS_PERIOD_US);
    if (knob(dir, "cpu.max", v, err, errlen) < 0) return -1;
  }
  if (s->res.cpu_shares) {
    snprintf(v, sizeof v, "%" PRId64, cgroup_shares_to_weight(s->res.cpu_shares));
    if (knob(dir, "cpu.weight", v, err, errlen) < 0) return -1;
  }
  if (s->res.pids_limit > 0) {
    snprintf(v, sizeof v, "%" PRId64, s->res.pids_limit);
    if (knob(dir, "pids.max", v, err, errlen) < 0) return -1;
  }
  if (s->res.cpuset_cpus && *s->res.cpuset_cpus && knob(dir, "cpuset.cpus", s->res.cpuset_cpus, err, errlen) < 0) return -1;
  /* Without bpf() v2 has no device control at all: withhold CAP_MKNOD instead, so the container
   * cannot make a node beyond the allowlisted ones its /dev is given (this is our guest kernel,
   * where the VM is the boundary; every distribution kernel with cgroup v2 has bpf()). */
  if (cgroup_devices_unfiltered(s)) s->caps &= ~(1ull << CAP_MKNOD);
  else if (!s->privileged && devices_attach(dir) < 0) {
    snprintf(err, errlen, "cgroup: attaching the device filter to %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

int cgroup_create(container_spec *s, char *err, size_t errlen) {
  if (!s->cgroup_version) return 0;
  int rc = s->cgroup_version == 1 ? create_v1(s, err, errlen) : create_v2(s, err, errlen);
  if (rc < 0 && !strstr(err, "already exists")) cgroup_destroy(s);
  return rc;
}

int cgroup_join(const container_spec *s, pid_t pid, char *err, size_t errlen) {
  char dir[4096], v[32];
  snprintf(v, sizeof v, "%d", (int)pid);
  if (s->cgroup_version == 2) {
    v2_dir(s, dir, sizeof dir);
    return knob(dir, "cgroup.procs", v, err, errlen);
  }
  if (s->cgroup_version != 1) return 0;
  for (size_t i = 0; i < ARRAY_LEN(v1_controllers); i++) {
    v1_dir(s, v1_controllers[i], dir, sizeof dir);
    if (!exists(dir)) continue;
    if (knob(dir, "cgroup.procs", v, err, errlen) < 0) return -1;
  }
  return 0;
}

int cgroup_freeze(const container_spec *s, int frozen, char *err, size_t errlen) {
  char dir[4096];
  if (s->cgroup_version == 2) {
    v2_dir(s, dir, sizeof dir);
    if (knob(dir, "cgroup.freeze", frozen ? "1" : "0", err, errlen) < 0) return -1;
    for (int i = 0; i < 1000; i++) {
      if (read_keyed(dir, "cgroup.events", "frozen") == frozen) return 0;
      usleep(1000);
    }
    snprintf(err, errlen, "cgroup: %s did not %s", dir, frozen ? "freeze" : "thaw");
    return -1;
  }
  if (s->cgroup_version != 1) {
    snprintf(err, errlen, "pause needs the freezer cgroup, which this agent has no cgroup for");
    return -1;
  }
  v1_dir(s, "freezer", dir, sizeof dir);
  const char *want = frozen ? "FROZEN" : "THAWED";
  for (int i = 0; i < 1000; i++) {
    if (knob(dir, "freezer.state", want, err, errlen) < 0) return -1;
    char p[4200];
    snprintf(p, sizeof p, "%s/freezer.state", dir);
    char *st = read_file(p, NULL);
    int done = st && strncmp(st, want, strlen(want)) == 0;
    free(st);
    if (done) return 0;
    usleep(1000); /* FREEZING: the kernel is still stopping tasks */
  }
  snprintf(err, errlen, "cgroup: %s stuck while changing to %s", dir, want);
  return -1;
}

int cgroup_stats_read(const container_spec *s, cgroup_stats *o) {
  char dir[4096];
  memset(o, 0, sizeof *o);
  if (s->cgroup_version == 1) {
    v1_dir(s, "memory", dir, sizeof dir);
    o->mem_usage = read_i64(dir, "memory.usage_in_bytes");
    o->mem_limit = read_i64(dir, "memory.limit_in_bytes");
    o->mem_max_usage = read_i64(dir, "memory.max_usage_in_bytes");
    v1_dir(s, "cpuacct", dir, sizeof dir);
    o->cpu_usage_ns = read_i64(dir, "cpuacct.usage");
    v1_dir(s, "pids", dir, sizeof dir);
    o->pids_current = read_i64(dir, "pids.current");
    o->pids_limit = read_i64(dir, "pids.max");
  } else if (s->cgroup_version == 2) {
    v2_dir(s, dir, sizeof dir);
    o->mem_usage = read_i64(dir, "memory.current");
    o->mem_limit = read_i64(dir, "memory.max");
    o->mem_max_usage = read_i64(dir, "memory.peak");
    int64_t us = read_keyed(dir, "cpu.stat", "usage_usec");
    o->cpu_usage_ns = us < 0 ? -1 : us * 1000;
    o->pids_current = read_i64(dir, "pids.current");
    o->pids_limit = read_i64(dir, "pids.max");
  }
  return 0;
}

int64_t cgroup_oom_kills(const container_spec *s) {
  char dir[4096];
  if (s->cgroup_version == 1) {
    v1_dir(s, "memory", dir, sizeof dir);
    return read_keyed(dir, "memory.oom_control", "oom_kill");
  }
  if (s->cgroup_version == 2) {
    v2_dir(s, dir, sizeof dir);
    return read_keyed(dir, "memory.events", "oom_kill");
  }
  return -1;
}

int cgroup_pids(const container_spec *s, pid_t *pids, int n) {
  char dir[4096], p[4200];
  if (s->cgroup_version == 1) v1_dir(s, "pids", dir, sizeof dir);
  else if (s->cgroup_version == 2) v2_dir(s, dir, sizeof dir);
  else return -1;
  if (s->cgroup_version == 1 && !exists(dir)) v1_dir(s, "memory", dir, sizeof dir);
  snprintf(p, sizeof p, "%s/cgroup.procs", dir);
  char *t = read_file(p, NULL);
  if (!t) return -1;
  int count = 0;
  for (char *q = t; *q && count < n;) {
    char *end;
    long v = strtol(q, &end, 10);
    if (end == q) break;
    pids[count++] = (pid_t)v;
    q = end;
    while (*q == '\n') q++;
  }
  free(t);
  return count;
}

/* ---------- docker update ---------- */

/* One v1 memory limit file (<= 0: unlimited). EBUSY, the limit below what the group uses,
 * worded as runc does. */
static int v1_write_limit(const char *dir, const char *file, const char *usage, const char *peak, const char *what, int64_t val, char *err,
                          size_t errlen) {
  char p[4200], v[32];
  snprintf(p, sizeof p, "%s/%s", dir, file);
  if (val > 0) snprintf(v, sizeof v, "%" PRId64, val);
  else snprintf(v, sizeof v, "-1");
  int rc = write_file_str(p, v);
  if (rc == -EBUSY) {
    snprintf(err, errlen, "unable to set %s to %" PRId64 " (current usage: %" PRId64 ", peak usage: %" PRId64 ")", what, val,
             read_i64(dir, usage), read_i64(dir, peak));
    return -1;
  }
  if (rc < 0) {
    snprintf(err, errlen, "cgroup: writing \"%s\" to %s: %s", v, p, strerror(-rc));
    return -1;
  }
  return 0;
}

/* v1 memory and memory+swap: the kernel keeps limit <= memsw at every step, so the larger of the
 * two moves first (runc's order). */
static int v1_update_memory(const container_spec *s, int64_t mem, int64_t memsw, int set_memsw, char *err, size_t errlen) {
  char dir[4096], sw[4200];
  v1_dir(s, "memory", dir, sizeof dir);
  snprintf(sw, sizeof sw, "%s/memory.memsw.limit_in_bytes", dir);
  int have_memsw = set_memsw && exists(sw);
  int64_t cur = read_i64(dir, "memory.limit_in_bytes");
  int memsw_first = have_memsw && (memsw < 0 || (cur >= 0 && memsw > cur));
  for (int step = 0; step < 2; step++) {
    int do_memsw = (step == 0) == memsw_first;
    if (do_memsw && have_memsw &&
        v1_write_limit(dir, "memory.memsw.limit_in_bytes", "memory.memsw.usage_in_bytes", "memory.memsw.max_usage_in_bytes",
                       "memory+swap limit", memsw, err, errlen) < 0)
      return -1;
    if (!do_memsw && mem &&
        v1_write_limit(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory limit", mem, err,
                       errlen) < 0)
      return -1;
  }
  return 0;
}

static int update_v1(const container_spec *s, const resources_spec *n, unsigned set, char *err, size_t errlen) {
  char dir[4096], v[64];
  if (set & (RES_MEMORY | RES_MEMORY_SWAP)) {
    int64_t memsw = n->memory_swap == 0 ? 2 * n->memory : n->memory_swap;
    if (v1_update_memory(s, n->memory, memsw, n->memory != 0, err, errlen) < 0) return -1;
  }
  if (set & RES_MEMORY_RESERVATION) {
    v1_dir(s, "memory", dir, sizeof dir);
    if (n->memory_reservation > 0) snprintf(v, sizeof v, "%" PRId64, n->memory_reservation);
    else snprintf(v, sizeof v, "-1");
    if (knob(dir, "memory.soft_limit_in_bytes", v, err, errlen) < 0) return -1;
  }
  if (set & RES_NANO_CPUS) {
    v1_dir(s, "cpu", dir, sizeof dir);
    snprintf(v, sizeof v, "%d", CFS_PERIOD_US);
    if (knob(dir, "cpu.cfs_period_us", v, err, errlen) < 0) return -1;
    if (n->nano_cpus > 0) snprintf(v, sizeof v, "%" PRId64, n->nano_cpus * CFS_PERIOD_US / 1000000000);
    else snprintf(v, sizeof v, "-1");
    if (knob(dir, "cpu.cfs_quota_us", v, err, errlen) < 0) return -1;
  }
  if (set & RES_CPU_SHARES) {
    v1_dir(s, "cpu", dir, sizeof dir);
    snprintf(v, sizeof v, "%" PRId64, n->cpu_shares < 2 ? (n->cpu_shares ? 2 : 1024) : n->cpu_shares);
    if (knob(dir, "cpu.shares", v, err, errlen) < 0) return -1;
  }
  if (set & RES_PIDS_LIMIT) {
    v1_dir(s, "pids", dir, sizeof dir);
    if (n->pids_limit > 0) snprintf(v, sizeof v, "%" PRId64, n->pids_limit);
    else snprintf(v, sizeof v, "max");
    if (knob(dir, "pids.max", v, err, errlen) < 0) return -1;
  }
  if ((set & RES_CPUSET_CPUS) && n->cpuset_cpus && *n->cpuset_cpus) {
    v1_dir(s, "cpuset", dir, sizeof dir);
    if (knob(dir, "cpuset.cpus", n->cpuset_cpus, err, errlen) < 0) return -1;
  }
  return 0;
}

static int update_v2(const container_spec *s, const resources_spec *n, unsigned set, char *err, size_t errlen) {
  char dir[4096], v[64], sw[4200];
  v2_dir(s, dir, sizeof dir);
  if ((set & (RES_MEMORY | RES_MEMORY_SWAP)) && n->memory) {
    snprintf(v, sizeof v, "%" PRId64, n->memory);
    if (knob(dir, "memory.max", v, err, errlen) < 0) return -1;
    int64_t memsw = n->memory_swap == 0 ? 2 * n->memory : n->memory_swap;
    if (memsw > 0) snprintf(v, sizeof v, "%" PRId64, memsw - n->memory);
    else snprintf(v, sizeof v, "max");
    snprintf(sw, sizeof sw, "%s/memory.swap.max", dir);
    if (exists(sw) && knob(dir, "memory.swap.max", v, err, errlen) < 0) return -1;
  }
  if (set & RES_MEMORY_RESERVATION) {
    snprintf(v, sizeof v, "%" PRId64, n->memory_reservation > 0 ? n->memory_reservation : 0);
    if (knob(dir, "memory.low", v, err, errlen) < 0) return -1;
  }
  if (set & RES_NANO_CPUS) {
    if (n->nano_cpus > 0) snprintf(v, sizeof v, "%" PRId64 " %d", n->nano_cpus * CFS_PERIOD_US / 1000000000, CFS_PERIOD_US);
    else snprintf(v, sizeof v, "max %d", CFS_PERIOD_US);
    if (knob(dir, "cpu.max", v, err, errlen) < 0) return -1;
  }
  if (set & RES_CPU_SHARES) {
    snprintf(v, sizeof v, "%" PRId64, n->cpu_shares ? cgroup_shares_to_weight(n->cpu_shares) : 100);
    if (knob(dir, "cpu.weight", v, err, errlen) < 0) return -1;
  }
  if (set & RES_PIDS_LIMIT) {
    if (n->pids_limit > 0) snprintf(v, sizeof v, "%" PRId64, n->pids_limit);
    else snprintf(v, sizeof v, "max");
    if (knob(dir, "pids.max", v, err, errlen) < 0) return -1;
  }
  if ((set & RES_CPUSET_CPUS) && n->cpuset_cpus && *n->cpuset_cpus && knob(dir, "cpuset.cpus", n->cpuset_cpus, err, errlen) < 0) return -1;
  return 0;
}

int cgroup_update(container_spec *s, const resources_update *u, char *err, size_t errlen) {
  /* the limits after the update: the current ones with what u sets */
  resources_spec n = s->res;
  const resources_spec *r = &u->res;
  if (u->set & RES_MEMORY) n.memory = r->memory;
  if (u->set & RES_MEMORY_SWAP) n.memory_swap = r->memory_swap;
  if (u->set & RES_MEMORY_RESERVATION) n.memory_reservation = r->memory_reservation;
  if (u->set & RES_NANO_CPUS) n.nano_cpus = r->nano_cpus;
  if (u->set & RES_CPU_SHARES) n.cpu_shares = r->cpu_shares;
  if (u->set & RES_PIDS_LIMIT) n.pids_limit = r->pids_limit;
  if (u->set & RES_CPUSET_CPUS) n.cpuset_cpus = r->cpuset_cpus;
  if (n.memory_swap > 0 && n.memory_swap < n.memory) {
    snprintf(err, errlen, "Minimum memoryswap limit should be larger than memory limit, see usage");
    return -1;
  }
  int rc = 0;
  if (s->cgroup_version == 1) rc = update_v1(s, &n, u->set, err, errlen);
  else if (s->cgroup_version == 2) rc = update_v2(s, &n, u->set, err, errlen);
  else {
    snprintf(err, errlen, "update needs a cgroup, which this agent has none of");
    return -1;
  }
  if (rc < 0) return -1;
  char *cpus = s->res.cpuset_cpus;
  if (u->set & RES_CPUSET_CPUS) {
    n.cpuset_cpus = r->cpuset_cpus ? strdup(r->cpuset_cpus) : NULL;
    free(cpus);
  }
  s->res = n;
  return 0;
}

int cgroup_destroy(const container_spec *s) {
  char dir[4096];
  int result = 0;
  if (s->cgroup_version == 2) {
    v2_dir(s, dir, sizeof dir);
    for (int i = 0; i < 100 && rmdir(dir) < 0 && errno == EBUSY; i++) usleep(10000);
    if (exists(dir)) result = -errno;
    return result;
  }
  if (s->cgroup_version != 1) return 0;
  for (size_t i = 0; i < ARRAY_LEN(v1_controllers); i++) {
    v1_dir(s, v1_controllers[i], dir, sizeof dir);
    if (!exists(dir)) continue;
    /* a frozen group never empties: thaw first */
    if (!strcmp(v1_controllers[i], "freezer")) {
      char fp[4200];
      snprintf(fp, sizeof fp, "%s/freezer.state", dir);
      write_file_str(fp, "THAWED");
    }
    for (int k = 0; k < 100 && rmdir(dir) < 0 && errno == EBUSY; k++) usleep(10000);
    if (exists(dir)) result = -EBUSY;
  }
  return result;
}
