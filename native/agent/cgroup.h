/* The container's cgroup: v1 (one directory per controller hierarchy) or v2 (one directory in
 * the unified tree), created under spec.cgroup.root/<controller>/spec.cgroup.path. */
#ifndef TVM_CGROUP_H
#define TVM_CGROUP_H
#include "spec.h"
#include <stdint.h>
#include <sys/types.h>

typedef struct {
  int64_t mem_usage, mem_limit, mem_max_usage;
  int64_t cpu_usage_ns;
  int64_t pids_current, pids_limit;
} cgroup_stats;

/* Creates the group and writes the limits; on failure removes what it created. On v2 with a
 * kernel without bpf() (no device program can be attached) it removes CAP_MKNOD from s->caps. */
int cgroup_create(container_spec *s, char *err, size_t errlen);
int cgroup_join(const container_spec *s, pid_t pid, char *err, size_t errlen);
int cgroup_freeze(const container_spec *s, int frozen, char *err, size_t errlen);
int cgroup_stats_read(const container_spec *s, cgroup_stats *out);
/* OOM kills recorded for the group (v1 memory.oom_control / v2 memory.events: oom_kill). */
int64_t cgroup_oom_kills(const container_spec *s);
/* Fills pids (max n) with the members; returns the count or -1. */
int cgroup_pids(const container_spec *s, pid_t *pids, int n);
/* Is word one of the words of a cgroup list file (cgroup.controllers)? "cpu" is not "cpuset". */
int cgroup_list_has(const char *list, const char *word);
/* v1 cpu.shares -> v2 cpu.weight as runc/crun convert it ([2, 262144] -> [1, 10000], 1024 -> 100);
 * 0 (unset) stays 0. */
int64_t cgroup_shares_to_weight(int64_t shares);
/* v2 on a kernel without bpf(): no device program can be attached (see cgroup_create). */
int cgroup_devices_unfiltered(const container_spec *s);
/* docker update: writes the limits u sets (v1 or v2) and, once all are written, merges them into
 * s->res. A memory limit below the group's usage fails as runc reports it. */
int cgroup_update(container_spec *s, const resources_update *u, char *err, size_t errlen);
/* Removes the group once it is empty; returns 0 or -errno. */
int cgroup_destroy(const container_spec *s);
#endif
