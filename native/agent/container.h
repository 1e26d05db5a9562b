/* Creating the workload: the container's init (new namespaces, cgroup, rootfs) and exec
 * processes (setns into a running container). Both finish in the same way: user, workdir, env,
 * capabilities, no_new_privs, seccomp, PATH lookup, execve. */
#ifndef TVM_CONTAINER_H
#define TVM_CONTAINER_H
#include "spec.h"
#include <sys/types.h>

/* The agent's ends of a process's stdio; -1 where absent. */
typedef struct {
  pid_t pid;
  int stdin_fd;  /* write end (or -1: stdin is /dev/null) */
  int stdout_fd; /* read end */
  int stderr_fd; /* read end; -1 with a tty */
  int pty;       /* pty master with a tty (stdin/stdout go through it), else -1 */
} proc_io;

/* On failure returns -1, err holds Docker's message and *code the exit code Docker reports
 * (127: executable not found, 126: not executable or another start failure). */
int container_start(const container_spec *s, proc_io *io, int *code, char *err, size_t errlen);
int container_exec(const container_spec *s, pid_t init_pid, const proc_spec *p, int privileged, proc_io *io, int *code, char *err,
                   size_t errlen);
/* Docker's default PATH when the image sets none. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Finds file in the PATH found in envp: 0 with the path in out, or 127/126 with Docker's text. */
int lookup_path(const char *file, char *const envp[], char *out, size_t outlen, char *err, size_t errlen);
#endif
