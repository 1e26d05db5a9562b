#define _GNU_SOURCE
#include "hostopts.h"
#include "mounts.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define ERR(...)                                                                                                                           \
  do {                                                                                                                                     \
    snprintf(err, errlen, __VA_ARGS__);                                                                                                    \
    return -1;                                                                                                                             \
  } while (0)

const char *const hostopts_keys[] = {"ulimits", "sysctls",        "shmSize",     "init",          "groupAdd", "oomScoreAdj",
                                     "devices", "oomKillDisable", "maskedPaths", "readonlyPaths", NULL};

/* go-units' ulimit names, as docker run --ulimit takes them */
static const struct {
  const char *name;
  int res;
} rlimits[] = {
    {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},         {"fsize", RLIMIT_FSIZE},
    {"locks", RLIMIT_LOCKS},       {"memlock", RLIMIT_MEMLOCK},
    {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},     {"nproc", RLIMIT_NPROC},
    {"rss", RLIMIT_RSS},           {"rtprio", RLIMIT_RTPRIO},
    {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

int hostopts_rlimit_of(const char *name) {
  for (size_t i = 0; i < ARRAY_LEN(rlimits); i++)
    if (strcmp(rlimits[i].name, name) == 0) return rlimits[i].res;
  return -1;
}

static int obj_check(const jval *o, const char *where, const char *const *keys, char *err, size_t errlen) {
  if (!o || o->type != J_OBJ) ERR("%s: expected an object", where);
  for (size_t i = 0; i < o->len; i++) {
    int ok = 0;
    for (const char *const *k = keys; *k; k++) ok |= strcmp(*k, o->keys[i]) == 0;
    if (!ok) ERR("%s: unknown key \"%s\"", where, o->keys[i]);
  }
  return 0;
}

static int int_of(const jval *v, const char *where, int64_t min, int64_t max, int64_t *out, char *err, size_t errlen) {
  if (!v || v->type != J_NUM || !v->is_int) ERR("%s: expected an integer", where);
  if (v->i64 < min || v->i64 > max) ERR("%s: %lld is outside %lld..%lld", where, (long long)v->i64, (long long)min, (long long)max);
  *out = v->i64;
  return 0;
}

static int str_of(const jval *v, const char *where, const char **out, char *err, size_t errlen) {
  if (!v || v->type != J_STR) ERR("%s: expected a string", where);
  *out = v->str;
  return 0;
}

static int parse_ulimits(const jval *v, host_opts *o, char *err, size_t errlen) {
  static const char *const keys[] = {"name", "soft", "hard", NULL};
  if (v->type != J_ARR) ERR("spec.ulimits: expected an array");
  o->ulimits = calloc(v->len + 1, sizeof *o->ulimits);
  if (!o->ulimits) ERR("spec.ulimits: out of memory");
  for (size_t i = 0; i < v->len; i++) {
    char w[64];
    snprintf(w, sizeof w, "spec.ulimits[%zu]", i);
    const jval *u = &v->items[i];
    const char *name;
    ulimit_spec *l = &o->ulimits[i];
    if (obj_check(u, w, keys, err, errlen) < 0 || str_of(json_get(u, "name"), w, &name, err, errlen) < 0) return -1;
    if ((l->resource = hostopts_rlimit_of(name)) < 0) ERR("%s.name: invalid ulimit type: %s", w, name);
    if (int_of(json_get(u, "soft"), w, -1, INT64_MAX, &l->soft, err, errlen) < 0) return -1;
    if (int_of(json_get(u, "hard"), w, -1, INT64_MAX, &l->hard, err, errlen) < 0) return -1;
    /* -1 (unlimited) is the largest value */
    if ((uint64_t)l->soft > (uint64_t)l->hard)
      ERR("%s: ulimit soft limit must be less than or equal to hard limit: %lld > %lld", w, (long long)l->soft, (long long)l->hard);
    o->nulimits = i + 1;
  }
  return 0;
}

static int parse_sysctls(const jval *v, host_opts *o, char *err, size_t errlen) {
  if (v->type != J_OBJ) ERR("spec.sysctls: expected an object");
  o->sysctl_keys = calloc(v->len + 1, sizeof(char *));
  o->sysctl_vals = calloc(v->len + 1, sizeof(char *));
  if (!o->sysctl_keys || !o->sysctl_vals) ERR("spec.sysctls: out of memory");
  for (size_t i = 0; i < v->len; i++) {
    const char *k = v->keys[i];
    if (v->items[i].type != J_STR) ERR("spec.sysctls.%s: expected a string", k);
    /* the daemon has checked Docker's namespaced list; here only that it stays under /proc/sys */
    if (!*k || k[0] == '.' || strstr(k, "..") || strchr(k, '/')) ERR("spec.sysctls: invalid key \"%s\"", k);
    o->sysctl_keys[i] = strdup(k);
    o->sysctl_vals[i] = strdup(v->items[i].str);
    o->nsysctls = i + 1;
  }
  return 0;
}

static int parse_devices(const jval *v, host_opts *o, char *err, size_t errlen) {
  static const char *const keys[] = {"path", "containerPath", "permissions", NULL};
  if (v->type != J_ARR) ERR("spec.devices: expected an array");
  o->devices = calloc(v->len + 1, sizeof *o->devices);
  if (!o->devices) ERR("spec.devices: out of memory");
  for (size_t i = 0; i < v->len; i++) {
    char w[64];
    snprintf(w, sizeof w, "spec.devices[%zu]", i);
    const jval *d = &v->items[i];
    const char *path, *cpath, *perms;
    device_spec *ds = &o->devices[i];
    if (obj_check(d, w, keys, err, errlen) < 0 || str_of(json_get(d, "path"), w, &path, err, errlen) < 0 ||
        str_of(json_get(d, "containerPath"), w, &cpath, err, errlen) < 0 || str_of(json_get(d, "permissions"), w, &perms, err, errlen) < 0)
      return -1;
    o->ndevices = i + 1;
    ds->path = strdup(path);
    ds->cpath = strdup(cpath);
    if (path[0] != '/' || cpath[0] != '/' || strstr(cpath, "..")) ERR("%s: paths must be absolute, without \"..\"", w);
    if (!*perms || strlen(perms) > 3 || strspn(perms, "rwm") != strlen(perms)) ERR("%s.permissions: invalid \"%s\"", w, perms);
    snprintf(ds->perms, sizeof ds->perms, "%s", perms);
    struct stat st;
    if (stat(path, &st) < 0) ERR("error gathering device information while adding custom device \"%s\": %s", path, strerror(errno));
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode))
      ERR("error gathering device information while adding custom device \"%s\": not a device node", path);
    ds->type = st.st_mode & S_IFMT;
    ds->major = major(st.st_rdev);
    ds->minor = minor(st.st_rdev);
    ds->mode = st.st_mode & 07777;
  }
  return 0;
}

/* an array of absolute paths without ".." */
static int parse_paths(const jval *v, const char *where, char ***out, size_t *n, char *err, size_t errlen) {
  if (v->type != J_ARR) ERR("%s: expected an array of absolute paths", where);
  *out = calloc(v->len + 1, sizeof(char *));
  if (!*out) ERR("%s: out of memory", where);
  for (size_t i = 0; i < v->len; i++) {
    const char *p = v->items[i].type == J_STR ? v->items[i].str : NULL;
    if (!p || p[0] != '/' || strstr(p, "/..")) ERR("%s[%zu]: expected an absolute path without \"..\"", where, i);
    (*out)[i] = strdup(p);
    *n = i + 1;
  }
  return 0;
}

int hostopts_parse(const jval *s, host_opts *o, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  const jval *v;
  if ((v = json_get(s, "ulimits")) && v->type != J_NULL && parse_ulimits(v, o, err, errlen) < 0) return -1;
  if ((v = json_get(s, "sysctls")) && v->type != J_NULL && parse_sysctls(v, o, err, errlen) < 0) return -1;
  if ((v = json_get(s, "shmSize")) && v->type != J_NULL && int_of(v, "spec.shmSize", 0, INT64_MAX, &o->shm_size, err, errlen) < 0)
    return -1;
  if ((v = json_get(s, "init")) && v->type != J_NULL) {
    if (v->type != J_BOOL) ERR("spec.init: expected a boolean");
    o->init = v->boolean;
  }
  if ((v = json_get(s, "groupAdd")) && v->type != J_NULL) {
    if (v->type != J_ARR) ERR("spec.groupAdd: expected an array of strings");
    o->group_add = calloc(v->len + 1, sizeof(char *));
    if (!o->group_add) ERR("spec.groupAdd: out of memory");
    for (size_t i = 0; i < v->len; i++) {
      if (v->items[i].type != J_STR || !v->items[i].str[0]) ERR("spec.groupAdd[%zu]: expected a group name or id", i);
      o->group_add[i] = strdup(v->items[i].str);
      o->ngroup_add = i + 1;
    }
  }
  if ((v = json_get(s, "oomScoreAdj")) && v->type != J_NULL) {
    int64_t adj;
    if (int_of(v, "spec.oomScoreAdj", -1000, 1000, &adj, err, errlen) < 0) return -1;
    o->has_oom_score_adj = 1;
    o->oom_score_adj = (int)adj;
  }
  if ((v = json_get(s, "devices")) && v->type != J_NULL && parse_devices(v, o, err, errlen) < 0) return -1;
  if ((v = json_get(s, "maskedPaths")) && v->type != J_NULL) {
    o->has_masked_paths = 1;
    if (parse_paths(v, "spec.maskedPaths", &o->masked_paths, &o->nmasked_paths, err, errlen) < 0) return -1;
  }
  if ((v = json_get(s, "readonlyPaths")) && v->type != J_NULL) {
    o->has_readonly_paths = 1;
    if (parse_paths(v, "spec.readonlyPaths", &o->readonly_paths, &o->nreadonly_paths, err, errlen) < 0) return -1;
  }
  if ((v = json_get(s, "oomKillDisable")) && v->type != J_NULL) {
    if (v->type != J_BOOL) ERR("spec.oomKillDisable: expected a boolean");
    o->oom_kill_disable = v->boolean;
  }
  return 0;
}

static void free_strv(char **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) free(v[i]);
  free(v);
}

void hostopts_free(host_opts *o) {
  free(o->ulimits);
  free_strv(o->sysctl_keys, o->nsysctls);
  free_strv(o->sysctl_vals, o->nsysctls);
  free_strv(o->group_add, o->ngroup_add);
  free_strv(o->masked_paths, o->nmasked_paths);
  free_strv(o->readonly_paths, o->nreadonly_paths);
  for (size_t i = 0; i < o->ndevices; i++) {
    free(o->devices[i].path);
    free(o->devices[i].cpath);
  }
  free(o->devices);
  memset(o, 0, sizeof *o);
}

/* Read-only remount of a fresh bind mount, keeping the flags the kernel may have locked. */
static int bind_ro(const char *src, const char *dst) {
  if (mount(src, dst, NULL, MS_BIND, NULL) < 0) return -1;
  struct statvfs sv;
  unsigned long keep = 0;
  if (statvfs(dst, &sv) == 0) {
    if (sv.f_flag & ST_NOSUID) keep |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) keep |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) keep |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) keep |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) keep |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) keep |= MS_RELATIME;
  }
  return mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, NULL);
}

static int make_file(const char *path, mode_t mode) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    int rc = mkdir_p(dir, 0755);
    if (rc < 0 && rc != -EEXIST) {
      errno = -rc;
      return -1;
    }
  }
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return -1;
  close(fd);
  return 0;
}

int hostopts_rootfs(const host_opts *o, const char *root, int userns, char *err, size_t errlen) {
  char p[PATH_MAX];
  if (o->shm_size) {
    char opts[64];
    snprintf(p, sizeof p, "%s/dev/shm", root);
    snprintf(opts, sizeof opts, "mode=1777,size=%lld", (long long)o->shm_size);
    if (mount("shm", p, "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
      ERR("set /dev/shm size (%s): %s", opts, strerror(errno));
  }
  for (size_t i = 0; i < o->ndevices; i++) {
    const device_spec *d = &o->devices[i];
    int jr = secure_join(root, d->cpath, p, sizeof p);
    if (jr < 0) ERR("device path %s: %s", d->cpath, strerror(-jr));
    unlink(p); /* replaces one of the default nodes, as Docker does */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", p);
    *strrchr(dir, '/') = 0;
    int rc = mkdir_p(dir, 0755);
    if (rc < 0 && rc != -EEXIST) ERR("mkdir %s: %s", dir, strerror(-rc));
    mode_t old = umask(0);
    rc = userns ? -1 : mknod(p, d->type | d->mode, makedev(d->major, d->minor));
    umask(old);
    if (rc < 0) {
      /* in a user namespace mknod is refused: bind the host's node instead */
      if (make_file(p, 0644) < 0 || mount(d->path, p, NULL, MS_BIND, NULL) < 0)
        ERR("add device %s at %s: %s", d->path, d->cpath, strerror(errno));
    }
  }
  return 0;
}

int hostopts_init_mount(const host_opts *o, const char *root, char *err, size_t errlen) {
  char p[PATH_MAX];
  if (o->init) {
    int jr = secure_join(root, DOCKER_INIT_PATH, p, sizeof p);
    if (jr < 0) ERR("%s: %s", DOCKER_INIT_PATH, strerror(-jr));
    /* the agent binary itself is the init: static, so it runs in any image. By path: the
     * /proc/self/exe link points into the parent's mount namespace, which bind refuses. */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) ERR("find the agent binary: %s", strerror(errno));
    self[n] = 0;
    if (make_file(p, 0755) < 0 || bind_ro(self, p) < 0) ERR("mount %s at %s: %s", self, DOCKER_INIT_PATH, strerror(errno));
  }
  return 0;
}

int hostopts_sysctls(const host_opts *o, char *err, size_t errlen) {
  for (size_t i = 0; i < o->nsysctls; i++) {
    char p[PATH_MAX];
    int n = snprintf(p, sizeof p, "/proc/sys/%s", o->sysctl_keys[i]);
    /* snprintf returns the length it wanted: a cut path would name another file */
    if (n < 0 || (size_t)n >= sizeof p) ERR("sysctl %.64s...: name too long", o->sysctl_keys[i]);
    for (char *c = p + 10; c < p + n; c++)
      if (*c == '.') *c = '/';
    int rc = write_file_str(p, o->sysctl_vals[i]);
    if (rc < 0) ERR("write sysctl %s=%s: %s", o->sysctl_keys[i], o->sysctl_vals[i], strerror(-rc));
  }
  return 0;
}

/* gid of a group name in /etc/group text, or -1 */
static long group_gid(const char *group, const char *name) {
  size_t nl = strlen(name);
  for (const char *line = group; line && *line;) {
    const char *end = strchr(line, '\n');
    if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
      const char *f = strchr(line + nl + 1, ':'); /* after the password field */
      if (f && (!end || f < end)) {
        char *e;
        long gid = strtol(f + 1, &e, 10);
        if (e != f + 1 && (*e == ':' || *e == '\n' || *e == 0)) return gid;
      }
    }
    line = end ? end + 1 : NULL;
  }
  return -1;
}

int hostopts_groups(const host_opts *o, const char *group, exec_user *u, char *err, size_t errlen) {
  for (size_t i = 0; i < o->ngroup_add; i++) {
    const char *g = o->group_add[i];
    char *e;
    long gid = strtol(g, &e, 10);
    if (*e || e == g) {
      gid = group ? group_gid(group, g) : -1;
      if (gid < 0) ERR("Unable to find group %s: no matching entries in group file", g);
    }
    if (gid < 0 || gid > 0xfffffffeL) ERR("invalid group id %s", g);
    int have = 0;
    for (size_t k = 0; k < u->ngroups; k++) have |= u->groups[k] == (gid_t)gid;
    if (have) continue;
    if (u->ngroups >= USER_MAX_GROUPS) ERR("more than %d supplementary groups", USER_MAX_GROUPS);
    u->groups[u->ngroups++] = (gid_t)gid;
  }
  return 0;
}

int hostopts_process(const host_opts *o, char *err, size_t errlen) {
  for (size_t i = 0; i < o->nulimits; i++) {
    const ulimit_spec *l = &o->ulimits[i];
    struct rlimit r = {l->soft < 0 ? RLIM_INFINITY : (rlim_t)l->soft, l->hard < 0 ? RLIM_INFINITY : (rlim_t)l->hard};
    if (setrlimit(l->resource, &r) < 0) {
      const char *name = "?";
      for (size_t k = 0; k < ARRAY_LEN(rlimits); k++)
        if (rlimits[k].res == l->resource) name = rlimits[k].name;
      ERR("--ulimit %s=%lld:%lld: %s", name, (long long)l->soft, (long long)l->hard,
          errno == EPERM ? "raising the hard limit needs CAP_SYS_RESOURCE, which this host withholds" : strerror(errno));
    }
  }
  if (o->has_oom_score_adj) {
    char v[16];
    snprintf(v, sizeof v, "%d", o->oom_score_adj);
    int rc = write_file_str("/proc/self/oom_score_adj", v);
    if (rc < 0) ERR("write /proc/self/oom_score_adj: %s", strerror(-rc));
  }
  return 0;
}

int hostopts_oom_score(const host_opts *o, pid_t pid, char *err, size_t errlen) {
  if (!o->has_oom_score_adj) return 0;
  char path[64], v[16];
  snprintf(path, sizeof path, "/proc/%d/oom_score_adj", (int)pid);
  snprintf(v, sizeof v, "%d", o->oom_score_adj);
  int rc = write_file_str(path, v);
  if (rc < 0) ERR("write %s (--oom-score-adj %d): %s", path, o->oom_score_adj, strerror(-rc));
  return 0;
}

static int cg_write(const char *root, const char *ctl, const char *path, const char *file, const char *val, char *err, size_t errlen) {
  char p[PATH_MAX];
  if (ctl) snprintf(p, sizeof p, "%s/%s/%s/%s", root, ctl, path, file);
  else snprintf(p, sizeof p, "%s/%s/%s", root, path, file);
  int rc = write_file_str(p, val);
  if (rc < 0) ERR("cgroup: write %s to %s: %s", val, p, strerror(-rc));
  return 0;
}

int hostopts_cgroup(const host_opts *o, int version, const char *root, const char *path, char *err, size_t errlen) {
  if (!o->ndevices && !o->oom_kill_disable) return 0;
  if (version == 0) ERR("--device and --oom-kill-disable need a cgroup filesystem, which this host has not");
  if (version == 2) {
    if (o->ndevices) ERR("--device is not supported with cgroup v2 by tvm yet");
    ERR("--oom-kill-disable: cgroup v2 has no OOM-killer switch (memory.oom_control is v1 only)");
  }
  char v[64];
  for (size_t i = 0; i < o->ndevices; i++) {
    const device_spec *d = &o->devices[i];
    snprintf(v, sizeof v, "%c %u:%u %s", d->type == S_IFBLK ? 'b' : 'c', d->major, d->minor, d->perms);
    if (cg_write(root, "devices", path, "devices.allow", v, err, errlen) < 0) return -1;
  }
  if (o->oom_kill_disable && cg_write(root, "memory", path, "memory.oom_control", "1", err, errlen) < 0) return -1;
  return 0;
}

char **hostopts_init_argv(char *const *args, size_t nargs) {
  char **v = calloc(nargs + 3, sizeof(char *));
  if (!v) return NULL;
  v[0] = (char *)DOCKER_INIT_PATH;
  v[1] = (char *)"--";
  for (size_t i = 0; i < nargs; i++) v[i + 2] = args[i];
  return v;
}
