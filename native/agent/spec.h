/* The container spec the daemon sends with `create` (docs/agent-protocol.md), parsed strictly:
 * unknown keys and wrong types are errors naming the field. */
#ifndef TVM_SPEC_H
#define TVM_SPEC_H
#include "json.h"
#include "seccomp.h"
#include "hostopts.h"
#include "userns.h"
#include <stddef.h>
#include <stdint.h>

typedef struct {
  char **args; /* NULL-terminated */
  size_t nargs;
  char **env; /* NULL-terminated */
  size_t nenv;
  char *cwd;
  char *user;
  int tty;
  int stdin_open;
} proc_spec;

enum mount_type { MOUNT_BIND, MOUNT_VOLUME, MOUNT_TMPFS };

typedef struct {
  enum mount_type type;
  char *source;
  char *destination;
  int readonly;
  char *options; /* comma-joined, may be NULL */
} mount_spec;

typedef struct {
  int64_t memory, memory_swap, memory_reservation, nano_cpus, cpu_shares, pids_limit;
  char *cpuset_cpus;
} resources_spec;

/* The `update` request (docker update): which limits it sets (RES_* bits) and their values. */
enum {
  RES_MEMORY = 1 << 0,
  RES_MEMORY_SWAP = 1 << 1,
  RES_MEMORY_RESERVATION = 1 << 2,
  RES_NANO_CPUS = 1 << 3,
  RES_CPU_SHARES = 1 << 4,
  RES_PIDS_LIMIT = 1 << 5,
  RES_CPUSET_CPUS = 1 << 6,
};
typedef struct {
  unsigned set;
  resources_spec res;
} resources_update;

typedef struct {
  char *id;
  char *hostname;
  int privileged;
  int readonly_rootfs;
  int net_none;
  char *netns_path; /* network {"path"}: join this prepared namespace (net_none is 0) */
  char *lower, *upper, *work, *target;
  proc_spec process;
  mount_spec *mounts;
  size_t nmounts;
  resources_spec res;
  uint64_t caps;
  int cgroup_version; /* 0: no cgroup (guest without cgroupfs), 1, 2 */
  char *cgroup_root;
  char *cgroup_path;
  char *log_path;
  int64_t log_max_size; /* json-file max-size; 0: no rotation */
  int log_max_files;    /* json-file max-file (>= 1) */
  seccomp_prog seccomp; /* empty: none (privileged, seccomp=unconfined) */
  int no_new_privs;     /* --security-opt no-new-privileges */
  host_opts opts;       /* --ulimit, --sysctl, --shm-size, --init, --group-add, ... (hostopts.h) */
  userns_spec userns;   /* userns.nuid == 0: the host's user namespace */
} container_spec;

int spec_parse(const jval *v, container_spec *out, char *err, size_t errlen);
/* The `resources` object of an update request: only the keys present are set; strict as spec_parse. */
int resources_update_parse(const jval *v, resources_update *out, char *err, size_t errlen);
void resources_update_free(resources_update *u);
void spec_free(container_spec *s);
/* The `process` object of a spec or of an exec request. */
int proc_spec_parse(const jval *v, proc_spec *out, const char *where, char *err, size_t errlen);
void proc_spec_free(proc_spec *p);
/* Container ids become path components: [A-Za-z0-9][A-Za-z0-9_.-]{0,127}. */
int spec_valid_id(const char *id);
#endif
