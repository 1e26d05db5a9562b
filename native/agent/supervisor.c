#define _GNU_SOURCE
#include "supervisor.h"
#include "extract.h"
#include "cgroup.h"
#include "container.h"
#include "frame.h"
#include "json.h"
#include "logfile.h"
#include "spec.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PROTOCOL_VERSION 1
#define AGENT_NAME "tvm-agent/0.1"
#define READER_MAX_BEHIND (4u << 20)
#define STDIN_MAX_PENDING (1u << 20)
#define IO_CHUNK 65536

enum src_type { SRC_LISTEN, SRC_SIGNAL, SRC_CONN, SRC_OUT, SRC_STDIN };
typedef struct { enum src_type type; void *obj; int which; } ev_src;

typedef struct waiter { struct conn *c; uint32_t req; struct waiter *next; } waiter;

typedef enum { P_CREATED, P_RUNNING, P_EXITED } pstate;

typedef struct proc {
  struct proc *next;
  char id[130]; /* "" for the main process */
  int is_main;
  proc_spec spec; /* exec processes only; the main one uses the container spec's */
  const proc_spec *ps;
  int privileged;
  pstate state;
  pid_t pid;
  proc_io io;
  int out_fd[2];  /* stdout (or pty master), stderr; -1 once ended */
  int ended[2];
  log_line logs[2];
  ev_src out_src[2], in_src;
  char *in_buf;
  size_t in_len;
  int in_eof;
  int in_registered;
  int exit_code, oom, finalized;
  char *error;
  char started_at[40], finished_at[40];
  waiter *waiters;
} proc;

typedef enum { C_HELLO, C_CONTROL, C_OUT, C_IN } ckind;

typedef struct conn {
  struct conn *next;
  int fd;
  ckind kind;
  ev_src src;
  frame_reader rd;
  char *wbuf;
  size_t wlen, wcap;
  proc *p;
  int stream;
  int closing, dead, want_out, paused;
  int froze_fs; /* this control connection froze the guest's disk: thawed when it goes */
} conn;

static struct {
  const char *dir;
  int ep, lfd, sfd;
  log_file log; /* the json-file log, rotated per spec.logRotate */
  int linger;
  container_spec spec;
  int have_spec, paused;
  proc *procs;
  conn *conns;
  time_t idle_since;
  int quit;
  ev_src lsrc, ssrc;
  const char *freezable_fs;
  int fs_frozen;
} g;

static int fs_freeze(int freeze);

/* ---------- connections ---------- */

static void conn_update_events(conn *c) {
  if (c->dead) return;
  struct epoll_event ev = {0};
  ev.events = (c->paused || c->kind == C_OUT ? 0 : EPOLLIN) | (c->wlen ? EPOLLOUT : 0) | EPOLLRDHUP;
  if (c->kind == C_OUT) ev.events |= EPOLLIN; /* to notice the reader going away */
  ev.data.ptr = &c->src;
  epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(conn *c) {
  if (c->dead) return;
  c->dead = 1;
  epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  /* a closed control connection can no longer receive wait answers */
  for (proc *p = g.procs; p; p = p->next)
    for (waiter **w = &p->waiters; *w;) {
      if ((*w)->c == c) { waiter *d = *w; *w = d->next; free(d); }
      else w = &(*w)->next;
    }
  if (c->kind == C_CONTROL) g.idle_since = time(NULL);
  /* a reader that went away must not leave the guest's disk frozen for ever */
  if (c->froze_fs && g.fs_frozen && fs_freeze(0) < 0) diag("thaw %s: %s", g.freezable_fs, strerror(errno));
}

static void conn_flush(conn *c) {
  while (c->wlen && !c->dead) {
    ssize_t n = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      conn_close(c);
      return;
    }
    memmove(c->wbuf, c->wbuf + n, c->wlen - (size_t)n);
    c->wlen -= (size_t)n;
  }
  if (c->dead) return;
  if (!c->wlen && c->closing) {
    shutdown(c->fd, SHUT_WR);
    if (c->kind != C_CONTROL) { conn_close(c); return; }
  }
  conn_update_events(c);
}

static int conn_queue(conn *c, const void *data, size_t n) {
  if (c->dead) return -1;
  if (c->kind == C_OUT && c->wlen + n > READER_MAX_BEHIND) {
    diag("dropping a stream reader more than %u bytes behind", READER_MAX_BEHIND);
    conn_close(c);
    return -1;
  }
  if (c->wlen + n > c->wcap) {
    size_t nc = c->wcap ? c->wcap : 4096;
    while (nc < c->wlen + n) nc *= 2;
    char *nb = realloc(c->wbuf, nc);
    if (!nb) { conn_close(c); return -1; }
    c->wbuf = nb;
    c->wcap = nc;
  }
  memcpy(c->wbuf + c->wlen, data, n);
  c->wlen += n;
  conn_flush(c);
  return 0;
}

static void send_json(conn *c, jwriter *w) {
  if (w->oom) { diag("out of memory composing a reply"); conn_close(c); return; }
  size_t n;
  uint8_t *f = frame_encode(w->buf, w->len, &n);
  if (!f) { diag("reply too large"); conn_close(c); return; }
  conn_queue(c, f, n);
  free(f);
}

static void begin_reply(jwriter *w, const char *type, uint32_t id) {
  jw_init(w);
  jw_obj_begin(w);
  jw_kint(w, "v", PROTOCOL_VERSION);
  jw_kstr(w, "type", type);
  if (id) jw_kint(w, "id", id);
}

static void reply_error(conn *c, uint32_t id, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reply_error(conn *c, uint32_t id, const char *code, const char *fmt, ...) {
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  jwriter w;
  begin_reply(&w, "error", id);
  jw_kstr(&w, "code", code);
  jw_kstr(&w, "message", msg);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

static void reply_ok(conn *c, uint32_t id) {
  jwriter w;
  begin_reply(&w, "ok", id);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

/* ---------- processes ---------- */

static proc *find_proc(const char *id) {
  for (proc *p = g.procs; p; p = p->next)
    if (strcmp(p->id, id ? id : "") == 0) return p;
  return NULL;
}

static proc *main_proc(void) { return find_proc(""); }

static void write_status(jwriter *w, const proc *p) {
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
  snprintf(path, sizeof path, "%s/exit.json", g.dir);
  if (!w.oom) {
    int rc = write_file_atomic(path, w.buf, w.len);
    if (rc < 0) diag("writing %s: %s", path, strerror(-rc));
  }
  jw_free(&w);
}

static void close_readers(proc *p, int stream) {
  for (conn *c = g.conns; c; c = c->next)
    if (!c->dead && c->kind == C_OUT && c->p == p && c->stream == stream) {
      c->closing = 1;
      conn_flush(c);
    }
}

static void close_stdin(proc *p) {
  if (p->in_registered) epoll_ctl(g.ep, EPOLL_CTL_DEL, p->io.stdin_fd, NULL);
  p->in_registered = 0;
  if (p->io.stdin_fd >= 0) close(p->io.stdin_fd);
  p->io.stdin_fd = -1;
  free(p->in_buf);
  p->in_buf = NULL;
  p->in_len = 0;
}

static void answer_waiters(proc *p);

static void try_finalize(proc *p) {
  if (p->finalized || p->state != P_EXITED || !p->ended[0] || !p->ended[1]) return;
  p->finalized = 1;
  close_stdin(p);
  if (p->io.pty >= 0) { close(p->io.pty); p->io.pty = -1; }
  if (p->is_main) {
    write_exit_file(p);
    g.idle_since = time(NULL);
  }
  diag("process %s (pid %d) finished: exit %d%s", p->is_main ? "main" : p->id, (int)p->pid, p->exit_code,
       p->oom ? " (oom)" : "");
  answer_waiters(p);
}

static void answer_waiters(proc *p) {
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

static void end_output(proc *p, int i) {
  if (p->ended[i]) return;
  p->ended[i] = 1;
  if (p->out_fd[i] >= 0) {
    epoll_ctl(g.ep, EPOLL_CTL_DEL, p->out_fd[i], NULL);
    /* the pty master is also the stdin path: closed at finalize */
    if (p->out_fd[i] != p->io.pty) close(p->out_fd[i]);
    p->out_fd[i] = -1;
  }
  if (p->is_main) log_flush(&g.log, &p->logs[i]);
  close_readers(p, i + 1);
  try_finalize(p);
}

static void proc_exited(proc *p, int status) {
  format_time_rfc3339nano(p->finished_at);
  p->state = P_EXITED;
  if (WIFEXITED(status)) p->exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) p->exit_code = 128 + WTERMSIG(status);
  if (p->is_main) p->oom = cgroup_oom_kills(&g.spec) > 0;
  /* With a pty nothing else holds the slave once the process is gone: read what is left. */
  try_finalize(p);
}

static void on_output(proc *p, int i) {
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
    if (n == 0) { end_output(p, i); return; }
    if (p->is_main && log_write(&g.log, &p->logs[i], buf, (size_t)n) < 0) diag("writing log: %s", strerror(errno));
    for (conn *c = g.conns; c; c = c->next)
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
    epoll_ctl(g.ep, EPOLL_CTL_MOD, fd, &ev);
    return;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &p->in_src};
  if (p->in_len && !p->in_registered) {
    if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) == 0) p->in_registered = 1;
  } else if (!p->in_len && p->in_registered) {
    epoll_ctl(g.ep, EPOLL_CTL_DEL, fd, NULL);
    p->in_registered = 0;
  }
}

static void resume_stdin_readers(proc *p) {
  for (conn *c = g.conns; c; c = c->next)
    if (!c->dead && c->kind == C_IN && c->p == p && c->paused) { c->paused = 0; conn_update_events(c); }
}

static void flush_stdin(proc *p) {
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

static void proc_register_io(proc *p) {
  p->out_fd[0] = p->io.pty >= 0 ? p->io.pty : p->io.stdout_fd;
  p->out_fd[1] = p->io.pty >= 0 ? -1 : p->io.stderr_fd;
  for (int i = 0; i < 2; i++) {
    p->logs[i].stream = i ? "stderr" : "stdout";
    p->out_src[i] = (ev_src){SRC_OUT, p, i};
    if (p->out_fd[i] < 0) { p->ended[i] = 1; continue; }
    set_nonblock(p->out_fd[i]);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->out_src[i]};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, p->out_fd[i], &ev);
  }
  p->in_src = (ev_src){SRC_STDIN, p, 0};
  if (p->io.stdin_fd >= 0) set_nonblock(p->io.stdin_fd);
  if (p->in_len) flush_stdin(p);
}

static proc *proc_new(const char *id) {
  proc *p = calloc(1, sizeof *p);
  snprintf(p->id, sizeof p->id, "%s", id);
  p->is_main = id[0] == 0;
  p->pid = -1;
  p->io = (proc_io){-1, -1, -1, -1, -1};
  p->out_fd[0] = p->out_fd[1] = -1;
  p->next = g.procs;
  g.procs = p;
  return p;
}

/* Start failure: Docker reports it as the exit status (127/126) with the error text. */
static void proc_failed(proc *p, int code, const char *msg) {
  p->state = P_EXITED;
  p->exit_code = code;
  p->error = strdup(msg);
  p->ended[0] = p->ended[1] = 1;
  format_time_rfc3339nano(p->finished_at);
  close_readers(p, 1);
  close_readers(p, 2);
  try_finalize(p);
}

/* ---------- ops ---------- */

static const char *get_s(const jval *req, const char *k) {
  const jval *v = json_get(req, k);
  return v && v->type == J_STR ? v->str : NULL;
}

static void op_create(conn *c, uint32_t id, const jval *req) {
  if (g.have_spec) { reply_error(c, id, "ERR_STATE", "container already created"); return; }
  char err[1024];
  const jval *sv = json_get(req, "spec");
  if (!sv) { reply_error(c, id, "ERR_BAD_SPEC", "create: spec is required"); return; }
  if (spec_parse(sv, &g.spec, err, sizeof err) < 0) {
    spec_free(&g.spec);
    reply_error(c, id, "ERR_BAD_SPEC", "%s", err);
    return;
  }
  if (cgroup_create(&g.spec, err, sizeof err) < 0) {
    spec_free(&g.spec);
    reply_error(c, id, "ERR_SYSTEM", "%s", err);
    return;
  }
  int lrc = log_open(&g.log, g.spec.log_path, g.spec.log_max_size, g.spec.log_max_files);
  if (lrc < 0) {
    cgroup_destroy(&g.spec);
    reply_error(c, id, "ERR_SYSTEM", "open log %s: %s", g.spec.log_path, strerror(-lrc));
    spec_free(&g.spec);
    return;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/exit.json", g.dir);
  unlink(path);
  g.have_spec = 1;
  proc *p = proc_new("");
  p->ps = &g.spec.process;
  diag("created container %s", g.spec.id);
  reply_ok(c, id);
}

static void reply_pid(conn *c, uint32_t id, proc *p) {
  jwriter w;
  begin_reply(&w, "ok", id);
  jw_kint(&w, "pid", p->pid);
  jw_kstr(&w, "startedAt", p->started_at);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

static void start_proc(conn *c, uint32_t id, proc *p) {
  if (p->state != P_CREATED) { reply_error(c, id, "ERR_STATE", "process already started"); return; }
  char err[1200];
  int code;
  int rc = p->is_main ? container_start(&g.spec, &p->io, &code, err, sizeof err)
                      : container_exec(&g.spec, main_proc()->pid, p->ps, p->privileged, &p->io, &code, err, sizeof err);
  format_time_rfc3339nano(p->started_at);
  if (rc < 0) {
    diag("start %s failed (%d): %s", p->is_main ? "main" : p->id, code, err);
    p->pid = -1;
    proc_failed(p, code, err);
    /* the exit status rides along typed (127 not found, 126 not executable): the daemon must not
     * guess it from the message's words */
    jwriter w;
    begin_reply(&w, "error", id);
    jw_kstr(&w, "code", "ERR_EXEC");
    jw_kstr(&w, "message", err);
    jw_kint(&w, "exitCode", code);
    jw_obj_end(&w);
    send_json(c, &w);
    jw_free(&w);
    return;
  }
  p->pid = p->io.pid;
  p->state = P_RUNNING;
  proc_register_io(p);
  diag("started %s as pid %d", p->is_main ? "main" : p->id, (int)p->pid);
  reply_pid(c, id, p);
}

static void op_start(conn *c, uint32_t id) {
  if (!g.have_spec) { reply_error(c, id, "ERR_STATE", "start: no container created"); return; }
  start_proc(c, id, main_proc());
}

static void op_exec(conn *c, uint32_t id, const jval *req) {
  proc *m = main_proc();
  const char *eid = get_s(req, "exec");
  if (!m || m->state != P_RUNNING) { reply_error(c, id, "ERR_STATE", "exec: container is not running"); return; }
  if (g.paused) { reply_error(c, id, "ERR_STATE", "exec: container is paused"); return; }
  if (!eid || !spec_valid_id(eid)) { reply_error(c, id, "ERR_PROTOCOL", "exec: a valid exec id is required"); return; }
  if (find_proc(eid)) { reply_error(c, id, "ERR_STATE", "exec %s already exists", eid); return; }
  const jval *pv = json_get(req, "process");
  proc_spec ps;
  char err[1024];
  if (!pv || proc_spec_parse(pv, &ps, "exec.process", err, sizeof err) < 0) {
    if (pv) proc_spec_free(&ps);
    reply_error(c, id, "ERR_BAD_SPEC", "%s", pv ? err : "exec: process is required");
    return;
  }
  const jval *priv = json_get(req, "privileged");
  proc *p = proc_new(eid);
  p->spec = ps;
  p->ps = &p->spec;
  p->privileged = priv && priv->type == J_BOOL && priv->boolean;
  reply_ok(c, id);
}

static void op_start_exec(conn *c, uint32_t id, const jval *req) {
  const char *eid = get_s(req, "exec");
  proc *p = eid && *eid ? find_proc(eid) : NULL;
  if (!p) { reply_error(c, id, "ERR_NOT_FOUND", "no such exec: %s", eid ? eid : ""); return; }
  proc *m = main_proc();
  if (!m || m->state != P_RUNNING) { reply_error(c, id, "ERR_STATE", "container is not running"); return; }
  start_proc(c, id, p);
}

static proc *target(conn *c, uint32_t id, const jval *req) {
  const char *eid = get_s(req, "exec");
  proc *p = find_proc(eid);
  if (!p) reply_error(c, id, "ERR_NOT_FOUND", eid ? "no such exec: %s" : "no container created%s", eid ? eid : "");
  return p;
}

static void op_wait(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  waiter *w = calloc(1, sizeof *w);
  w->c = c;
  w->req = id;
  w->next = p->waiters;
  p->waiters = w;
  if (p->finalized) answer_waiters(p);
}

static void op_signal(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  const jval *s = json_get(req, "signal");
  if (!s || s->type != J_NUM || !s->is_int || s->i64 < 1 || s->i64 > 64) {
    reply_error(c, id, "ERR_PROTOCOL", "signal: a signal number 1..64 is required");
    return;
  }
  if (p->state != P_RUNNING) { reply_error(c, id, "ERR_STATE", "process is not running"); return; }
  if (kill(p->pid, (int)s->i64) < 0) { reply_error(c, id, "ERR_SYSTEM", "kill: %s", strerror(errno)); return; }
  reply_ok(c, id);
}

static void op_resize(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  const jval *r = json_get(req, "rows"), *co = json_get(req, "cols");
  if (!r || !co || r->type != J_NUM || co->type != J_NUM || !r->is_int || !co->is_int || r->i64 < 0 ||
      r->i64 > 65535 || co->i64 < 0 || co->i64 > 65535) {
    reply_error(c, id, "ERR_PROTOCOL", "resize: rows and cols 0..65535 are required");
    return;
  }
  if (p->io.pty < 0) { reply_error(c, id, "ERR_STATE", "resize: the process has no tty"); return; }
  struct winsize ws = {.ws_row = (unsigned short)r->i64, .ws_col = (unsigned short)co->i64};
  if (ioctl(p->io.pty, TIOCSWINSZ, &ws) < 0) { reply_error(c, id, "ERR_SYSTEM", "TIOCSWINSZ: %s", strerror(errno)); return; }
  reply_ok(c, id);
}

static void op_freeze(conn *c, uint32_t id, int frozen) {
  proc *m = main_proc();
  if (!m || m->state != P_RUNNING) { reply_error(c, id, "ERR_STATE", "container is not running"); return; }
  if (g.paused == frozen) { reply_error(c, id, "ERR_STATE", frozen ? "container is already paused" : "container is not paused"); return; }
  char err[1024];
  if (cgroup_freeze(&g.spec, frozen, err, sizeof err) < 0) { reply_error(c, id, "ERR_SYSTEM", "%s", err); return; }
  g.paused = frozen;
  reply_ok(c, id);
}

/* docker update: new cgroup limits for a created, running or paused container. */
static void op_update(conn *c, uint32_t id, const jval *req) {
  if (!g.have_spec) { reply_error(c, id, "ERR_STATE", "update: no container created"); return; }
  const jval *rv = json_get(req, "resources");
  resources_update u;
  char err[1200];
  if (!rv) { reply_error(c, id, "ERR_BAD_SPEC", "update: resources is required"); return; }
  if (resources_update_parse(rv, &u, err, sizeof err) < 0) {
    resources_update_free(&u);
    reply_error(c, id, "ERR_BAD_SPEC", "%s", err);
    return;
  }
  int rc = cgroup_update(&g.spec, &u, err, sizeof err);
  resources_update_free(&u);
  if (rc < 0) { reply_error(c, id, "ERR_SYSTEM", "%s", err); return; }
  diag("updated the resources of %s", g.spec.id);
  reply_ok(c, id);
}

static int64_t system_usage_ns(void) {
  char *t = read_file("/proc/stat", NULL);
  if (!t) return 0;
  unsigned long long v[8] = {0};
  int64_t total = 0;
  if (sscanf(t, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) >= 4) {
    long hz = sysconf(_SC_CLK_TCK);
    for (int i = 0; i < 8; i++) total += (int64_t)v[i];
    total = total * (1000000000 / (hz > 0 ? hz : 100));
  }
  free(t);
  return total;
}

static void op_stats(conn *c, uint32_t id) {
  if (!g.have_spec) { reply_error(c, id, "ERR_STATE", "no container created"); return; }
  cgroup_stats st;
  cgroup_stats_read(&g.spec, &st);
  jwriter w;
  begin_reply(&w, "ok", id);
  jw_key(&w, "memory");
  jw_obj_begin(&w);
  jw_kint(&w, "usage", st.mem_usage < 0 ? 0 : st.mem_usage);
  jw_kint(&w, "limit", st.mem_limit);
  jw_kint(&w, "maxUsage", st.mem_max_usage < 0 ? 0 : st.mem_max_usage);
  jw_obj_end(&w);
  jw_key(&w, "cpu");
  jw_obj_begin(&w);
  jw_kint(&w, "totalUsageNs", st.cpu_usage_ns < 0 ? 0 : st.cpu_usage_ns);
  jw_kint(&w, "systemUsageNs", system_usage_ns());
  jw_kint(&w, "onlineCpus", sysconf(_SC_NPROCESSORS_ONLN));
  jw_obj_end(&w);
  jw_key(&w, "pids");
  jw_obj_begin(&w);
  jw_kint(&w, "current", st.pids_current < 0 ? 0 : st.pids_current);
  jw_kint(&w, "limit", st.pids_limit);
  jw_obj_end(&w);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

static void op_ps(conn *c, uint32_t id) {
  if (!g.have_spec) { reply_error(c, id, "ERR_STATE", "no container created"); return; }
  pid_t pids[4096];
  int n = cgroup_pids(&g.spec, pids, 4096);
  jwriter w;
  begin_reply(&w, "ok", id);
  jw_key(&w, "processes");
  jw_arr_begin(&w);
  for (int i = 0; i < n; i++) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pids[i]);
    char *st = read_file(path, NULL);
    if (!st) continue;
    /* "pid (comm) state ppid": comm may hold spaces and parens, so parse from the last ')' */
    char *rp = strrchr(st, ')');
    int ppid = 0;
    if (rp) sscanf(rp + 2, "%*c %d", &ppid);
    free(st);
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pids[i]);
    size_t len = 0;
    char *cmd = read_file(path, &len);
    if (!cmd) continue;
    for (size_t k = 0; k + 1 < len; k++)
      if (cmd[k] == 0) cmd[k] = ' ';
    jw_obj_begin(&w);
    jw_kint(&w, "pid", pids[i]);
    jw_kint(&w, "ppid", ppid);
    jw_kstr(&w, "cmd", cmd);
    jw_obj_end(&w);
    free(cmd);
  }
  jw_arr_end(&w);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

static void op_state(conn *c, uint32_t id) {
  proc *m = main_proc();
  jwriter w;
  begin_reply(&w, "ok", id);
  const char *st = !m ? "empty" : m->state == P_CREATED ? "created" : m->state == P_EXITED ? "exited" : g.paused ? "paused" : "running";
  jw_kstr(&w, "status", st);
  if (m && m->pid > 0) jw_kint(&w, "pid", m->pid);
  if (m && m->started_at[0]) jw_kstr(&w, "startedAt", m->started_at);
  if (m && m->finalized) {
    jw_key(&w, "exit");
    write_status(&w, m);
  }
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
}

static void reap(void);

/* FIFREEZE flushes the disk's dirty data and checkpoints its journal: the block device then
 * holds a consistent filesystem until FITHAW, and writers in the guest wait meanwhile. */
static int fs_freeze(int freeze) {
  int fd = open(g.freezable_fs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = ioctl(fd, freeze ? FIFREEZE : FITHAW, 0);
  int e = errno;
  close(fd);
  errno = e;
  if (rc == 0) g.fs_frozen = freeze;
  return rc;
}

static void op_freeze_fs(conn *c, uint32_t id, int freeze) {
  if (!g.freezable_fs) {
    reply_error(c, id, "ERR_STATE", "%s: only the guest agent has a disk to freeze", freeze ? "freeze-fs" : "thaw-fs");
    return;
  }
  if (freeze == g.fs_frozen) {
    reply_error(c, id, "ERR_STATE", "the container's disk is %s", freeze ? "already frozen" : "not frozen");
    return;
  }
  if (fs_freeze(freeze) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "%s %s: %s", freeze ? "freeze" : "thaw", g.freezable_fs, strerror(errno));
    return;
  }
  for (conn *o = g.conns; o; o = o->next) o->froze_fs = 0;
  c->froze_fs = freeze;
  reply_ok(c, id);
}

static void op_shutdown(conn *c, uint32_t id) {
  if (g.fs_frozen && fs_freeze(0) < 0) diag("thaw %s: %s", g.freezable_fs, strerror(errno));
  proc *m = main_proc();
  if (g.have_spec && g.paused) { char err[256]; cgroup_freeze(&g.spec, 0, err, sizeof err); g.paused = 0; }
  for (proc *p = g.procs; p; p = p->next)
    if (p->state == P_RUNNING) kill(p->pid, SIGKILL);
  /* wait for every process we started; their status is recorded as they go */
  for (int i = 0; i < 500; i++) {
    int running = 0;
    for (proc *p = g.procs; p; p = p->next) running |= p->state == P_RUNNING;
    if (!running) break;
    usleep(10000);
    reap();
  }
  /* every exited process answers its waiters now, output drained or not */
  for (proc *p = g.procs; p; p = p->next)
    if (p->state == P_EXITED && !p->finalized) {
      for (int i = 0; i < 2; i++)
        if (!p->ended[i] && p->out_fd[i] >= 0) on_output(p, i);
      end_output(p, 0);
      end_output(p, 1);
    }
  (void)m;
  if (g.have_spec) {
    int rc = cgroup_destroy(&g.spec);
    if (rc < 0) diag("removing cgroup: %s", strerror(-rc));
  }
  reply_ok(c, id);
  /* deliver the answer before going away */
  int fl = fcntl(c->fd, F_GETFL);
  fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
  if (c->wlen) write_all(c->fd, c->wbuf, c->wlen);
  c->wlen = 0;
  g.quit = 1;
}

/* ---------- protocol ---------- */

static int check_envelope(conn *c, const jval *m, const char **type) {
  const jval *v = json_get(m, "v"), *t = json_get(m, "type");
  if (!m || m->type != J_OBJ || !v || v->type != J_NUM || !t || t->type != J_STR) {
    reply_error(c, 0, "ERR_PROTOCOL", "message must be an object with \"v\" and \"type\"");
    return -1;
  }
  if (!v->is_int || v->i64 != PROTOCOL_VERSION) {
    reply_error(c, 0, "ERR_VERSION", "unsupported protocol version");
    return -1;
  }
  *type = t->str;
  return 0;
}

/* `docker cp` into the running container: a forked helper owns the connection from here on
 * (it joins the container's mounts, which this process must not), so the event loop never
 * waits on a copy. The agent reaps it like any child it does not track. */
static void on_extract_hello(conn *c, const jval *m) {
  const char *dest = get_s(m, "path");
  proc *p = main_proc();
  if (!dest || dest[0] != '/') {
    reply_error(c, 0, "ERR_PROTOCOL", "extract: path must be absolute");
  } else if (!p || p->state != P_RUNNING) {
    reply_error(c, 0, "ERR_STATE", "extract: the container is not running");
  } else {
    pid_t child = fork();
    if (child == 0) _exit(extract_child(c->fd, p->pid, dest, c->rd.buf, c->rd.len));
    if (child > 0) {
      conn_close(c); /* our copy only: the helper answers on its own */
      return;
    }
    reply_error(c, 0, "ERR_SYSTEM", "extract: fork: %s", strerror(errno));
  }
  c->closing = 1;
  conn_flush(c);
}

static void on_hello(conn *c, const jval *m) {
  const char *type;
  if (check_envelope(c, m, &type) < 0) { c->closing = 1; conn_flush(c); return; }
  if (strcmp(type, "hello") != 0) {
    reply_error(c, 0, "ERR_PROTOCOL", "expected hello, got \"%s\"", type);
    c->closing = 1;
    conn_flush(c);
    return;
  }
  const jval *vs = json_get(m, "versions");
  int ok = 0;
  for (size_t i = 0; vs && vs->type == J_ARR && i < vs->len; i++)
    ok |= vs->items[i].type == J_NUM && vs->items[i].is_int && vs->items[i].i64 == PROTOCOL_VERSION;
  if (!ok) {
    reply_error(c, 0, "ERR_VERSION", "no common protocol version (agent speaks %d)", PROTOCOL_VERSION);
    c->closing = 1;
    conn_flush(c);
    return;
  }
  const char *kind = get_s(m, "kind");
  if (kind && strcmp(kind, "control") == 0) {
    c->kind = C_CONTROL;
  } else if (kind && strcmp(kind, "stream") == 0) {
    const char *stream = get_s(m, "stream");
    proc *p = find_proc(get_s(m, "exec"));
    int sn = !stream ? -1 : !strcmp(stream, "stdin") ? 0 : !strcmp(stream, "stdout") ? 1 : !strcmp(stream, "stderr") ? 2 : -1;
    if (sn < 0 || !p) {
      reply_error(c, 0, sn < 0 ? "ERR_PROTOCOL" : "ERR_NOT_FOUND", sn < 0 ? "stream must be stdin, stdout or stderr" : "no such process");
      c->closing = 1;
      conn_flush(c);
      return;
    }
    if (sn == 0 && !p->ps->stdin_open) {
      reply_error(c, 0, "ERR_STATE", "the process's stdin is not open");
      c->closing = 1;
      conn_flush(c);
      return;
    }
    c->p = p;
    c->stream = sn;
    c->kind = sn == 0 ? C_IN : C_OUT;
  } else if (kind && strcmp(kind, "extract") == 0) {
    on_extract_hello(c, m);
    return;
  } else {
    reply_error(c, 0, "ERR_PROTOCOL", "hello: kind must be control, stream or extract");
    c->closing = 1;
    conn_flush(c);
    return;
  }
  jwriter w;
  begin_reply(&w, "hello", 0);
  jw_kint(&w, "version", PROTOCOL_VERSION);
  jw_kstr(&w, "agent", AGENT_NAME);
  jw_kint(&w, "pid", getpid());
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
  if (c->kind == C_OUT) {
    /* already ended (or stderr with a tty): nothing will come */
    int ended = c->p->ended[c->stream - 1] || (c->p->state == P_CREATED && c->stream == 2 && c->p->ps->tty);
    if (ended) { c->closing = 1; conn_flush(c); }
  }
  if (c->kind == C_CONTROL) g.idle_since = 0;
}

static void on_request(conn *c, const jval *m) {
  const char *type;
  if (check_envelope(c, m, &type) < 0) { c->closing = 1; conn_flush(c); return; }
  const jval *idv = json_get(m, "id");
  if (!idv || idv->type != J_NUM || !idv->is_int || idv->i64 < 1 || idv->i64 > 0xffffffffLL) {
    reply_error(c, 0, "ERR_PROTOCOL", "request \"%s\" needs an id 1..2^32-1", type);
    c->closing = 1;
    conn_flush(c);
    return;
  }
  uint32_t id = (uint32_t)idv->i64;
  if (!strcmp(type, "create")) op_create(c, id, m);
  else if (!strcmp(type, "start")) op_start(c, id);
  else if (!strcmp(type, "wait")) op_wait(c, id, m);
  else if (!strcmp(type, "signal")) op_signal(c, id, m);
  else if (!strcmp(type, "resize")) op_resize(c, id, m);
  else if (!strcmp(type, "exec")) op_exec(c, id, m);
  else if (!strcmp(type, "start-exec")) op_start_exec(c, id, m);
  else if (!strcmp(type, "pause")) op_freeze(c, id, 1);
  else if (!strcmp(type, "resume")) op_freeze(c, id, 0);
  else if (!strcmp(type, "stats")) op_stats(c, id);
  else if (!strcmp(type, "ps")) op_ps(c, id);
  else if (!strcmp(type, "state")) op_state(c, id);
  else if (!strcmp(type, "shutdown")) op_shutdown(c, id);
  else if (!strcmp(type, "update")) op_update(c, id, m);
  else if (!strcmp(type, "freeze-fs")) op_freeze_fs(c, id, 1);
  else if (!strcmp(type, "thaw-fs")) op_freeze_fs(c, id, 0);
  else {
    reply_error(c, id, "ERR_PROTOCOL", "unknown request type \"%s\"", type);
    c->closing = 1;
    conn_flush(c);
  }
}

static void on_conn_readable(conn *c) {
  char buf[IO_CHUNK];
  for (;;) {
    if (c->dead || c->paused) return;
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      conn_close(c);
      return;
    }
    if (n == 0) {
      if (c->kind == C_IN) {
        proc *p = c->p;
        p->in_eof = 1;
        conn_close(c);
        flush_stdin(p);
        return;
      }
      /* a control client going away half-closed still gets its pending answers */
      if (c->kind == C_CONTROL && c->wlen) { c->closing = 1; return; }
      conn_close(c);
      return;
    }
    if (c->kind == C_OUT) continue; /* readers do not talk; ignore */
    if (c->kind == C_IN) {
      proc *p = c->p;
      if (p->state == P_EXITED) continue;
      char *nb = realloc(p->in_buf, p->in_len + (size_t)n);
      if (!nb) { conn_close(c); return; }
      p->in_buf = nb;
      memcpy(p->in_buf + p->in_len, buf, (size_t)n);
      p->in_len += (size_t)n;
      if (p->state == P_RUNNING) flush_stdin(p);
      if (p->in_len >= STDIN_MAX_PENDING) { c->paused = 1; conn_update_events(c); }
      continue;
    }
    if (frame_reader_feed(&c->rd, buf, (size_t)n) < 0) { conn_close(c); return; }
    for (;;) {
      char *payload, err[256];
      size_t len;
      int r = frame_reader_next(&c->rd, &payload, &len, err, sizeof err);
      if (r == 0) break;
      if (r < 0) {
        reply_error(c, 0, "ERR_PROTOCOL", "%s", err);
        c->closing = 1;
        conn_flush(c);
        return;
      }
      jval *m = json_parse(payload, len, err, sizeof err);
      free(payload);
      if (!m) {
        reply_error(c, 0, "ERR_PROTOCOL", "malformed JSON: %s", err);
        c->closing = 1;
        conn_flush(c);
        return;
      }
      ckind before = c->kind;
      if (c->kind == C_HELLO) on_hello(c, m);
      else on_request(c, m);
      json_free(m);
      if (c->dead || c->closing || g.quit) return;
      /* after a stream hello the rest is raw bytes */
      if (before == C_HELLO && c->kind != C_CONTROL) {
        if (c->rd.len && c->kind == C_IN) {
          size_t rest = c->rd.len;
          char *tmp = malloc(rest);
          memcpy(tmp, c->rd.buf, rest);
          c->rd.len = 0;
          proc *p = c->p;
          char *nb = realloc(p->in_buf, p->in_len + rest);
          if (nb) {
            p->in_buf = nb;
            memcpy(p->in_buf + p->in_len, tmp, rest);
            p->in_len += rest;
            if (p->state == P_RUNNING) flush_stdin(p);
          }
          free(tmp);
        }
        break;
      }
    }
  }
}

static void on_accept(void) {
  for (;;) {
    int fd = accept4(g.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->kind = C_HELLO;
    c->src = (ev_src){SRC_CONN, c, 0};
    frame_reader_init(&c->rd);
    c->next = g.conns;
    g.conns = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->src};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

static void reap(void) {
  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (proc *p = g.procs; p; p = p->next)
      if (p->pid == pid && p->state == P_RUNNING) {
        proc_exited(p, status);
        break;
      }
  }
}

static void free_dead_conns(void) {
  for (conn **cp = &g.conns; *cp;) {
    conn *c = *cp;
    if (c->dead) {
      *cp = c->next;
      frame_reader_free(&c->rd);
      free(c->wbuf);
      free(c);
    } else {
      cp = &c->next;
    }
  }
}

int supervisor_run(const supervisor_opts *o) {
  memset(&g, 0, sizeof g);
  g.dir = o->state_dir;
  g.lfd = o->listen_fd;
  g.linger = o->linger_seconds;
  g.freezable_fs = o->freezable_fs;
  g.log.fd = -1;
  g.idle_since = time(NULL);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  g.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  g.ep = epoll_create1(EPOLL_CLOEXEC);
  if (g.sfd < 0 || g.ep < 0) {
    diag("signalfd/epoll: %s", strerror(errno));
    return 1;
  }
  set_nonblock(g.lfd);
  g.lsrc = (ev_src){SRC_LISTEN, NULL, 0};
  g.ssrc = (ev_src){SRC_SIGNAL, NULL, 0};
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g.lsrc};
  epoll_ctl(g.ep, EPOLL_CTL_ADD, g.lfd, &ev);
  ev.data.ptr = &g.ssrc;
  epoll_ctl(g.ep, EPOLL_CTL_ADD, g.sfd, &ev);

  while (!g.quit) {
    struct epoll_event evs[32];
    int n = epoll_wait(g.ep, evs, 32, 1000);
    if (n < 0 && errno != EINTR) {
      diag("epoll_wait: %s", strerror(errno));
      return 1;
    }
    for (int i = 0; i < n && !g.quit; i++) {
      ev_src *s = evs[i].data.ptr;
      uint32_t e = evs[i].events;
      switch (s->type) {
        case SRC_LISTEN: on_accept(); break;
        case SRC_SIGNAL: {
          struct signalfd_siginfo si;
          while (read(g.sfd, &si, sizeof si) == sizeof si) {}
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
          if (e & EPOLLERR) { p->in_len = 0; p->in_eof = 1; }
          flush_stdin(p);
          break;
        }
      }
    }
    free_dead_conns();
    proc *m = main_proc();
    int done = !g.have_spec || (m && m->finalized);
    if (!g.quit && done && g.idle_since && g.linger > 0 && time(NULL) - g.idle_since > g.linger) {
      int controls = 0;
      for (conn *c = g.conns; c; c = c->next) controls += c->kind == C_CONTROL;
      if (!controls) {
        diag("no control connection for %d s after the container finished: exiting", g.linger);
        if (g.have_spec) cgroup_destroy(&g.spec);
        break;
      }
    }
  }
  /* whatever was produced is delivered before we go: blocking, bounded by a send timeout */
  for (conn *c = g.conns; c; c = c->next) {
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
