/* `docker cp` into a running container through the agent (a microVM's disk is only reachable
 * from inside the guest): a forked helper joins the container's mount namespace and applies
 * the entries the daemon sends (docs/agent-protocol.md, connection kind "extract"). */
#ifndef TVM_EXTRACT_H
#define TVM_EXTRACT_H
#include <sys/types.h>
/* Runs in the forked child: answers the hello (or an error), applies the entries, answers ok
 * or error. `pre` holds bytes the agent had already read past the hello. Returns the child's
 * exit status. */
#include <stddef.h>
int extract_child(int fd, pid_t init_pid, const char *dest, const void *pre, size_t pre_len);
#endif
