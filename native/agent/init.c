#define _GNU_SOURCE
/* docker-init: what `docker run --init` runs as PID 1 (Docker ships tini there). It starts the
 * command as its only child, forwards every signal it can catch to that child, reaps every
 * zombie re-parented to it, and exits with the child's status (128+N for a signal). */
#include "init.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals that are about the init itself, not meant for the child. */
static int forwardable(int sig) {
  return sig != SIGCHLD && sig != SIGKILL && sig != SIGSTOP && sig != SIGTTIN && sig != SIGTTOU && sig != SIGFPE && sig != SIGILL &&
         sig != SIGSEGV && sig != SIGBUS && sig != SIGABRT && sig != SIGTRAP && sig != SIGSYS;
}

int init_main(int argc, char **argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) first++;
  if (first >= argc) {
    fprintf(stderr, "usage: docker-init [--] COMMAND [ARGS...]\n");
    return 1;
  }
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_SETMASK, &all, &old);
  pid_t child = fork();
  if (child < 0) {
    fprintf(stderr, "docker-init: fork: %s\n", strerror(errno));
    return 1;
  }
  if (child == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    /* own process group, in the terminal's foreground if there is one (as tini) */
    setpgid(0, 0);
    if (isatty(STDIN_FILENO)) {
      signal(SIGTTOU, SIG_IGN);
      tcsetpgrp(STDIN_FILENO, getpid());
      signal(SIGTTOU, SIG_DFL);
    }
    execvp(argv[first], argv + first);
    int e = errno;
    fprintf(stderr, "docker-init: exec %s failed: %s\n", argv[first], strerror(e));
    _exit(e == ENOENT ? 127 : 126);
  }
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&all, &si);
    if (sig < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "docker-init: sigwaitinfo: %s\n", strerror(errno));
      return 1;
    }
    if (sig != SIGCHLD) {
      if (forwardable(sig) && kill(child, sig) < 0 && errno != ESRCH)
        fprintf(stderr, "docker-init: forward signal %d: %s\n", sig, strerror(errno));
      continue;
    }
    /* reap everything: zombies re-parented to PID 1 as well as the child */
    for (;;) {
      int st;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p <= 0) break;
      if (p == child) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }
}
