/* The supervisor's insides, shared by its three parts: supervisor.c (the event loop and the
 * container's processes: their stdio, log, exit status), supervisor-conn.c (connections and
 * the protocol: framing, hello, dispatch) and supervisor-ops.c (one function per operation).
 * Not for the rest of the agent: supervisor.h is its interface. */
#ifndef TVM_SUPERVISOR_INTERNAL_H
#define TVM_SUPERVISOR_INTERNAL_H
#include "container.h"
#include "frame.h"
#include "json.h"
#include "logfile.h"
#include "spec.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define PROTOCOL_VERSION 1
#define AGENT_NAME "tvm-agent/0.1"
#define READER_MAX_BEHIND (4u << 20)
#define STDIN_MAX_PENDING (1u << 20)
#define IO_CHUNK 65536

enum src_type { SRC_LISTEN, SRC_SIGNAL, SRC_CONN, SRC_OUT, SRC_STDIN };
typedef struct {
  enum src_type type;
  void *obj;
  int which;
} ev_src;

typedef struct waiter {
  struct conn *c;
  uint32_t req;
  struct waiter *next;
} waiter;

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
  int out_fd[2]; /* stdout (or pty master), stderr; -1 once ended */
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

struct sup_globals {
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
  int owns_network;
};

/* the one supervisor of this process (supervisor.c) */
extern struct sup_globals sup;

/* supervisor-conn.c: connections and the protocol */
void begin_reply(jwriter *w, const char *type, uint32_t id);
void conn_close(conn *c);
void conn_flush(conn *c);
int conn_queue(conn *c, const void *data, size_t n);
void conn_update_events(conn *c);
void free_dead_conns(void);
void on_accept(void);
void on_conn_readable(conn *c);
void reply_error(conn *c, uint32_t id, const char *code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void reply_ok(conn *c, uint32_t id);
void send_json(conn *c, jwriter *w);

/* supervisor-ops.c: the operations */
int fs_freeze(int freeze);
const char *get_s(const jval *req, const char *k);
void op_create(conn *c, uint32_t id, const jval *req);
void op_exec(conn *c, uint32_t id, const jval *req);
void op_freeze(conn *c, uint32_t id, int frozen);
void op_freeze_fs(conn *c, uint32_t id, int freeze);
void op_net(conn *c, uint32_t id, const jval *req, int up);
void op_resolv_conf(conn *c, uint32_t id, const jval *req);
void op_ps(conn *c, uint32_t id);
void op_resize(conn *c, uint32_t id, const jval *req);
void op_shutdown(conn *c, uint32_t id);
void op_signal(conn *c, uint32_t id, const jval *req);
void op_start(conn *c, uint32_t id);
void op_start_exec(conn *c, uint32_t id, const jval *req);
void op_state(conn *c, uint32_t id);
void op_stats(conn *c, uint32_t id);
void op_update(conn *c, uint32_t id, const jval *req);
void op_wait(conn *c, uint32_t id, const jval *req);

/* supervisor.c: the container's processes and the event loop */
void answer_waiters(proc *p);
void end_output(proc *p, int i);
proc *find_proc(const char *id);
void flush_stdin(proc *p);
proc *main_proc(void);
void on_output(proc *p, int i);
void proc_failed(proc *p, int code, const char *msg);
proc *proc_new(const char *id);
void proc_register_io(proc *p);
void reap(void);
void write_status(jwriter *w, const proc *p);
#endif
