/* The agent's event loop: the protocol over a listening unix socket, the container's processes,
 * their stdio, log and exit status (docs/agent-protocol.md). */
#ifndef TVM_SUPERVISOR_H
#define TVM_SUPERVISOR_H

typedef struct {
  const char *state_dir;
  int listen_fd;
  int linger_seconds;
  /* the guest agent: the container's disk, which `freeze-fs`/`thaw-fs` make consistent on the
   * block device so the host can read it offline while the VM runs (NULL on the host) */
  const char *freezable_fs;
  /* the guest agent: the guest's network is the container's, and `net-up`/`net-down` change it
   * (on the host the daemon plumbs the container's namespace itself) */
  int owns_network;
} supervisor_opts;

/* Runs until shutdown or linger timeout; returns the process exit code. */
int supervisor_run(const supervisor_opts *o);
#endif
