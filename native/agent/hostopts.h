/* Docker's HostConfig process options the agent applies: --ulimit, --sysctl, --shm-size,
 * --init, --group-add, --oom-score-adj, --device, --oom-kill-disable (--memory-reservation is a
 * resource: spec.resources, cgroup.c).
 * Parsed from the spec's top-level keys (docs/agent-protocol.md) and applied at the point of
 * container setup each belongs to. */
#ifndef TVM_HOSTOPTS_H
#define TVM_HOSTOPTS_H
#include "json.h"
#include "user.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* where --init mounts the agent inside the container (Docker's path for docker-init) */
#define DOCKER_INIT_PATH "/sbin/docker-init"

typedef struct {
  int resource;       /* RLIMIT_* */
  int64_t soft, hard; /* -1: unlimited */
} ulimit_spec;

typedef struct {
  char *path;    /* on the host */
  char *cpath;   /* in the container */
  char perms[4]; /* subset of "rwm" */
  mode_t type;   /* S_IFCHR or S_IFBLK, from the host node */
  unsigned major, minor;
  mode_t mode; /* permission bits of the host node */
} device_spec;

typedef struct {
  ulimit_spec *ulimits;
  size_t nulimits;
  char **sysctl_keys, **sysctl_vals; /* keys in dotted form: net.ipv4.ip_forward */
  size_t nsysctls;
  int64_t shm_size; /* bytes; 0: Docker's default 64 MiB */
  int init;
  char **group_add; /* names or numbers */
  size_t ngroup_add;
  int has_oom_score_adj;
  int oom_score_adj;
  device_spec *devices;
  size_t ndevices;
  int oom_kill_disable;
  /* HostConfig.MaskedPaths / ReadonlyPaths when given (has_*): replace Docker's lists */
  int has_masked_paths, has_readonly_paths;
  char **masked_paths, **readonly_paths;
  size_t nmasked_paths, nreadonly_paths;
} host_opts;

/* The keys this module reads, for the spec's unknown-key check. */
extern const char *const hostopts_keys[];
int hostopts_parse(const jval *spec, host_opts *o, char *err, size_t errlen);
void hostopts_free(host_opts *o);
/* Docker's ulimit names -> RLIMIT_*; -1 if unknown. */
int hostopts_rlimit_of(const char *name);

/* In the child, before pivot_root and the user's mounts (root is the rootfs mount point):
 * /dev/shm size, device nodes. */
int hostopts_rootfs(const host_opts *o, const char *root, int userns, char *err, size_t errlen);
/* After the user's mounts (so a volume over /sbin cannot hide it): the docker-init bind mount. */
int hostopts_init_mount(const host_opts *o, const char *root, char *err, size_t errlen);
/* In the child, after pivot_root, before /proc/sys goes read-only. */
int hostopts_sysctls(const host_opts *o, char *err, size_t errlen);
/* Adds --group-add groups (names resolved in the container's /etc/group text). */
int hostopts_groups(const host_opts *o, const char *group, exec_user *u, char *err, size_t errlen);
/* setrlimit for each --ulimit, and oom_score_adj, for the calling process. */
int hostopts_process(const host_opts *o, char *err, size_t errlen);
/* Agent side, before the container's init runs: --oom-score-adj written from outside, as runc
 * does (inside a user namespace a negative value would need CAP_SYS_RESOURCE there). */
int hostopts_oom_score(const host_opts *o, pid_t pid, char *err, size_t errlen);
/* Agent side, once the container's cgroup exists (v1): devices.allow, oom_control.
 * cgroup_version 0 (no cgroupfs): refused when any is asked for. */
int hostopts_cgroup(const host_opts *o, int cgroup_version, const char *cgroup_root, const char *cgroup_path, char *err, size_t errlen);
/* argv for running args under docker-init: {DOCKER_INIT_PATH, "--", args..., NULL} (malloc'd). */
char **hostopts_init_argv(char *const *args, size_t nargs);
#endif
