#define _GNU_SOURCE
/* The supervisor's connections: buffered non-blocking writes, replies, and the protocol (the
 * hello that decides what a connection is, then framed requests dispatched to the operations). */
#include "supervisor-internal.h"
#include "extract.h"
#include "util.h"
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* ---------- connections ---------- */

void conn_update_events(conn *c) {
  if (c->dead) return;
  struct epoll_event ev = {0};
  ev.events = (c->paused || c->kind == C_OUT ? 0 : EPOLLIN) | (c->wlen ? EPOLLOUT : 0) | EPOLLRDHUP;
  if (c->kind == C_OUT) ev.events |= EPOLLIN; /* to notice the reader going away */
  ev.data.ptr = &c->src;
  epoll_ctl(sup.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

void conn_close(conn *c) {
  if (c->dead) return;
  c->dead = 1;
  epoll_ctl(sup.ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  /* a closed control connection can no longer receive wait answers */
  for (proc *p = sup.procs; p; p = p->next)
    for (waiter **w = &p->waiters; *w;) {
      if ((*w)->c == c) {
        waiter *d = *w;
        *w = d->next;
        free(d);
      } else w = &(*w)->next;
    }
  if (c->kind == C_CONTROL) sup.idle_since = time(NULL);
  /* a reader that went away must not leave the guest's disk frozen for ever */
  if (c->froze_fs && sup.fs_frozen && fs_freeze(0) < 0) diag("thaw %s: %s", sup.freezable_fs, strerror(errno));
}

void conn_flush(conn *c) {
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
    if (c->kind != C_CONTROL) {
      conn_close(c);
      return;
    }
  }
  conn_update_events(c);
}

int conn_queue(conn *c, const void *data, size_t n) {
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
    if (!nb) {
      conn_close(c);
      return -1;
    }
    c->wbuf = nb;
    c->wcap = nc;
  }
  memcpy(c->wbuf + c->wlen, data, n);
  c->wlen += n;
  conn_flush(c);
  return 0;
}

void send_json(conn *c, jwriter *w) {
  if (w->oom) {
    diag("out of memory composing a reply");
    conn_close(c);
    return;
  }
  size_t n;
  uint8_t *f = frame_encode(w->buf, w->len, &n);
  if (!f) {
    diag("reply too large");
    conn_close(c);
    return;
  }
  conn_queue(c, f, n);
  free(f);
}

void begin_reply(jwriter *w, const char *type, uint32_t id) {
  jw_init(w);
  jw_obj_begin(w);
  jw_kint(w, "v", PROTOCOL_VERSION);
  jw_kstr(w, "type", type);
  if (id) jw_kint(w, "id", id);
}

void reply_error(conn *c, uint32_t id, const char *code, const char *fmt, ...) {
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

void reply_ok(conn *c, uint32_t id) {
  jwriter w;
  begin_reply(&w, "ok", id);
  jw_obj_end(&w);
  send_json(c, &w);
  jw_free(&w);
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
  if (check_envelope(c, m, &type) < 0) {
    c->closing = 1;
    conn_flush(c);
    return;
  }
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
    if (ended) {
      c->closing = 1;
      conn_flush(c);
    }
  }
  if (c->kind == C_CONTROL) sup.idle_since = 0;
}

static void on_request(conn *c, const jval *m) {
  const char *type;
  if (check_envelope(c, m, &type) < 0) {
    c->closing = 1;
    conn_flush(c);
    return;
  }
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
  else if (!strcmp(type, "net-up")) op_net(c, id, m, 1);
  else if (!strcmp(type, "net-down")) op_net(c, id, m, 0);
  else if (!strcmp(type, "resolv-conf")) op_resolv_conf(c, id, m);
  else {
    reply_error(c, id, "ERR_PROTOCOL", "unknown request type \"%s\"", type);
    c->closing = 1;
    conn_flush(c);
  }
}

void on_conn_readable(conn *c) {
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
      if (c->kind == C_CONTROL && c->wlen) {
        c->closing = 1;
        return;
      }
      conn_close(c);
      return;
    }
    if (c->kind == C_OUT) continue; /* readers do not talk; ignore */
    if (c->kind == C_IN) {
      proc *p = c->p;
      if (p->state == P_EXITED) continue;
      char *nb = realloc(p->in_buf, p->in_len + (size_t)n);
      if (!nb) {
        conn_close(c);
        return;
      }
      p->in_buf = nb;
      memcpy(p->in_buf + p->in_len, buf, (size_t)n);
      p->in_len += (size_t)n;
      if (p->state == P_RUNNING) flush_stdin(p);
      if (p->in_len >= STDIN_MAX_PENDING) {
        c->paused = 1;
        conn_update_events(c);
      }
      continue;
    }
    if (frame_reader_feed(&c->rd, buf, (size_t)n) < 0) {
      conn_close(c);
      return;
    }
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
      if (c->dead || c->closing || sup.quit) return;
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

void on_accept(void) {
  for (;;) {
    int fd = accept4(sup.lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->kind = C_HELLO;
    c->src = (ev_src){SRC_CONN, c, 0};
    frame_reader_init(&c->rd);
    c->next = sup.conns;
    sup.conns = c;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = &c->src};
    epoll_ctl(sup.ep, EPOLL_CTL_ADD, fd, &ev);
  }
}

void free_dead_conns(void) {
  for (conn **cp = &sup.conns; *cp;) {
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
