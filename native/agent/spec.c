#include "spec.h"
#include "caps.h"
#include "logfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(...)                                                                                                                           \
  do {                                                                                                                                     \
    snprintf(err, errlen, __VA_ARGS__);                                                                                                    \
    return -1;                                                                                                                             \
  } while (0)

static int check_keys(const jval *o, const char *where, const char *const *allowed, char *err, size_t errlen) {
  if (!o || o->type != J_OBJ) ERR("%s: expected an object", where);
  for (size_t i = 0; i < o->len; i++) {
    int ok = 0;
    for (const char *const *a = allowed; *a; a++)
      if (strcmp(*a, o->keys[i]) == 0) {
        ok = 1;
        break;
      }
    if (!ok) ERR("%s: unknown key \"%s\"", where, o->keys[i]);
  }
  return 0;
}

static int get_str(const jval *o, const char *key, const char *where, int required, char **out, char *err, size_t errlen) {
  const jval *v = json_get(o, key);
  *out = NULL;
  if (!v || v->type == J_NULL) {
    if (required) ERR("%s.%s: required", where, key);
    return 0;
  }
  if (v->type != J_STR) ERR("%s.%s: expected a string, got %s", where, key, json_type_name(v->type));
  *out = strdup(v->str);
  return 0;
}

static int get_bool(const jval *o, const char *key, const char *where, int *out, char *err, size_t errlen) {
  const jval *v = json_get(o, key);
  *out = 0;
  if (!v || v->type == J_NULL) return 0;
  if (v->type != J_BOOL) ERR("%s.%s: expected a boolean, got %s", where, key, json_type_name(v->type));
  *out = v->boolean;
  return 0;
}

static int get_int(const jval *o, const char *key, const char *where, int64_t min, int64_t *out, char *err, size_t errlen) {
  const jval *v = json_get(o, key);
  *out = 0;
  if (!v || v->type == J_NULL) return 0;
  if (v->type != J_NUM || !v->is_int) ERR("%s.%s: expected an integer", where, key);
  if (v->i64 < min) ERR("%s.%s: must be >= %lld", where, key, (long long)min);
  *out = v->i64;
  return 0;
}

/* Limits the cgroup code does arithmetic on (2 * memory for the default swap, nanoCpus times the
 * 100000us CFS period): beyond these the int64 results would wrap. 4 EiB, 92233 CPUs. */
/* Lengths beyond which a path built from the spec would no longer fit the agent's PATH_MAX
 * (4096) buffers or the kernel's one page of mount data. */
#define SPEC_MOUNT_DATA_MAX 4096
#define SPEC_TARGET_MAX (4096 - 256)
#define SPEC_CGROUP_MAX 2048
#define SPEC_SYSCTL_KEY_MAX 1024

#define RES_MAX_BYTES (INT64_MAX / 2)
#define RES_MAX_NANO_CPUS (INT64_MAX / 100000)

static int check_res_bounds(const resources_spec *r, const char *where, char *err, size_t errlen) {
  const struct {
    const char *key;
    int64_t v, max;
  } lim[] = {
      {"memory", r->memory, RES_MAX_BYTES},
      {"memorySwap", r->memory_swap, RES_MAX_BYTES},
      {"memoryReservation", r->memory_reservation, RES_MAX_BYTES},
      {"nanoCpus", r->nano_cpus, RES_MAX_NANO_CPUS},
  };
  for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
    if (lim[i].v > lim[i].max) ERR("%s.%s: too large (at most %lld)", where, lim[i].key, (long long)lim[i].max);
  return 0;
}

static int get_str_array(const jval *o, const char *key, const char *where, char ***out, size_t *n, char *err, size_t errlen) {
  const jval *v = json_get(o, key);
  *out = calloc(1, sizeof(char *));
  *n = 0;
  if (!v || v->type == J_NULL) return 0;
  if (v->type != J_ARR) ERR("%s.%s: expected an array of strings", where, key);
  char **arr = realloc(*out, (v->len + 1) * sizeof(char *));
  if (!arr) ERR("out of memory");
  *out = arr;
  for (size_t i = 0; i < v->len; i++) {
    if (v->items[i].type != J_STR) {
      arr[i] = NULL;
      ERR("%s.%s[%zu]: expected a string", where, key, i);
    }
    arr[i] = strdup(v->items[i].str);
    *n = i + 1;
  }
  arr[v->len] = NULL;
  return 0;
}

static void free_strv(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

int spec_valid_id(const char *id) {
  size_t n = strlen(id);
  if (n == 0 || n > 128) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = id[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-'))) return 0;
  }
  return 1;
}

static int abs_path(const char *p) { return p && p[0] == '/'; }

int proc_spec_parse(const jval *v, proc_spec *p, const char *where, char *err, size_t errlen) {
  static const char *const keys[] = {"args", "env", "cwd", "user", "tty", "stdin", NULL};
  memset(p, 0, sizeof *p);
  if (check_keys(v, where, keys, err, errlen) < 0) return -1;
  if (get_str_array(v, "args", where, &p->args, &p->nargs, err, errlen) < 0) return -1;
  if (p->nargs == 0) ERR("%s.args: at least one argument is required", where);
  if (p->args[0][0] == 0) ERR("%s.args[0]: empty command", where);
  if (get_str_array(v, "env", where, &p->env, &p->nenv, err, errlen) < 0) return -1;
  for (size_t i = 0; i < p->nenv; i++)
    if (!strchr(p->env[i], '=') || p->env[i][0] == '=') ERR("%s.env[%zu]: expected KEY=VALUE", where, i);
  if (get_str(v, "cwd", where, 0, &p->cwd, err, errlen) < 0) return -1;
  if (!p->cwd || !p->cwd[0]) {
    free(p->cwd);
    p->cwd = strdup("/");
  }
  if (!abs_path(p->cwd)) ERR("%s.cwd: must be an absolute path, got \"%s\"", where, p->cwd);
  if (get_str(v, "user", where, 0, &p->user, err, errlen) < 0) return -1;
  if (!p->user) p->user = strdup("");
  if (get_bool(v, "tty", where, &p->tty, err, errlen) < 0) return -1;
  if (get_bool(v, "stdin", where, &p->stdin_open, err, errlen) < 0) return -1;
  return 0;
}

void proc_spec_free(proc_spec *p) {
  free_strv(p->args);
  free_strv(p->env);
  free(p->cwd);
  free(p->user);
  memset(p, 0, sizeof *p);
}

static int parse_mounts(const jval *v, container_spec *s, char *err, size_t errlen) {
  static const char *const keys[] = {"type", "source", "destination", "readonly", "options", NULL};
  if (!v || v->type == J_NULL) return 0;
  if (v->type != J_ARR) ERR("spec.mounts: expected an array");
  s->mounts = calloc(v->len ? v->len : 1, sizeof *s->mounts);
  for (size_t i = 0; i < v->len; i++) {
    char where[64];
    snprintf(where, sizeof where, "spec.mounts[%zu]", i);
    const jval *m = &v->items[i];
    mount_spec *ms = &s->mounts[i];
    s->nmounts = i + 1;
    if (check_keys(m, where, keys, err, errlen) < 0) return -1;
    char *type;
    if (get_str(m, "type", where, 1, &type, err, errlen) < 0) return -1;
    if (strcmp(type, "bind") == 0) ms->type = MOUNT_BIND;
    else if (strcmp(type, "volume") == 0) ms->type = MOUNT_VOLUME;
    else if (strcmp(type, "tmpfs") == 0) ms->type = MOUNT_TMPFS;
    else {
      snprintf(err, errlen, "%s.type: unknown mount type \"%s\"", where, type);
      free(type);
      return -1;
    }
    free(type);
    if (get_str(m, "source", where, ms->type != MOUNT_TMPFS, &ms->source, err, errlen) < 0) return -1;
    if (ms->type != MOUNT_TMPFS && !abs_path(ms->source)) ERR("%s.source: must be an absolute path", where);
    if (get_str(m, "destination", where, 1, &ms->destination, err, errlen) < 0) return -1;
    if (!abs_path(ms->destination)) ERR("%s.destination: must be an absolute path", where);
    if (strstr(ms->destination, "/../") ||
        (strlen(ms->destination) >= 3 && strcmp(ms->destination + strlen(ms->destination) - 3, "/..") == 0))
      ERR("%s.destination: must not contain \"..\"", where);
    if (get_bool(m, "readonly", where, &ms->readonly, err, errlen) < 0) return -1;
    char **opts;
    size_t nopts;
    if (get_str_array(m, "options", where, &opts, &nopts, err, errlen) < 0) {
      free_strv(opts);
      return -1;
    }
    if (nopts) {
      size_t total = 1;
      for (size_t k = 0; k < nopts; k++) total += strlen(opts[k]) + 1;
      ms->options = calloc(1, total);
      for (size_t k = 0; k < nopts; k++) {
        if (strchr(opts[k], ',')) {
          free_strv(opts);
          ERR("%s.options[%zu]: must not contain ','", where, k);
        }
        if (k) strcat(ms->options, ",");
        strcat(ms->options, opts[k]);
      }
    }
    free_strv(opts);
  }
  return 0;
}

int spec_parse(const jval *v, container_spec *s, char *err, size_t errlen) {
  static const char *const keys[] = {
      "id",       "hostname",    "privileged",      "readonlyRootfs", "network",     "rootfs",        "process",
      "mounts",   "resources",   "capAdd",          "capDrop",        "cgroup",      "logPath",       "logRotate",
      "userns",   "seccomp",     "noNewPrivileges", "ulimits",        "sysctls",     "shmSize",       "init",
      "groupAdd", "oomScoreAdj", "devices",         "oomKillDisable", "maskedPaths", "readonlyPaths", NULL};
  static const char *const rootfs_keys[] = {"lower", "upper", "work", "target", NULL};
  static const char *const res_keys[] = {"memory",    "memorySwap", "memoryReservation", "nanoCpus",
                                         "cpuShares", "pidsLimit",  "cpusetCpus",        NULL};
  static const char *const cg_keys[] = {"version", "root", "path", NULL};
  memset(s, 0, sizeof *s);
  if (check_keys(v, "spec", keys, err, errlen) < 0) return -1;
  if (get_str(v, "id", "spec", 1, &s->id, err, errlen) < 0) return -1;
  if (!spec_valid_id(s->id)) ERR("spec.id: \"%s\" is not a valid container id", s->id);
  if (get_str(v, "hostname", "spec", 0, &s->hostname, err, errlen) < 0) return -1;
  if (s->hostname && strlen(s->hostname) > 64) ERR("spec.hostname: longer than 64 bytes");
  if (get_bool(v, "privileged", "spec", &s->privileged, err, errlen) < 0) return -1;
  if (get_bool(v, "readonlyRootfs", "spec", &s->readonly_rootfs, err, errlen) < 0) return -1;
  const jval *netv = json_get(v, "network");
  if (netv && netv->type == J_OBJ) {
    /* a namespace the daemon has made and plumbed (bridge networks): joined, not created */
    static const char *const net_keys[] = {"path", NULL};
    if (check_keys(netv, "spec.network", net_keys, err, errlen) < 0) return -1;
    if (get_str(netv, "path", "spec.network", 1, &s->netns_path, err, errlen) < 0) return -1;
    if (!abs_path(s->netns_path)) ERR("spec.network.path: must be an absolute path");
  } else {
    char *net;
    if (get_str(v, "network", "spec", 0, &net, err, errlen) < 0) return -1;
    if (!net || strcmp(net, "none") == 0) s->net_none = 1;
    else if (strcmp(net, "host") == 0) s->net_none = 0;
    else {
      snprintf(err, errlen, "spec.network: unknown network mode \"%s\"", net);
      free(net);
      return -1;
    }
    free(net);
  }

  const jval *r = json_get(v, "rootfs");
  if (check_keys(r, "spec.rootfs", rootfs_keys, err, errlen) < 0) return -1;
  if (get_str(r, "lower", "spec.rootfs", 1, &s->lower, err, errlen) < 0) return -1;
  /* upper and work absent: lower is the container's writable root itself, bound at target (in
   * the microVM guest, where the disk under lower is the container's own qcow2 overlay) */
  if (get_str(r, "upper", "spec.rootfs", 0, &s->upper, err, errlen) < 0) return -1;
  if (get_str(r, "work", "spec.rootfs", 0, &s->work, err, errlen) < 0) return -1;
  if (get_str(r, "target", "spec.rootfs", 1, &s->target, err, errlen) < 0) return -1;
  if (!s->upper != !s->work) ERR("spec.rootfs: upper and work go together");
  if (!abs_path(s->lower) || (s->upper && !abs_path(s->upper)) || (s->work && !abs_path(s->work)) || !abs_path(s->target))
    ERR("spec.rootfs: paths must be absolute");
  for (const char *p = s->lower; *p; p++)
    if (*p == ',' || *p == ':') ERR("spec.rootfs.lower: must not contain ',' or ':'");
  /* the kernel copies one page of mount data: longer overlay options would be cut, silently */
  if (s->upper && strlen(s->lower) + strlen(s->upper) + strlen(s->work) + sizeof "lowerdir=,upperdir=,workdir=" > SPEC_MOUNT_DATA_MAX)
    ERR("spec.rootfs: lower, upper and work too long for the overlay's mount options (%d bytes)", SPEC_MOUNT_DATA_MAX);
  /* <target>/proc, /sys, /dev/... are made in PATH_MAX buffers */
  if (strlen(s->target) > SPEC_TARGET_MAX) ERR("spec.rootfs.target: too long (at most %d bytes)", SPEC_TARGET_MAX);

  const jval *pv = json_get(v, "process");
  if (!pv) ERR("spec.process: required");
  if (proc_spec_parse(pv, &s->process, "spec.process", err, errlen) < 0) return -1;
  if (parse_mounts(json_get(v, "mounts"), s, err, errlen) < 0) return -1;

  const jval *rv = json_get(v, "resources");
  if (rv && rv->type != J_NULL) {
    if (check_keys(rv, "spec.resources", res_keys, err, errlen) < 0) return -1;
    if (get_int(rv, "memory", "spec.resources", 0, &s->res.memory, err, errlen) < 0) return -1;
    if (get_int(rv, "memorySwap", "spec.resources", -1, &s->res.memory_swap, err, errlen) < 0) return -1;
    if (get_int(rv, "memoryReservation", "spec.resources", 0, &s->res.memory_reservation, err, errlen) < 0) return -1;
    if (get_int(rv, "nanoCpus", "spec.resources", 0, &s->res.nano_cpus, err, errlen) < 0) return -1;
    if (get_int(rv, "cpuShares", "spec.resources", 0, &s->res.cpu_shares, err, errlen) < 0) return -1;
    if (get_int(rv, "pidsLimit", "spec.resources", -1, &s->res.pids_limit, err, errlen) < 0) return -1;
    if (get_str(rv, "cpusetCpus", "spec.resources", 0, &s->res.cpuset_cpus, err, errlen) < 0) return -1;
    if (check_res_bounds(&s->res, "spec.resources", err, errlen) < 0) return -1;
    if (s->res.memory && s->res.memory < 6 * 1024 * 1024) ERR("spec.resources.memory: minimum memory limit allowed is 6MB");
    if (s->res.memory_swap > 0 && s->res.memory_swap < s->res.memory) ERR("spec.resources.memorySwap: must be at least the memory limit");
    if (s->res.memory_swap > 0 && !s->res.memory) ERR("spec.resources.memorySwap: needs a memory limit");
    if (s->res.cpuset_cpus)
      for (const char *p = s->res.cpuset_cpus; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == ',' || *p == '-')) ERR("spec.resources.cpusetCpus: invalid \"%s\"", s->res.cpuset_cpus);
  }

  char **add, **drop;
  size_t nadd, ndrop;
  int rc = get_str_array(v, "capAdd", "spec", &add, &nadd, err, errlen);
  if (rc == 0) rc = get_str_array(v, "capDrop", "spec", &drop, &ndrop, err, errlen);
  else drop = NULL;
  if (rc == 0) rc = caps_compute((const char *const *)add, nadd, (const char *const *)drop, ndrop, s->privileged, &s->caps, err, errlen);
  free_strv(add);
  free_strv(drop);
  if (rc < 0) return -1;

  const jval *cg = json_get(v, "cgroup");
  if (cg && cg->type != J_NULL) {
    if (check_keys(cg, "spec.cgroup", cg_keys, err, errlen) < 0) return -1;
    int64_t ver;
    if (get_int(cg, "version", "spec.cgroup", 0, &ver, err, errlen) < 0) return -1;
    if (ver != 1 && ver != 2) ERR("spec.cgroup.version: must be 1 or 2");
    s->cgroup_version = (int)ver;
    if (get_str(cg, "root", "spec.cgroup", 1, &s->cgroup_root, err, errlen) < 0) return -1;
    if (get_str(cg, "path", "spec.cgroup", 1, &s->cgroup_path, err, errlen) < 0) return -1;
    if (!abs_path(s->cgroup_root)) ERR("spec.cgroup.root: must be an absolute path");
    if (s->cgroup_path[0] == '/' || strstr(s->cgroup_path, "..")) ERR("spec.cgroup.path: must be relative without \"..\"");
    /* <root>/<controller>/<path>/<file> is built in PATH_MAX buffers: cut, it would name another group */
    if (strlen(s->cgroup_root) + strlen(s->cgroup_path) > SPEC_CGROUP_MAX)
      ERR("spec.cgroup: root and path too long (at most %d bytes together)", SPEC_CGROUP_MAX);
  }
  if (get_str(v, "logPath", "spec", 1, &s->log_path, err, errlen) < 0) return -1;
  if (!abs_path(s->log_path)) ERR("spec.logPath: must be an absolute path");
  s->log_max_files = 1;
  const jval *lr = json_get(v, "logRotate");
  if (lr && lr->type != J_NULL) {
    static const char *const lr_keys[] = {"maxSize", "maxFiles", NULL};
    if (check_keys(lr, "spec.logRotate", lr_keys, err, errlen) < 0) return -1;
    int64_t files;
    if (get_int(lr, "maxSize", "spec.logRotate", 1, &s->log_max_size, err, errlen) < 0) return -1;
    if (get_int(lr, "maxFiles", "spec.logRotate", 1, &files, err, errlen) < 0) return -1;
    if (!s->log_max_size) ERR("spec.logRotate.maxSize: required");
    if (files > LOG_MAX_FILES) ERR("spec.logRotate.maxFiles: at most %d", LOG_MAX_FILES);
    s->log_max_files = files ? (int)files : 1;
  }
  const jval *sc = json_get(v, "seccomp");
  if (sc && sc->type != J_NULL) {
    static const char *const sc_keys[] = {"filter", "flags", NULL};
    if (check_keys(sc, "spec.seccomp", sc_keys, err, errlen) < 0) return -1;
    char *filter;
    int64_t flags;
    if (get_str(sc, "filter", "spec.seccomp", 1, &filter, err, errlen) < 0) return -1;
    int src = get_int(sc, "flags", "spec.seccomp", 0, &flags, err, errlen);
    if (src == 0 && flags > 0xffff) {
      snprintf(err, errlen, "spec.seccomp.flags: out of range");
      src = -1;
    }
    if (src == 0) src = seccomp_decode(filter, (unsigned)flags, &s->seccomp, err, errlen);
    free(filter);
    if (src < 0) return -1;
  }
  if (get_bool(v, "noNewPrivileges", "spec", &s->no_new_privs, err, errlen) < 0) return -1;
  if (hostopts_parse(v, &s->opts, err, errlen) < 0) return -1;
  /* hostopts_sysctls turns a key into /proc/sys/<key> in a PATH_MAX buffer and walks it by the
   * untruncated length: a longer key would be rewritten past the buffer's end */
  for (size_t i = 0; i < s->opts.nsysctls; i++)
    if (strlen(s->opts.sysctl_keys[i]) > SPEC_SYSCTL_KEY_MAX)
      ERR("spec.sysctls: key too long (at most %d bytes): \"%.64s...\"", SPEC_SYSCTL_KEY_MAX, s->opts.sysctl_keys[i]);
  if (userns_parse(json_get(v, "userns"), &s->userns, "spec.userns", err, errlen) < 0) return -1;
  /* Docker refuses both with remapping: sharing the host's network namespace needs --userns=host,
   * and privileged means the host's capabilities */
  if (s->userns.nuid && !s->net_none && !s->netns_path)
    ERR("spec.userns: a user namespace needs its own network namespace (network \"none\" or a path)");
  if (s->userns.nuid && s->privileged) ERR("spec.userns: privileged containers run in the host's user namespace");
  return 0;
}

int resources_update_parse(const jval *v, resources_update *u, char *err, size_t errlen) {
  static const char *const keys[] = {"memory", "memorySwap", "memoryReservation", "nanoCpus", "cpuShares", "pidsLimit", "cpusetCpus", NULL};
  static const unsigned bits[] = {RES_MEMORY,     RES_MEMORY_SWAP, RES_MEMORY_RESERVATION, RES_NANO_CPUS,
                                  RES_CPU_SHARES, RES_PIDS_LIMIT,  RES_CPUSET_CPUS};
  memset(u, 0, sizeof *u);
  if (check_keys(v, "update.resources", keys, err, errlen) < 0) return -1;
  for (size_t i = 0; keys[i]; i++) {
    const jval *f = json_get(v, keys[i]);
    if (f && f->type != J_NULL) u->set |= bits[i];
  }
  resources_spec *r = &u->res;
  if (get_int(v, "memory", "update.resources", 0, &r->memory, err, errlen) < 0) return -1;
  if (get_int(v, "memorySwap", "update.resources", -1, &r->memory_swap, err, errlen) < 0) return -1;
  if (get_int(v, "memoryReservation", "update.resources", 0, &r->memory_reservation, err, errlen) < 0) return -1;
  if (get_int(v, "nanoCpus", "update.resources", 0, &r->nano_cpus, err, errlen) < 0) return -1;
  if (get_int(v, "cpuShares", "update.resources", 0, &r->cpu_shares, err, errlen) < 0) return -1;
  /* <= 0: no limit, as Docker's --pids-limit -1 */
  if (get_int(v, "pidsLimit", "update.resources", INT64_MIN, &r->pids_limit, err, errlen) < 0) return -1;
  if (get_str(v, "cpusetCpus", "update.resources", 0, &r->cpuset_cpus, err, errlen) < 0) return -1;
  if (check_res_bounds(r, "update.resources", err, errlen) < 0) return -1;
  if ((u->set & RES_MEMORY) && r->memory && r->memory < 6 * 1024 * 1024)
    ERR("update.resources.memory: minimum memory limit allowed is 6MB");
  if (r->cpuset_cpus)
    for (const char *p = r->cpuset_cpus; *p; p++)
      if (!((*p >= '0' && *p <= '9') || *p == ',' || *p == '-')) ERR("update.resources.cpusetCpus: invalid \"%s\"", r->cpuset_cpus);
  return 0;
}

void resources_update_free(resources_update *u) {
  free(u->res.cpuset_cpus);
  memset(u, 0, sizeof *u);
}

void spec_free(container_spec *s) {
  free(s->id);
  free(s->hostname);
  free(s->netns_path);
  free(s->lower);
  free(s->upper);
  free(s->work);
  free(s->target);
  proc_spec_free(&s->process);
  for (size_t i = 0; i < s->nmounts; i++) {
    free(s->mounts[i].source);
    free(s->mounts[i].destination);
    free(s->mounts[i].options);
  }
  free(s->mounts);
  free(s->res.cpuset_cpus);
  free(s->cgroup_root);
  free(s->cgroup_path);
  free(s->log_path);
  seccomp_free(&s->seccomp);
  hostopts_free(&s->opts);
  userns_free(&s->userns);
  memset(s, 0, sizeof *s);
}
