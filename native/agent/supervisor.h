/* The agent's event loop: the protocol over a listening unix socket, the container's processes,
 * their stdio, log and exit status (docs/agent-protocol.md). */
#ifndef TVM_SUPERVISOR_H
#define TVM_SUPERVISOR_H

typedef struct {
  const char *state_dir;
  int listen_fd;
  int linger_seconds;
} supervisor_opts;

/* Runs until shutdown or linger timeout; returns the process exit code. */
int supervisor_run(const supervisor_opts *o);
#endif
