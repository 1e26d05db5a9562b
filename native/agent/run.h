/* `tvm-agent run`: a foreground mode like `runc run`. It reads an agent create spec (the JSON of
 * the protocol's `create` op) from a file, creates the cgroup and starts the container with the
 * supervisor's code (cgroup.c, container.c), connects the container's stdio to its own, forwards
 * signals, waits, removes the cgroup and exits with the container's status.
 * `tvm-agent pause|resume --spec FILE` freeze and thaw the cgroup of a container that `run`
 * started from the same spec; `tvm-agent stats --spec FILE` prints its counters as one JSON line
 * (the readers the supervisor's `stats` op uses; -1 where a value is unlimited or absent);
 * `tvm-agent update --spec FILE --resources JSON` changes its limits as the `update` op does. */
#ifndef TVM_RUN_H
#define TVM_RUN_H
#include <stddef.h>

/* Exit code for errors of the agent itself (bad spec, cgroup setup), as `docker run` uses 125. */
#define RUN_AGENT_ERROR 125

typedef struct {
  const char *spec_path;
  const char *state_dir; /* run: receives pid and exit.json */
  const char *resources; /* update: the JSON of the protocol's update.resources */
} run_args;

/* Parses the arguments after the subcommand name; 0, or -1 with a message. */
int run_parse_args(int argc, char *const argv[], run_args *out, char *err, size_t errlen);
/* A waitpid status as Docker reports it: the exit code, or 128 + N for signal N. */
int run_exit_code(int status);

/* The subcommands; argv[0] is the subcommand name. They return the process exit code. */
int run_main(int argc, char *const argv[]);
int run_freeze_main(int argc, char *const argv[], int frozen);
int run_stats_main(int argc, char *const argv[]);
int run_update_main(int argc, char *const argv[]);
#endif
