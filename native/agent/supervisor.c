#define _GNU_SOURCE
/* The supervisor: the event loop over the listening socket, the connections and the container's
 * processes, which it starts, feeds stdin, logs, reaps and reports (docs/agent-protocol.md).
 * Connections and the protocol are in supervisor-conn.c, the operations in supervisor-ops.c. */
#include "supervisor-internal.h"
#include "supervisor.h"
#include "cgroup.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>

struct sup_globals sup;

/* ---------- processes ---------- */

proc *find_proc(const char *id) {
  for (proc *p = sup.procs; p; p = p->next)
    if (strcmp(p->id, id ? id : "") == 0) return p;
  return NULL;
}

proc *main_proc(void) { return find_proc(""); }

void write_status(jwriter *w, const proc *p) {
  jw_obj_begin(w);
  jw_kint(w, "exitCode", p->exit_code);
  jw_kstr(w, "finishedAt", p->finished_at);
  jw_kbool(w, "oomKilled", p->oom);
  if (p->error) jw_kstr(w, "error", p->error);
  jw_obj_end(w);
}

static void write_exit_file(const proc *p) {
  jwriter w;
  jw_init(&w);
  write_status(&w, p);
  char path[4096];
  snprintf(path, sizeof path, "%s/exit.json", sup.dir);
  if (!w.oom) {
    int rc = write_file_atomic(path, w.buf, w.len);
    if (rc < 0) diag("writing %s: %s", path, strerror(-rc));
  }
  jw_free(&w);
}

static void close_readers(proc *p, int stream) {
  for (conn *c = sup.conns; c; c = c->next)
    if (!c->dead && c->kind == C_OUT && c->p == p && c->stream == stream) {
      c->closing = 1;
      conn_flush(c);
    }
}

static void close_stdin(proc *p) {
  if (p->in_registered) epoll_ctl(sup.ep, EPOLL_CTL_DEL, p->io.stdin_fd, NULL);
  p->in_registered = 0;
  if (p->io.stdin_fd >= 0) close(p->io.stdin_fd);
  p->io.stdin_fd = -1;
  free(p->in_buf);
  p->in_buf = NULL;
  p->in_len = 0;
}

static void try_finalize(proc *p) {
  if (p->finalized || p->state != P_EXITED || !p->ended[0] || !p->ended[1]) return;
  p->finalized = 1;
  close_stdin(p);
  if (p->io.pty >= 0) {
    close(p->io.pty);
    p->io.pty = -1;
  }
  if (p->is_main) {
    write_exit_file(p);
    sup.idle_since = time(NULL);
  }
  diag("process %s (pid %d) finished: exit %d%s", p->is_main ? "main" : p->id, (int)p->pid, p->exit_code, p->oom ? " (oom)" : "");
  answer_waiters(p);
}

void answer_waiters(proc *p) {
  for (waiter *w = p->waiters; w;) {
    jwriter jw;
    begin_reply(&jw, "ok", w->req);
    jw_key(&jw, "status");
    write_status(&jw, p);
    jw_obj_end(&jw);
    send_json(w->c, &jw);
    jw_free(&jw);
    waiter *n = w->next;
    free(w);
    w = n;
  }
  p->waiters = NULL;
}

void end_output(proc *p, int i) {
  if (p->ended[i]) return;
  p->ended[i] = 1;
  if (p->out_fd[i] >= 0) {
    epoll_ctl(sup.ep, EPOLL_CTL_DEL, p->out_fd[i], NULL);
    /* the pty master is also the stdin path: closed at finalize */
    if (p->out_fd[i] != p->io.pty) close(p->out_fd[i]);
    p->out_fd[i] = -1;
  }
  if (p->is_main) log_flush(&sup.log, &p->logs[i]);
  close_readers(p, i + 1);
  try_finalize(p);
}

static void proc_exited(proc *p, int status) {
  format_time_rfc3339nano(p->finished_at);
  p->state = P_EXITED;
  if (WIFEXITED(status)) p->exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) p->exit_code = 128 + WTERMSIG(status);
  if (p->is_main) p->oom = cgroup_oom_kills(&sup.spec) > 0;
  /* With a pty nothing else holds the slave once the process is gone: read what is left. */
  try_finalize(p);
}

void on_output(proc *p, int i) {
  char buf[IO_CHUNK];
  for (;;) {
    ssize_t n = read(p->out_fd[i], buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      /* EIO: the pty's last slave is gone */
      end_output(p, i);
      return;
    }
    if (n == 0) {
      end_output(p, i);
      return;
    }
    if (p->is_main && log_write(&sup.log, &p->logs[i], buf, (size_t)n) < 0) diag("writing log: %s", strerror(errno));
    for (conn *c = sup.conns; c; c = c->next)
      if (!c->dead && c->kind == C_OUT && c->p == p && c->stream == i + 1) conn_queue(c, buf, (size_t)n);
    if (n < (ssize_t)sizeof buf) return;
  }
}

static int stdin_fd_of(proc *p) { return p->io.pty >= 0 ? p->io.pty : p->io.stdin_fd; }

static void stdin_update_events(proc *p) {
  int fd = stdin_fd_of(p);
  if (fd < 0) return;
  if (p->io.pty >= 0) {
    if (p->ended[0]) return;
    struct epoll_event ev = {.events = EPOLLIN | (p->in_len ? EPOLLOUT : 0), .data.ptr = &p->out_src[0]};
    epoll_ctl(sup.ep, EPOLL_CTL_MOD, fd, &ev);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &p->in_src};
  if (p->in_len && !p->in_registered) {
    if (epoll_ctl(sup.ep, EPOLL_CTL_ADD, fd, &ev) == 0) p->in_registered = 1;
  } else if (!p->in_len && p->in_registered) {
    epoll_ctl(sup.ep, EPOLL_CTL_DEL, fd, NULL);
    p->in_registered = 0;
  }
}

static void resume_stdin_readers(proc *p) {
  for (conn *c = sup.conns; c; c = c->next)
    if (!c->dead && c->kind == C_IN && c->p == p && c->paused) {
      c->paused = 0;
      conn_update_events(c);
    }
}

void flush_stdin(proc *p) {
  int fd = stdin_fd_of(p);
  while (fd >= 0 && p->in_len) {
    ssize_t n = write(fd, p->in_buf, p->in_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      /* EPIPE: the process closed its stdin; drop what is pending */
      p->in_len = 0;
      break;
    }
    memmove(p->in_buf, p->in_buf + n, p->in_len - (size_t)n);
    p->in_len -= (size_t)n;
  }
  if (!p->in_len && p->in_eof && p->io.pty < 0) close_stdin(p);
  else stdin_update_events(p);
  if (p->in_len < STDIN_MAX_PENDING) resume_stdin_readers(p);
}

void proc_register_io(proc *p) {
  p->out_fd[0] = p->io.pty >= 0 ? p->io.pty : p->io.stdout_fd;
  p->out_fd[1] = p->io.pty >= 0 ? -1 : p->io.stderr_fd;
  for (int i = 0; i < 2; i++) {
    p->logs[i].stream = i ? "stderr" : "stdout";
    p->out_src[i] = (ev_src){SRC_OUT, p, i};
    if (p->out_fd[i] < 0) {
      p->ended[i] = 1;
      continue;
    }
    set_nonblock(p->out_fd[i]);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->out_src[i]};
    epoll_ctl(sup.ep, EPOLL_CTL_ADD, p->out_fd[i], &ev);
  }
  p->in_src = (ev_src){SRC_STDIN, p, 0};
  if (p->io.stdin_fd >= 0) set_nonblock(p->io.stdin_fd);
  if (p->in_len) flush_stdin(p);
}

proc *proc_new(const char *id) {
  proc *p = calloc(1, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id);
  p->is_main = id[0] == 0;
  p->pid = -1;
  p->io = (proc_io){-1, -1, -1, -1, -1};
  p->out_fd[0] = p->out_fd[1] = -1;
  p->next = sup.procs;
  sup.procs = p;
  return p;
}

/* Start failure: Docker reports it as the exit status (127/126) with the error text. */
void proc_failed(proc *p, int code, const char *msg) {
  p->state = P_EXITED;
  p->exit_code = code;
  p->error = strdup(msg);
  p->ended[0] = p->ended[1] = 1;
  format_time_rfc3339nano(p->finished_at);
  close_readers(p, 1);
  close_readers(p, 2);
  try_finalize(p);
}

void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (proc *p = sup.procs; p; p = p->next)
      if (p->pid == pid && p->state == P_RUNNING) {
        proc_exited(p, status);
        break;
      }
  }
}

int supervisor_run(const supervisor_opts *o) {
  memset(&sup, 0, sizeof sup);
  sup.dir = o->state_dir;
  sup.lfd = o->listen_fd;
  sup.linger = o->linger_seconds;
  sup.freezable_fs = o->freezable_fs;
  sup.owns_network = o->owns_network;
  sup.log.fd = -1;
  sup.idle_since = time(NULL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  sup.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  sup.ep = epoll_create1(EPOLL_CLOEXEC);
  if (sup.sfd < 0 || sup.ep < 0) {
    diag("signalfd/epoll: %s", strerror(errno));
    return 1;
  }
  set_nonblock(sup.lfd);
  sup.lsrc = (ev_src){SRC_LISTEN, NULL, 0};
  sup.ssrc = (ev_src){SRC_SIGNAL, NULL, 0};
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &sup.lsrc};
  epoll_ctl(sup.ep, EPOLL_CTL_ADD, sup.lfd, &ev);
  ev.data.ptr = &sup.ssrc;
  epoll_ctl(sup.ep, EPOLL_CTL_ADD, sup.sfd, &ev);

  while (!sup.quit) {
    struct epoll_event evs[32];
    int n = epoll_wait(sup.ep, evs, 32, 1000);
    if (n < 0 && errno != EINTR) {
      diag("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n && !sup.quit; i++) {
      ev_src *s = evs[i].data.ptr;
      uint32_t e = evs[i].events;
      switch (s->type) {
      case SRC_LISTEN: on_accept(); break;
      case SRC_SIGNAL: {
        struct signalfd_siginfo si;
        while (read(sup.sfd, &si, sizeof si) == sizeof si) {}
        reap();
        break;
      }
      case SRC_CONN: {
        conn *c = s->obj;
        if (c->dead) break;
        if (e & EPOLLOUT) conn_flush(c);
        if (!c->dead && (e & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))) on_conn_readable(c);
        break;
      }
      case SRC_OUT: {
        proc *p = s->obj;
        if (s->which == 0 && p->io.pty >= 0 && (e & EPOLLOUT)) flush_stdin(p);
        if (!p->ended[s->which] && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_output(p, s->which);
        break;
      }
      case SRC_STDIN: {
        proc *p = s->obj;
        if (e & EPOLLERR) {
          p->in_len = 0;
          p->in_eof = 1;
        }
        flush_stdin(p);
        break;
      }
      }
    }
    free_dead_conns();
    proc *m = main_proc();
    int done = !sup.have_spec || (m && m->finalized);
    if (!sup.quit && done && sup.idle_since && sup.linger > 0 && time(NULL) - sup.idle_since > sup.linger) {
      int controls = 0;
      for (conn *c = sup.conns; c; c = c->next) controls += c->kind == C_CONTROL;
      if (!controls) {
        diag("no control connection for %d s after the container finished: exiting", sup.linger);
        if (sup.have_spec) cgroup_destroy(&sup.spec);
        break;
      }
    }
  }
  /* whatever was produced is delivered before we go: blocking, bounded by a send timeout */
  for (conn *c = sup.conns; c; c = c->next) {
    if (c->dead) continue;
    if (c->wlen) {
      struct timeval tv = {2, 0};
      setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
      write_all(c->fd, c->wbuf, c->wlen);
      c->wlen = 0;
    }
    conn_close(c);
  }
  free_dead_conns();
  return 0;
}
