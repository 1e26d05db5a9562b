#define _GNU_SOURCE
#include "run.h"
#include "cgroup.h"
#include "container.h"
#include "json.h"
#include "spec.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define IO_CHUNK 65536

int run_parse_args(int argc, char *const argv[], run_args *o, char *err, size_t errlen) {
  memset(o, 0, sizeof *o);
  for (int i = 1; i < argc; i++) {
    const char **slot = !strcmp(argv[i], "--spec")        ? &o->spec_path
                        : !strcmp(argv[i], "--state-dir") ? &o->state_dir
                        : !strcmp(argv[i], "--resources") ? &o->resources
                                                          : NULL;
    if (!slot) {
      snprintf(err, errlen, "unknown argument \"%s\"", argv[i]);
      return -1;
    }
    if (i + 1 >= argc || !argv[i + 1][0]) {
      snprintf(err, errlen, "%s needs a value", argv[i]);
      return -1;
    }
    if (*slot) {
      snprintf(err, errlen, "%s given twice", argv[i]);
      return -1;
    }
    *slot = argv[++i];
  }
  if (!o->spec_path) {
    snprintf(err, errlen, "--spec FILE is required");
    return -1;
  }
  return 0;
}

int run_exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return RUN_AGENT_ERROR;
}

static int load_spec(const char *path, container_spec *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  size_t len = 0;
  char *text = read_file(path, &len);
  if (!text) {
    snprintf(err, errlen, "reading spec %s: %s", path, strerror(errno));
    return -1;
  }
  char perr[512];
  jval *v = json_parse(text, len, perr, sizeof perr);
  free(text);
  if (!v) {
    snprintf(err, errlen, "spec %s: %s", path, perr);
    return -1;
  }
  int rc = spec_parse(v, s, perr, sizeof perr);
  json_free(v);
  if (rc < 0) {
    snprintf(err, errlen, "spec %s: %s", path, perr);
    spec_free(s);
    memset(s, 0, sizeof *s);
    return -1;
  }
  return 0;
}

static int usage_error(const char *cmd, const char *msg) {
  fprintf(stderr, "tvm-agent %s: %s\nusage: tvm-agent %s --spec FILE%s\n", cmd, msg, cmd,
          strcmp(cmd, "run") == 0      ? " [--state-dir DIR]"
          : strcmp(cmd, "update") == 0 ? " --resources JSON"
                                       : "");
  return 2;
}

/* The options a subcommand takes besides --spec: "state-dir", "resources" or none. */
static int check_args(const char *cmd, int argc, char *const argv[], run_args *a, const char *allowed) {
  char err[600];
  if (run_parse_args(argc, argv, a, err, sizeof err) < 0) return usage_error(cmd, err);
  if (a->state_dir && strcmp(allowed, "state-dir") != 0) return usage_error(cmd, "--state-dir is not used here");
  if (a->resources && strcmp(allowed, "resources") != 0) return usage_error(cmd, "--resources is not used here");
  if (!a->resources && strcmp(allowed, "resources") == 0) return usage_error(cmd, "--resources JSON is required");
  return 0;
}

/* The daemon makes the overlay's directories on the host; here the spec is all there is. */
static int make_rootfs_dirs(const container_spec *s, char *err, size_t errlen) {
  const char *dirs[] = {s->upper, s->work, s->target};
  for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
    if (!dirs[i]) continue; /* no overlay: lower is bound as the root */
    int rc = mkdir_p(dirs[i], 0755);
    if (rc < 0 && rc != -EEXIST) {
      snprintf(err, errlen, "mkdir %s: %s", dirs[i], strerror(-rc));
      return -1;
    }
  }
  return 0;
}

static void write_state(const char *dir, const char *name, const char *data, size_t len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int rc = write_file_atomic(path, data, len);
  if (rc < 0) fprintf(stderr, "tvm-agent run: writing %s: %s\n", path, strerror(-rc));
}

static void write_exit_json(const char *dir, int code, int oom) {
  char finished[40];
  format_time_rfc3339nano(finished);
  jwriter w;
  jw_init(&w);
  jw_obj_begin(&w);
  jw_kint(&w, "exitCode", code);
  jw_kbool(&w, "oomKilled", oom);
  jw_kstr(&w, "finishedAt", finished);
  jw_obj_end(&w);
  if (!w.oom) write_state(dir, "exit.json", w.buf, w.len);
  jw_free(&w);
}

/* Bytes from our stdin waiting for the container to read them. */
typedef struct {
  char buf[IO_CHUNK];
  size_t off, len;
} pending;

/* Copies what fd has to out; returns 0 at EOF (or EIO: a pty whose slave side is gone), 1 otherwise. */
static int drain(int fd, int out) {
  char buf[IO_CHUNK];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      /* a reader that went away must not stall the container: drop the bytes */
      write_all(out, buf, (size_t)n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return 1;
    return 0;
  }
}

static void copy_winsize(int from, int to) {
  struct winsize ws;
  if (ioctl(from, TIOCGWINSZ, &ws) == 0) ioctl(to, TIOCSWINSZ, &ws);
}

/* Moves bytes until the container's init has exited and its output has ended. */
static int pump(const container_spec *s, proc_io *io, int sigfd, int *status) {
  int tty = s->process.tty;
  int out_fd = tty ? io->pty : io->stdout_fd;
  int err_fd = tty ? -1 : io->stderr_fd;
  int in_dst = tty ? io->pty : io->stdin_fd;
  /* as docker run: our stdin reaches the container only when the spec opens it (-i) */
  int in_src = in_dst >= 0 && s->process.stdin_open ? 0 : -1;
  int exited = 0;
  static pending in;
  in.off = in.len = 0;
  if (out_fd >= 0) set_nonblock(out_fd);
  if (err_fd >= 0) set_nonblock(err_fd);
  if (in_dst >= 0) set_nonblock(in_dst);
  while (!exited || out_fd >= 0 || err_fd >= 0) {
    struct pollfd pf[5];
    int n = 0, i_sig = -1, i_out = -1, i_err = -1, i_in = -1, i_dst = -1;
    pf[i_sig = n++] = (struct pollfd){sigfd, POLLIN, 0};
    if (out_fd >= 0) pf[i_out = n++] = (struct pollfd){out_fd, POLLIN, 0};
    if (err_fd >= 0) pf[i_err = n++] = (struct pollfd){err_fd, POLLIN, 0};
    if (in_src >= 0 && in.len == 0) pf[i_in = n++] = (struct pollfd){in_src, POLLIN, 0};
    if (in_dst >= 0 && in.len > 0) pf[i_dst = n++] = (struct pollfd){in_dst, POLLOUT, 0};
    if (poll(pf, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "tvm-agent run: poll: %s\n", strerror(errno));
      return -1;
    }
    if (pf[i_sig].revents) {
      struct signalfd_siginfo si;
      while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        if (si.ssi_signo == SIGCHLD) continue;
        if (si.ssi_signo == SIGWINCH) {
          if (tty && io->pty >= 0) copy_winsize(0, io->pty);
          continue;
        }
        if (!exited) kill(io->pid, (int)si.ssi_signo);
      }
      for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) break;
        if (pid == io->pid) {
          *status = st;
          exited = 1;
        }
      }
    }
    if (i_out >= 0 && pf[i_out].revents && !drain(out_fd, 1)) {
      /* with a tty the master is stdin's destination too */
      if (in_dst == out_fd) in_dst = in_src = -1;
      close(out_fd);
      out_fd = -1;
    }
    if (i_err >= 0 && pf[i_err].revents && !drain(err_fd, 2)) {
      close(err_fd);
      err_fd = -1;
    }
    if (i_in >= 0 && pf[i_in].revents) {
      ssize_t r = read(in_src, in.buf, sizeof in.buf);
      if (r > 0) {
        in.off = 0;
        in.len = (size_t)r;
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        /* our stdin ended: so does the container's (a tty gets its EOF character instead) */
        in_src = -1;
        if (tty) {
          struct termios t;
          char eof = tcgetattr(io->pty, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
          if (write(io->pty, &eof, 1) < 0) {}
        } else {
          close(in_dst);
          in_dst = io->stdin_fd = -1;
        }
      }
    }
    if (i_dst >= 0 && pf[i_dst].revents) {
      ssize_t w = write(in_dst, in.buf + in.off, in.len - in.off);
      if (w > 0) {
        in.off += (size_t)w;
        if (in.off == in.len) in.off = in.len = 0;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        /* the container closed its stdin: stop feeding it */
        in.len = 0;
        in_src = -1;
        if (!tty) {
          close(in_dst);
          io->stdin_fd = -1;
        }
        in_dst = -1;
      }
    }
    if (exited && in_src >= 0) {
      in_src = -1;
      in.len = 0;
    }
  }
  if (!tty && io->stdin_fd >= 0) close(io->stdin_fd);
  return 0;
}

static const int forwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCHLD};

int run_main(int argc, char *const argv[]) {
  run_args a;
  char err[1400];
  int bad = check_args("run", argc, argv, &a, "state-dir");
  if (bad) return bad;
  container_spec s;
  if (load_spec(a.spec_path, &s, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent run: %s\n", err);
    return RUN_AGENT_ERROR;
  }
  if (a.state_dir) {
    int rc = mkdir_p(a.state_dir, 0700);
    if (rc < 0 && rc != -EEXIST) {
      fprintf(stderr, "tvm-agent run: state dir %s: %s\n", a.state_dir, strerror(-rc));
      spec_free(&s);
      return RUN_AGENT_ERROR;
    }
  }
  if (make_rootfs_dirs(&s, err, sizeof err) < 0 || cgroup_create(&s, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent run: %s\n", err);
    spec_free(&s);
    return RUN_AGENT_ERROR;
  }
  /* Signals for the container arrive through a signalfd; the child restores the mask before
   * its execve. A gone stdout must not kill us before the cgroup is removed. */
  sigset_t mask, old;
  sigemptyset(&mask);
  for (size_t i = 0; i < ARRAY_LEN(forwarded); i++) sigaddset(&mask, forwarded[i]);
  sigprocmask(SIG_BLOCK, &mask, &old);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  int code = RUN_AGENT_ERROR;
  struct termios saved;
  int raw = 0;
  if (sigfd < 0) {
    fprintf(stderr, "tvm-agent run: signalfd: %s\n", strerror(errno));
    goto out;
  }
  proc_io io = {.pid = -1, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .pty = -1};
  if (container_start(&s, &io, &code, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent run: %s\n", err);
    if (io.pid > 0) waitpid(io.pid, NULL, 0);
    goto out;
  }
  if (a.state_dir) {
    char v[32];
    int n = snprintf(v, sizeof v, "%d\n", (int)io.pid);
    write_state(a.state_dir, "pid", v, (size_t)n);
  }
  if (s.process.tty && isatty(0)) copy_winsize(0, io.pty);
  /* keys go to the container's terminal unprocessed (^C included) only when it reads our stdin */
  if (s.process.tty && s.process.stdin_open && isatty(0)) {
    if (tcgetattr(0, &saved) == 0) {
      struct termios t = saved;
      cfmakeraw(&t);
      raw = tcsetattr(0, TCSANOW, &t) == 0;
    }
  }
  int status = 0;
  if (pump(&s, &io, sigfd, &status) < 0) {
    kill(io.pid, SIGKILL);
    waitpid(io.pid, &status, 0);
  }
  if (raw) tcsetattr(0, TCSANOW, &saved);
  code = run_exit_code(status);
  if (a.state_dir) write_exit_json(a.state_dir, code, cgroup_oom_kills(&s) > 0);
out:
  if (sigfd >= 0) close(sigfd);
  {
    int rc = cgroup_destroy(&s);
    if (rc < 0) fprintf(stderr, "tvm-agent run: removing the cgroup: %s\n", strerror(-rc));
  }
  sigprocmask(SIG_SETMASK, &old, NULL);
  spec_free(&s);
  return code;
}

int run_freeze_main(int argc, char *const argv[], int frozen) {
  const char *cmd = frozen ? "pause" : "resume";
  run_args a;
  char err[1400];
  int bad = check_args(cmd, argc, argv, &a, "");
  if (bad) return bad;
  container_spec s;
  if (load_spec(a.spec_path, &s, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent %s: %s\n", cmd, err);
    return 1;
  }
  int rc = cgroup_freeze(&s, frozen, err, sizeof err);
  if (rc < 0) fprintf(stderr, "tvm-agent %s: %s\n", cmd, err);
  spec_free(&s);
  return rc < 0 ? 1 : 0;
}

int run_stats_main(int argc, char *const argv[]) {
  run_args a;
  char err[1400];
  int bad = check_args("stats", argc, argv, &a, "");
  if (bad) return bad;
  container_spec s;
  if (load_spec(a.spec_path, &s, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent stats: %s\n", err);
    return 1;
  }
  char dir[4096];
  snprintf(dir, sizeof dir, "%s%s%s", s.cgroup_root ? s.cgroup_root : "", s.cgroup_version == 2 ? "/" : "/memory/",
           s.cgroup_path ? s.cgroup_path : "");
  struct stat st;
  if (!s.cgroup_version || stat(dir, &st) < 0) {
    fprintf(stderr, "tvm-agent stats: no cgroup for container %s%s%s\n", s.id, s.cgroup_version ? " at " : "", s.cgroup_version ? dir : "");
    spec_free(&s);
    return 1;
  }
  cgroup_stats cs;
  cgroup_stats_read(&s, &cs);
  jwriter w;
  jw_init(&w);
  jw_obj_begin(&w);
  jw_key(&w, "memory");
  jw_obj_begin(&w);
  jw_kint(&w, "usage", cs.mem_usage);
  jw_kint(&w, "limit", cs.mem_limit);
  jw_kint(&w, "maxUsage", cs.mem_max_usage);
  jw_obj_end(&w);
  jw_key(&w, "cpu");
  jw_obj_begin(&w);
  jw_kint(&w, "usageNs", cs.cpu_usage_ns);
  jw_obj_end(&w);
  jw_key(&w, "pids");
  jw_obj_begin(&w);
  jw_kint(&w, "current", cs.pids_current);
  jw_kint(&w, "limit", cs.pids_limit);
  jw_obj_end(&w);
  jw_kint(&w, "oomKills", cgroup_oom_kills(&s));
  jw_obj_end(&w);
  int rc = w.oom ? 1 : 0;
  if (!w.oom) {
    write_all(1, w.buf, w.len);
    write_all(1, "\n", 1);
  }
  jw_free(&w);
  spec_free(&s);
  return rc;
}

int run_update_main(int argc, char *const argv[]) {
  run_args a;
  char err[1400], perr[512];
  int bad = check_args("update", argc, argv, &a, "resources");
  if (bad) return bad;
  jval *v = json_parse(a.resources, strlen(a.resources), perr, sizeof perr);
  if (!v) {
    fprintf(stderr, "tvm-agent update: --resources: %s\n", perr);
    return 1;
  }
  resources_update u;
  int rc = resources_update_parse(v, &u, err, sizeof err);
  json_free(v);
  if (rc < 0) {
    fprintf(stderr, "tvm-agent update: %s\n", err);
    resources_update_free(&u);
    return 1;
  }
  container_spec s;
  if (load_spec(a.spec_path, &s, err, sizeof err) < 0) {
    fprintf(stderr, "tvm-agent update: %s\n", err);
    resources_update_free(&u);
    return 1;
  }
  /* the spec's limits are what the group was created with: the merge starts from them */
  rc = cgroup_update(&s, &u, err, sizeof err);
  if (rc < 0) fprintf(stderr, "tvm-agent update: %s\n", err);
  resources_update_free(&u);
  spec_free(&s);
  return rc < 0 ? 1 : 0;
}
