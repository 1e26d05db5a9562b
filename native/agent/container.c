#define _GNU_SOURCE
#include "container.h"
#include "caps.h"
#include "cgroup.h"
#include "mounts.h"
#include "seccomp.h"
#include "hostopts.h"
#include "user.h"
#include "userns.h"
#include "util.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* linux/close_range.h's CLOSE_RANGE_CLOEXEC (Linux 5.11) */
#define CLOSE_RANGE_CLOEXEC_FLAG (1U << 2)

/* What a child needs to report back: errfd gets "<code> <message>" on failure; closing on
 * exec (O_CLOEXEC) is the success signal. */
typedef struct {
  int errfd;
  int syncfd;                /* read end: the agent writes one byte once the child is in its cgroup */
  int ptysock;               /* the child sends its pty master here (SCM_RIGHTS); -1 without a tty */
  int in_fd, out_fd, err_fd; /* child ends of the stdio pipes (non-tty) */
  int ovlfd;                 /* user namespace only: the child writes one byte once its mounts are private */
} child_ctx;

static void __attribute__((noreturn)) child_fail(const child_ctx *c, int code, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  int n = snprintf(msg, sizeof msg, "%d ", code);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  write_all(c->errfd, msg, strlen(msg));
  _exit(code);
}

int lookup_path(const char *file, char *const envp[], char *out, size_t outlen, char *err, size_t errlen) {
  struct stat st;
  if (strchr(file, '/')) {
    if (stat(file, &st) < 0) {
      snprintf(err, errlen, "exec: \"%s\": stat %s: %s", file, file, strerror(errno));
      return errno == ENOENT || errno == ENOTDIR ? 127 : 126;
    }
    if (S_ISDIR(st.st_mode) || access(file, X_OK) < 0) {
      snprintf(err, errlen, "exec: \"%s\": permission denied", file);
      return 126;
    }
    snprintf(out, outlen, "%s", file);
    return 0;
  }
  const char *path = DEFAULT_PATH;
  for (char *const *e = envp; *e; e++)
    if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
  int saw_denied = 0;
  const char *p = path;
  for (;;) {
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    char cand[PATH_MAX];
    /* an empty PATH entry means the current directory */
    if (n == 0) snprintf(cand, sizeof cand, "./%s", file);
    else snprintf(cand, sizeof cand, "%.*s/%s", (int)n, p, file);
    if (stat(cand, &st) == 0 && !S_ISDIR(st.st_mode)) {
      if (access(cand, X_OK) == 0) {
        snprintf(out, outlen, "%s", cand);
        return 0;
      }
      saw_denied = 1;
    }
    if (!colon) break;
    p = colon + 1;
  }
  if (saw_denied) {
    snprintf(err, errlen, "exec: \"%s\": permission denied", file);
    return 126;
  }
  snprintf(err, errlen, "exec: \"%s\": executable file not found in $PATH", file);
  return 127;
}

static int env_has(char **env, size_t n, const char *key) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < n; i++)
    if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=') return 1;
  return 0;
}

/* Docker's environment: the spec's, plus PATH, HOSTNAME, HOME (and TERM with a tty) if absent. */
static char **build_env(const proc_spec *p, const char *hostname, const char *home) {
  size_t n = p->nenv;
  char **env = calloc(n + 5, sizeof(char *));
  size_t k = 0;
  if (!env_has(p->env, n, "PATH")) env[k++] = strdup("PATH=" DEFAULT_PATH);
  if (hostname && !env_has(p->env, n, "HOSTNAME")) {
    env[k] = malloc(strlen(hostname) + 10);
    sprintf(env[k++], "HOSTNAME=%s", hostname);
  }
  for (size_t i = 0; i < n; i++) env[k++] = p->env[i];
  if (p->tty && !env_has(p->env, n, "TERM")) env[k++] = strdup("TERM=xterm");
  if (!env_has(p->env, n, "HOME")) {
    env[k] = malloc(strlen(home) + 6);
    sprintf(env[k++], "HOME=%s", home);
  }
  env[k] = NULL;
  return env;
}

static int send_fd(int sock, int fd) {
  char byte = 'P';
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, 0) < 0 ? -1 : 0;
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {&byte, 1};
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

/* Every descriptor above stdio closes at execve, as runc does: the agent's own are O_CLOEXEC,
 * but whatever its caller left open without it (tvm-agent run under a shell, a test harness)
 * must not reach the container. close_range needs Linux 5.11; older kernels walk /proc/self/fd. */
static int cloexec_from_3(void) {
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC_FLAG) == 0) return 0;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    int fd = atoi(e->d_name);
    if (fd >= 3 && fd != dirfd(d) && set_cloexec(fd) < 0) {
      int err = errno;
      closedir(d);
      errno = err;
      return -1;
    }
  }
  closedir(d);
  return 0;
}

/* An ignored signal stays ignored across execve: the agent's SIG_IGN for SIGPIPE, or whatever
 * its caller ignored (nohup), would reach the container's program. Everything back to default. */
static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &sa, NULL); /* EINVAL for the reserved ones */
}

/* Inside the container's root: stdio, user, workdir, capabilities, seccomp, execve. */
static void __attribute__((noreturn))
finish_and_exec(const child_ctx *c, const container_spec *s, const proc_spec *p, const char *hostname, uint64_t caps, int privileged) {
  char err[1024];
  if (p->tty) {
    int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) child_fail(c, 126, "open /dev/ptmx: %s", strerror(errno));
    int unlock = 0;
    if (ioctl(master, TIOCSPTLCK, &unlock) < 0) child_fail(c, 126, "unlock pty: %s", strerror(errno));
    int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
    if (slave < 0) child_fail(c, 126, "open pty peer: %s", strerror(errno));
    if (send_fd(c->ptysock, master) < 0) child_fail(c, 126, "send pty master: %s", strerror(errno));
    close(master);
    if (setsid() < 0) child_fail(c, 126, "setsid: %s", strerror(errno));
    if (ioctl(slave, TIOCSCTTY, 0) < 0) child_fail(c, 126, "set controlling tty: %s", strerror(errno));
    for (int fd = 0; fd < 3; fd++) dup2(slave, fd);
    if (slave > 2) close(slave);
  } else {
    dup2(c->in_fd, 0);
    dup2(c->out_fd, 1);
    dup2(c->err_fd, 2);
  }

  char *passwd = read_file("/etc/passwd", NULL);
  char *group = read_file("/etc/group", NULL);
  exec_user u;
  if (user_resolve(p->user, passwd, group, &u, err, sizeof err) < 0) child_fail(c, 126, "%s", err);
  if (hostopts_groups(&s->opts, group, &u, err, sizeof err) < 0) child_fail(c, 126, "%s", err);
  free(passwd);
  free(group);

  char **env = build_env(p, hostname, u.home);
  /* Docker creates a missing workdir (root-owned) */
  int rc = mkdir_p(p->cwd, 0755);
  if (rc < 0 && rc != -EEXIST) child_fail(c, 126, "mkdir %s: %s", p->cwd, strerror(-rc));

  /* nofile: as with dockerd, whose OCI spec sets no rlimits, the container keeps the daemon's
   * (inherited through the supervisor); --ulimit below overrides it */
  /* before the filter: a profile need not allow close_range or fcntl */
  if (cloexec_from_3() < 0) child_fail(c, 126, "mark inherited descriptors close-on-exec: %s", strerror(errno));
  reset_signals();
  /* --ulimit (over the default above) and --oom-score-adj, while we still hold CAP_SYS_RESOURCE */
  host_opts po = s->opts; /* shallow: only a flag differs */
  /* the container's init got its oom_score_adj from the agent (container_start), exec processes here */
  if (p == &s->process) po.has_oom_score_adj = 0;
  if (hostopts_process(&po, err, sizeof err) < 0) child_fail(c, 126, "%s", err);
  /* Without no_new_privs, installing a filter takes CAP_SYS_ADMIN: install it while we still
   * hold it, as runc does (the profile must then allow setuid, capset, execve: Docker's does). */
  if (!s->no_new_privs && seccomp_install(&s->seccomp) < 0) child_fail(c, 126, "install seccomp filter: %s", strerror(errno));
  if (!privileged && caps_apply_bounding(caps) < 0) child_fail(c, 126, "drop bounding capabilities: %s", strerror(errno));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) child_fail(c, 126, "keepcaps: %s", strerror(errno));
  if (setgroups(u.ngroups, u.groups) < 0) child_fail(c, 126, "setgroups: %s", strerror(errno));
  if (setresgid(u.gid, u.gid, u.gid) < 0) child_fail(c, 126, "setgid %u: %s", (unsigned)u.gid, strerror(errno));
  if (setresuid(u.uid, u.uid, u.uid) < 0) child_fail(c, 126, "setuid %u: %s", (unsigned)u.uid, strerror(errno));
  /* the kernel clears the parent-death signal when the euid/egid changes (commit_creds): the
   * container's init set it after the sync and must die with its agent as a root init does */
  if (p == &s->process && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_fail(c, 126, "parent-death signal: %s", strerror(errno));
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) child_fail(c, 126, "keepcaps: %s", strerror(errno));
  /* non-root: execve clears permitted/effective anyway (no ambient set), as in Docker */
  if (caps_apply_sets(caps) < 0) child_fail(c, 126, "set capabilities: %s", strerror(errno));
  if (chdir(p->cwd) < 0) child_fail(c, 126, "chdir to cwd (\"%s\") set in config.json failed: %s", p->cwd, strerror(errno));

  char exe[PATH_MAX];
  /* --init: docker-init (the agent, bind-mounted read-only) runs the command as its child */
  char *const *argv = s->opts.init && p == &s->process ? hostopts_init_argv(p->args, p->nargs) : p->args;
  if (!argv) child_fail(c, 126, "out of memory");
  int code = lookup_path(argv[0], env, exe, sizeof exe, err, sizeof err);
  if (code) child_fail(c, code, "%s", err);
  /* Docker sets no_new_privs only when asked (--security-opt no-new-privileges): setuid binaries work */
  if (s->no_new_privs) {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_fail(c, 126, "no_new_privs: %s", strerror(errno));
    if (seccomp_install(&s->seccomp) < 0) child_fail(c, 126, "install seccomp filter: %s", strerror(errno));
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  execve(exe, argv, env);
  code = errno == ENOENT ? 127 : 126;
  child_fail(c, code, "exec: \"%s\": %s", p->args[0], errno == EACCES ? "permission denied" : strerror(errno));
}

/* Agent and child ends of everything a child needs. */
typedef struct {
  int err[2], sync[2], pty[2], in[2], out[2], errp[2], ovl[2];
} fdset;

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void fdset_close(fdset *f) {
  int *all = &f->err[0];
  for (size_t i = 0; i < sizeof *f / sizeof(int); i++) close_fd(&all[i]);
}

static int fdset_open(fdset *f, const proc_spec *p, char *err, size_t errlen) {
  memset(f, 0xff, sizeof *f);
  if (pipe2(f->err, O_CLOEXEC) < 0 || pipe2(f->sync, O_CLOEXEC) < 0 || pipe2(f->ovl, O_CLOEXEC) < 0) goto fail;
  if (p->tty) {
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, f->pty) < 0) goto fail;
  } else {
    if (p->stdin_open) {
      if (pipe2(f->in, O_CLOEXEC) < 0) goto fail;
    } else {
      f->in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (f->in[0] < 0) goto fail;
    }
    if (pipe2(f->out, O_CLOEXEC) < 0 || pipe2(f->errp, O_CLOEXEC) < 0) goto fail;
  }
  return 0;
fail:
  snprintf(err, errlen, "create stdio pipes: %s", strerror(errno));
  fdset_close(f);
  return -1;
}

/* In a new child: its ends, with the agent's ends closed first. Holding its own copy of the
 * sync pipe's write end, a child whose agent died before the sync byte would wait for ever;
 * without it the read sees EOF. */
static child_ctx child_ends(fdset *f) {
  child_ctx c = {f->err[1], f->sync[0], f->pty[1], f->in[0], f->out[1], f->errp[1], f->ovl[1]};
  close_fd(&f->err[0]);
  close_fd(&f->sync[1]);
  close_fd(&f->pty[0]);
  close_fd(&f->in[1]);
  close_fd(&f->out[0]);
  close_fd(&f->errp[0]);
  close_fd(&f->ovl[0]);
  return c;
}

/* Parent side after the child exists: wait for its report, collect the agent's ends. */
static int collect(fdset *f, const proc_spec *p, proc_io *io, int *code, char *err, size_t errlen) {
  close_fd(&f->err[1]);
  close_fd(&f->pty[1]);
  close_fd(&f->in[0]);
  close_fd(&f->out[1]);
  close_fd(&f->errp[1]);
  close_fd(&f->sync[0]);
  close_fd(&f->ovl[1]);
  io->pty = -1;
  if (p->tty) {
    /* the child either sends the master or fails and closes the socket */
    io->pty = recv_fd(f->pty[0]);
  }
  char msg[1200];
  ssize_t n = read_full(f->err[0], msg, sizeof msg - 1);
  if (n > 0) {
    msg[n] = 0;
    char *sp = strchr(msg, ' ');
    *code = atoi(msg);
    snprintf(err, errlen, "%s", sp ? sp + 1 : msg);
    close_fd(&io->pty);
    fdset_close(f);
    return -1;
  }
  if (p->tty && io->pty < 0) {
    *code = 126;
    snprintf(err, errlen, "pty master was not received");
    fdset_close(f);
    return -1;
  }
  io->stdin_fd = f->in[1];
  io->stdout_fd = f->out[0];
  io->stderr_fd = f->errp[0];
  f->in[1] = f->out[0] = f->errp[0] = -1;
  fdset_close(f);
  return 0;
}

/* A new network namespace has only lo, and down: Docker's "none" network brings it up. */
static int loopback_up(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
  if (rc == 0 && !(ifr.ifr_flags & IFF_UP)) {
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
  }
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

/* Enters the network namespace at `path`, keeping an fd of the current one in *own. */
static int netns_enter(const char *path, int *own, char *err, size_t errlen) {
  int target = open(path, O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    snprintf(err, errlen, "open network namespace %s: %s", path, strerror(errno));
    return -1;
  }
  *own = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (*own < 0 || setns(target, CLONE_NEWNET) < 0) {
    snprintf(err, errlen, "join network namespace %s: %s", path, strerror(errno));
    if (*own >= 0) close(*own);
    *own = -1;
    close(target);
    return -1;
  }
  close(target);
  return 0;
}

static pid_t raw_clone(unsigned long flags) {
  /* fork-like clone (no new stack): x86_64 argument order flags, stack, ptid, ctid, tls */
  return (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* User namespace: the overlay rootfs is mounted by a helper that joins the child's mount
 * namespace but stays in the host's user namespace, so the filesystem belongs to the host's
 * (as Docker's overlay2 mounts do): overlayfs keeps its trusted.* xattrs, and the daemon, as
 * root, can create files in it through /proc/<pid>/root (docker cp) without EOVERFLOW. */
static int overlay_into(const container_spec *s, pid_t pid, char *err, size_t errlen) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    snprintf(err, errlen, "open %s: %s", path, strerror(errno));
    return -1;
  }
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    close(nsfd);
    return -1;
  }
  pid_t h = fork();
  if (h < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    close(nsfd);
    close(ep[0]);
    close(ep[1]);
    return -1;
  }
  if (h == 0) {
    char e[1024] = "";
    if (setns(nsfd, CLONE_NEWNS) < 0) snprintf(e, sizeof e, "join the container's mount namespace: %s", strerror(errno));
    else rootfs_mount_overlay(s, e, sizeof e);
    if (e[0]) write_all(ep[1], e, strlen(e));
    _exit(e[0] ? 1 : 0);
  }
  close(nsfd);
  close(ep[1]);
  char msg[1024];
  ssize_t n = read_full(ep[0], msg, sizeof msg - 1);
  close(ep[0]);
  int st;
  while (waitpid(h, &st, 0) < 0 && errno == EINTR) {}
  if (n > 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    msg[n > 0 ? n : 0] = 0;
    snprintf(err, errlen, "%s", n > 0 ? msg : "mount the overlay rootfs: the helper failed");
    return -1;
  }
  return 0;
}

int container_start(const container_spec *s, proc_io *io, int *code, char *err, size_t errlen) {
  fdset f;
  *code = 126;
  if (fdset_open(&f, &s->process, err, errlen) < 0) return -1;
  unsigned long flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | (s->net_none ? CLONE_NEWNET : 0);
  /* created with the others, the user namespace owns them: the child may mount proc, sysfs (its
   * own netns), mqueue and overlayfs as the namespace's root */
  if (s->userns.nuid) flags |= CLONE_NEWUSER;
  /* A prepared network namespace is entered by the agent around the clone, not by the child:
   * a child in a new user namespace could not join one owned by the host's (as runc joins
   * namespaces before it unshares the user namespace) */
  int own_net = -1;
  if (s->netns_path && netns_enter(s->netns_path, &own_net, err, errlen) < 0) {
    fdset_close(&f);
    return -1;
  }
  pid_t pid = raw_clone(flags);
  int clone_errno = errno;
  if (pid != 0 && own_net >= 0) {
    /* back to the supervisor's own namespace; failing that, it would serve from the container's */
    if (setns(own_net, CLONE_NEWNET) < 0) {
      snprintf(err, errlen, "return to the agent's network namespace: %s", strerror(errno));
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
      }
      close(own_net);
      fdset_close(&f);
      return -1;
    }
    close(own_net);
  }
  if (pid < 0) {
    snprintf(err, errlen, "clone: %s", strerror(clone_errno));
    fdset_close(&f);
    return -1;
  }
  if (pid == 0 && own_net >= 0) close(own_net);
  if (pid == 0) {
    child_ctx c = child_ends(&f);
    char b;
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* wait until the agent has put us in the cgroup: every later allocation is accounted */
    if (read(c.syncfd, &b, 1) != 1) _exit(126);
    /* the agent has written our id maps before the sync byte */
    if (s->userns.nuid) {
      if (userns_become_root(err, errlen) < 0) child_fail(&c, 126, "%s", err);
      /* becoming the namespace's root cleared the parent-death signal: without it a dead agent
       * would leave us waiting on the sync pipe below for ever */
      prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
      /* the agent mounts the overlay rootfs into our mount namespace (see rootfs_mount_overlay):
       * nothing may propagate back to the host from here on */
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_fail(&c, 126, "make / private: %s", strerror(errno));
      if (write(c.ovlfd, "r", 1) != 1 || read(c.syncfd, &b, 1) != 1) _exit(126);
    }
    close(c.ovlfd);
    if (s->net_none && loopback_up() < 0) child_fail(&c, 126, "bring up lo: %s", strerror(errno));
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0) child_fail(&c, 126, "sethostname: %s", strerror(errno));
    if (rootfs_setup(s, err, errlen) < 0) child_fail(&c, 126, "%s", err);
    finish_and_exec(&c, s, &s->process, s->hostname, s->caps, s->privileged);
  }
  io->pid = pid;
  if (cgroup_join(s, pid, err, errlen) < 0 || (s->userns.nuid && userns_write_maps(pid, &s->userns, err, errlen) < 0)) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fdset_close(&f);
    return -1;
  }
  /* --device rules, --memory-reservation, --oom-kill-disable on the container's cgroup;
   * --oom-score-adj from outside the container's user namespace */
  if (hostopts_cgroup(&s->opts, s->cgroup_version, s->cgroup_root, s->cgroup_path, err, errlen) < 0 ||
      hostopts_oom_score(&s->opts, pid, err, errlen) < 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fdset_close(&f);
    return -1;
  }
  if (write(f.sync[1], "g", 1) != 1) {
    snprintf(err, errlen, "sync with container init: %s", strerror(errno));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fdset_close(&f);
    return -1;
  }
  close_fd(&f.ovl[1]);
  if (s->userns.nuid) {
    char b;
    /* EOF: the child failed before; collect() reports why */
    if (read_full(f.ovl[0], &b, 1) == 1) {
      if (overlay_into(s, pid, err, errlen) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fdset_close(&f);
        return -1;
      }
      if (write(f.sync[1], "o", 1) != 1) {
        snprintf(err, errlen, "sync with container init: %s", strerror(errno));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fdset_close(&f);
        return -1;
      }
    }
  }
  close_fd(&f.ovl[0]);
  close_fd(&f.sync[1]);
  if (collect(&f, &s->process, io, code, err, errlen) < 0) {
    /* the child exits with the code it reported; the caller reaps it */
    return -1;
  }
  return 0;
}

int container_exec(const container_spec *s, pid_t init_pid, const proc_spec *p, int privileged, proc_io *io, int *code, char *err,
                   size_t errlen) {
  /* the user namespace first: it owns the others, and joining it grants the capabilities to join them */
  static const char *const all_nss[] = {"user", "ipc", "uts", "net", "pid", "mnt"};
  const char *const *nss = s->userns.nuid ? all_nss : all_nss + 1;
  const int nns = s->userns.nuid ? 6 : 5;
  int nsfd[6];
  *code = 126;
  for (int i = 0; i < nns; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/%s", (int)init_pid, nss[i]);
    nsfd[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (nsfd[i] < 0) {
      snprintf(err, errlen, "open %s: %s", path, strerror(errno));
      while (i--) close(nsfd[i]);
      return -1;
    }
  }
  fdset f;
  if (fdset_open(&f, p, err, errlen) < 0) {
    for (int i = 0; i < nns; i++) close(nsfd[i]);
    return -1;
  }
  int pidpipe[2];
  if (pipe2(pidpipe, O_CLOEXEC) < 0) {
    snprintf(err, errlen, "pipe: %s", strerror(errno));
    fdset_close(&f);
    for (int i = 0; i < nns; i++) close(nsfd[i]);
    return -1;
  }
  pid_t mid = fork();
  if (mid < 0) {
    snprintf(err, errlen, "fork: %s", strerror(errno));
    fdset_close(&f);
    close(pidpipe[0]);
    close(pidpipe[1]);
    for (int i = 0; i < nns; i++) close(nsfd[i]);
    return -1;
  }
  if (mid == 0) {
    child_ctx c = child_ends(&f);
    char b;
    if (read(c.syncfd, &b, 1) != 1) _exit(126);
    for (int i = 0; i < nns; i++)
      if (setns(nsfd[i], 0) < 0) child_fail(&c, 126, "setns %s: %s", nss[i], strerror(errno));
    if (s->userns.nuid && userns_become_root(err, errlen) < 0) child_fail(&c, 126, "%s", err);
    /* setns(pid) applies to children only: CLONE_PARENT makes the agent the parent, so it
     * reaps the exec process directly */
    pid_t pid = raw_clone(CLONE_PARENT);
    if (pid < 0) child_fail(&c, 126, "clone: %s", strerror(errno));
    if (pid == 0) {
      close(pidpipe[0]);
      close(pidpipe[1]);
      finish_and_exec(&c, s, p, s->hostname, privileged ? caps_all() : s->caps, privileged);
    }
    write_all(pidpipe[1], &pid, sizeof pid);
    _exit(0);
  }
  for (int i = 0; i < nns; i++) close(nsfd[i]);
  close(pidpipe[1]);
  /* the intermediate process joins the cgroup first: the exec process inherits it */
  if (cgroup_join(s, mid, err, errlen) < 0) {
    kill(mid, SIGKILL);
    waitpid(mid, NULL, 0);
    close(pidpipe[0]);
    fdset_close(&f);
    return -1;
  }
  if (write(f.sync[1], "g", 1) != 1) {
    snprintf(err, errlen, "sync with exec: %s", strerror(errno));
    kill(mid, SIGKILL);
    waitpid(mid, NULL, 0);
    close(pidpipe[0]);
    fdset_close(&f);
    return -1;
  }
  close_fd(&f.sync[1]);
  pid_t pid = -1;
  ssize_t n = read_full(pidpipe[0], &pid, sizeof pid);
  close(pidpipe[0]);
  int st;
  waitpid(mid, &st, 0);
  int rc = collect(&f, p, io, code, err, errlen);
  io->pid = n == (ssize_t)sizeof pid ? pid : -1;
  if (rc < 0) return -1;
  if (io->pid < 0) {
    snprintf(err, errlen, "exec: no process was created");
    return -1;
  }
  return 0;
}
