/* tvm-agent: the per-container supervisor on the host (`supervise`), and PID 1 in the
 * microVM guest (guest.c). Usage:
 *   tvm-agent supervise --state-dir DIR [--linger SECONDS] [--foreground]
 *   tvm-agent run --spec FILE [--state-dir DIR]   (foreground, like runc run: run.h)
 *   tvm-agent pause|resume|stats --spec FILE
 *   tvm-agent update --spec FILE --resources JSON
 *   tvm-agent version */
#define _GNU_SOURCE
#include "guest.h"
#include "init.h"
#include "run.h"
#include "supervisor.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_LINGER 600

static void usage(void) {
  fprintf(stderr, "usage: tvm-agent supervise --state-dir DIR [--linger SECONDS] [--foreground]\n"
                  "       tvm-agent run --spec FILE [--state-dir DIR]\n"
                  "       tvm-agent pause|resume|stats --spec FILE\n"
                  "       tvm-agent update --spec FILE --resources JSON\n"
                  "       tvm-agent version\n");
  exit(2);
}

/* Is pid a process that can still act? Not kill(pid, 0): that succeeds on a zombie, which is
 * what a SIGKILLed supervisor is until someone reaps it. The state letter after the last ')'
 * of /proc/PID/stat (the command may hold ')') is Z or X once it has exited. */
static int process_alive(int pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  char *t = read_file(path, NULL);
  if (!t) return 0;
  char *close = strrchr(t, ')');
  int alive = close && close[1] == ' ' && close[2] != '\0' && close[2] != 'Z' && close[2] != 'X';
  free(t);
  return alive;
}

/* Is another supervisor already serving this state dir? */
static int alive_agent(const char *dir) {
  char path[4096];
  snprintf(path, sizeof path, "%s/agent.pid", dir);
  char *t = read_file(path, NULL);
  if (!t) return 0;
  int pid = atoi(t);
  free(t);
  return pid > 0 && pid != getpid() && process_alive(pid);
}

/* Binds DIR/agent.sock relative to DIR, so a long state dir never hits sun_path's 108 bytes. */
static int listen_in(const char *dir, char *err, size_t errlen) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    snprintf(err, errlen, "open state dir %s: %s", dir, strerror(errno));
    return -1;
  }
  int cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof sa.sun_path, "agent.sock");
  int rc = -1;
  if (fd >= 0 && fchdir(dfd) == 0) {
    unlink("agent.sock");
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc == 0) chmod("agent.sock", 0600);
    if (rc == 0) rc = listen(fd, 64);
  }
  int e = errno;
  if (cwd >= 0) {
    if (fchdir(cwd) < 0) {}
    close(cwd);
  }
  close(dfd);
  if (rc < 0) {
    snprintf(err, errlen, "listen on %s/agent.sock: %s", dir, strerror(e));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

static int supervise(const char *dir, int linger, int foreground) {
  char abs[4096], err[1200];
  if (!realpath(dir, abs)) {
    fprintf(stderr, "tvm-agent: state dir %s: %s\n", dir, strerror(errno));
    return 1;
  }
  if (alive_agent(abs)) {
    fprintf(stderr, "tvm-agent: a supervisor is already running for %s\n", abs);
    return 1;
  }
  int ready[2] = {-1, -1};
  if (!foreground) {
    if (pipe2(ready, O_CLOEXEC) < 0) {
      perror("tvm-agent: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("tvm-agent: fork");
      return 1;
    }
    if (pid > 0) {
      /* the caller's process: exit once the supervisor is listening, with its error if not */
      close(ready[1]);
      char msg[1300];
      ssize_t n = read_full(ready[0], msg, sizeof msg - 1);
      int st;
      waitpid(pid, &st, 0);
      if (n >= 2 && memcmp(msg, "ok", 2) == 0) return 0;
      msg[n > 0 ? n : 0] = 0;
      fprintf(stderr, "tvm-agent: %s\n", n > 0 ? msg : "supervisor exited before it was ready");
      return 1;
    }
    close(ready[0]);
    if (setsid() < 0) _exit(1);
    pid = fork();
    if (pid < 0) _exit(1);
    if (pid > 0) _exit(0);
    /* the supervisor: no controlling terminal, not a process group leader */
    if (chdir("/") < 0) _exit(1);
    umask(022);
    int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
    char logp[4200];
    snprintf(logp, sizeof logp, "%s/agent.log", abs);
    int logfd = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    dup2(nul, 0);
    dup2(nul, 1);
    dup2(logfd >= 0 ? logfd : nul, 2);
    if (nul > 2) close(nul);
    if (logfd > 2) close(logfd);
  }
  /* orphaned processes of the workload's session are ours to reap */
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  int lfd = listen_in(abs, err, sizeof err);
  char pidp[4200], pidv[32];
  snprintf(pidp, sizeof pidp, "%s/agent.pid", abs);
  snprintf(pidv, sizeof pidv, "%d\n", (int)getpid());
  if (lfd >= 0) {
    int rc = write_file_atomic(pidp, pidv, strlen(pidv));
    if (rc < 0) {
      snprintf(err, sizeof err, "write %s: %s", pidp, strerror(-rc));
      close(lfd);
      lfd = -1;
    }
  }
  if (lfd < 0) {
    diag("%s", err);
    if (ready[1] >= 0) write_all(ready[1], err, strlen(err));
    return 1;
  }
  diag("supervising %s", abs);
  if (ready[1] >= 0) {
    write_all(ready[1], "ok", 2);
    close(ready[1]);
  }
  supervisor_opts o = {abs, lfd, linger, NULL, 0};
  int rc = supervisor_run(&o);
  char sockp[4200];
  snprintf(sockp, sizeof sockp, "%s/agent.sock", abs);
  unlink(sockp);
  unlink(pidp);
  diag("supervisor exiting");
  return rc;
}

int main(int argc, char **argv) {
  /* --init mounts this binary at /sbin/docker-init, where it is PID 1 of the container too */
  const char *base = strrchr(argv[0], '/');
  if (strcmp(base ? base + 1 : argv[0], "docker-init") == 0) return init_main(argc, argv);
  /* the kernel runs the initramfs's /init as PID 1: we are the microVM guest's agent */
  if (getpid() == 1 && strcmp(argv[0], "/init") == 0) return guest_main();
  if (argc < 2) usage();
  if (strcmp(argv[1], "init") == 0) return init_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "version") == 0) {
    printf("tvm-agent 0.1 protocol 1\n");
    return 0;
  }
  if (strcmp(argv[1], "run") == 0) return run_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "pause") == 0 || strcmp(argv[1], "resume") == 0)
    return run_freeze_main(argc - 1, argv + 1, strcmp(argv[1], "pause") == 0);
  if (strcmp(argv[1], "stats") == 0) return run_stats_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "update") == 0) return run_update_main(argc - 1, argv + 1);
  if (strcmp(argv[1], "supervise") != 0) usage();
  const char *dir = NULL;
  int linger = DEFAULT_LINGER, fg = 0;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (strcmp(argv[i], "--linger") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0) usage();
      linger = (int)v;
    } else if (strcmp(argv[i], "--foreground") == 0) fg = 1;
    else usage();
  }
  if (!dir) usage();
  return supervise(dir, linger, fg);
}
