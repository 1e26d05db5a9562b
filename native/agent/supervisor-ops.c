#define _GNU_SOURCE
/* The supervisor's operations (docs/agent-protocol.md), one function each: create, start, exec,
 * wait, signal, resize, freeze, update, stats, ps, state, freeze-fs, shutdown. */
#include "supervisor-internal.h"
#include "cgroup.h"
#include "guest-net.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <sys/ioctl.h>

/* ---------- ops ---------- */

const char *get_s(const jval *req, const char *k) {
  const jval *v = json_get(req, k);
  return v && v->type == J_STR ? v->str : NULL;
}

void op_create(conn *c, uint32_t id, const jval *req) {
  if (sup.have_spec) {
    reply_error(c, id, "ERR_STATE", "container already created");
    return;
  }
  char err[1024];
  const jval *sv = json_get(req, "spec");
  if (!sv) {
    reply_error(c, id, "ERR_BAD_SPEC", "create: spec is required");
    return;
  }
  if (spec_parse(sv, &sup.spec, err, sizeof err) < 0) {
    spec_free(&sup.spec);
    reply_error(c, id, "ERR_BAD_SPEC", "%s", err);
    return;
  }
  if (cgroup_create(&sup.spec, err, sizeof err) < 0) {
    spec_free(&sup.spec);
    reply_error(c, id, "ERR_SYSTEM", "%s", err);
    return;
  }
  int lrc = log_open(&sup.log, sup.spec.log_path, sup.spec.log_max_size, sup.spec.log_max_files);
  if (lrc < 0) {
    cgroup_destroy(&sup.spec);
    reply_error(c, id, "ERR_SYSTEM", "open log %s: %s", sup.spec.log_path, strerror(-lrc));
    spec_free(&sup.spec);
    return;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/exit.json", sup.dir);
  unlink(path);
  sup.have_spec = 1;
  proc *p = proc_new("");
  p->ps = &sup.spec.process;
  diag("created container %s", sup.spec.id);
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
  if (p->state != P_CREATED) {
    reply_error(c, id, "ERR_STATE", "process already started");
    return;
  }
  char err[1200];
  int code;
  int rc = p->is_main ? container_start(&sup.spec, &p->io, &code, err, sizeof err)
                      : container_exec(&sup.spec, main_proc()->pid, p->ps, p->privileged, &p->io, &code, err, sizeof err);
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

void op_start(conn *c, uint32_t id) {
  if (!sup.have_spec) {
    reply_error(c, id, "ERR_STATE", "start: no container created");
    return;
  }
  start_proc(c, id, main_proc());
}

void op_exec(conn *c, uint32_t id, const jval *req) {
  proc *m = main_proc();
  const char *eid = get_s(req, "exec");
  if (!m || m->state != P_RUNNING) {
    reply_error(c, id, "ERR_STATE", "exec: container is not running");
    return;
  }
  if (sup.paused) {
    reply_error(c, id, "ERR_STATE", "exec: container is paused");
    return;
  }
  if (!eid || !spec_valid_id(eid)) {
    reply_error(c, id, "ERR_PROTOCOL", "exec: a valid exec id is required");
    return;
  }
  if (find_proc(eid)) {
    reply_error(c, id, "ERR_STATE", "exec %s already exists", eid);
    return;
  }
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

void op_start_exec(conn *c, uint32_t id, const jval *req) {
  const char *eid = get_s(req, "exec");
  proc *p = eid && *eid ? find_proc(eid) : NULL;
  if (!p) {
    reply_error(c, id, "ERR_NOT_FOUND", "no such exec: %s", eid ? eid : "");
    return;
  }
  proc *m = main_proc();
  if (!m || m->state != P_RUNNING) {
    reply_error(c, id, "ERR_STATE", "container is not running");
    return;
  }
  start_proc(c, id, p);
}

static proc *target(conn *c, uint32_t id, const jval *req) {
  const char *eid = get_s(req, "exec");
  proc *p = find_proc(eid);
  if (!p) reply_error(c, id, "ERR_NOT_FOUND", eid ? "no such exec: %s" : "no container created%s", eid ? eid : "");
  return p;
}

void op_wait(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  waiter *w = calloc(1, sizeof *w);
  w->c = c;
  w->req = id;
  w->next = p->waiters;
  p->waiters = w;
  if (p->finalized) answer_waiters(p);
}

void op_signal(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  const jval *s = json_get(req, "signal");
  if (!s || s->type != J_NUM || !s->is_int || s->i64 < 1 || s->i64 > 64) {
    reply_error(c, id, "ERR_PROTOCOL", "signal: a signal number 1..64 is required");
    return;
  }
  if (p->state != P_RUNNING) {
    reply_error(c, id, "ERR_STATE", "process is not running");
    return;
  }
  if (kill(p->pid, (int)s->i64) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "kill: %s", strerror(errno));
    return;
  }
  reply_ok(c, id);
}

void op_resize(conn *c, uint32_t id, const jval *req) {
  proc *p = target(c, id, req);
  if (!p) return;
  const jval *r = json_get(req, "rows"), *co = json_get(req, "cols");
  if (!r || !co || r->type != J_NUM || co->type != J_NUM || !r->is_int || !co->is_int || r->i64 < 0 || r->i64 > 65535 || co->i64 < 0 ||
      co->i64 > 65535) {
    reply_error(c, id, "ERR_PROTOCOL", "resize: rows and cols 0..65535 are required");
    return;
  }
  if (p->io.pty < 0) {
    reply_error(c, id, "ERR_STATE", "resize: the process has no tty");
    return;
  }
  struct winsize ws = {.ws_row = (unsigned short)r->i64, .ws_col = (unsigned short)co->i64};
  if (ioctl(p->io.pty, TIOCSWINSZ, &ws) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "TIOCSWINSZ: %s", strerror(errno));
    return;
  }
  reply_ok(c, id);
}

void op_freeze(conn *c, uint32_t id, int frozen) {
  proc *m = main_proc();
  if (!m || m->state != P_RUNNING) {
    reply_error(c, id, "ERR_STATE", "container is not running");
    return;
  }
  if (sup.paused == frozen) {
    reply_error(c, id, "ERR_STATE", frozen ? "container is already paused" : "container is not paused");
    return;
  }
  char err[1024];
  if (cgroup_freeze(&sup.spec, frozen, err, sizeof err) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "%s", err);
    return;
  }
  sup.paused = frozen;
  reply_ok(c, id);
}

/* docker update: new cgroup limits for a created, running or paused container. */
void op_update(conn *c, uint32_t id, const jval *req) {
  if (!sup.have_spec) {
    reply_error(c, id, "ERR_STATE", "update: no container created");
    return;
  }
  const jval *rv = json_get(req, "resources");
  resources_update u;
  char err[1200];
  if (!rv) {
    reply_error(c, id, "ERR_BAD_SPEC", "update: resources is required");
    return;
  }
  if (resources_update_parse(rv, &u, err, sizeof err) < 0) {
    resources_update_free(&u);
    reply_error(c, id, "ERR_BAD_SPEC", "%s", err);
    return;
  }
  int rc = cgroup_update(&sup.spec, &u, err, sizeof err);
  resources_update_free(&u);
  if (rc < 0) {
    reply_error(c, id, "ERR_SYSTEM", "%s", err);
    return;
  }
  diag("updated the resources of %s", sup.spec.id);
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

void op_stats(conn *c, uint32_t id) {
  if (!sup.have_spec) {
    reply_error(c, id, "ERR_STATE", "no container created");
    return;
  }
  cgroup_stats st;
  cgroup_stats_read(&sup.spec, &st);
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

void op_ps(conn *c, uint32_t id) {
  if (!sup.have_spec) {
    reply_error(c, id, "ERR_STATE", "no container created");
    return;
  }
  pid_t pids[4096];
  int n = cgroup_pids(&sup.spec, pids, 4096);
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

void op_state(conn *c, uint32_t id) {
  proc *m = main_proc();
  jwriter w;
  begin_reply(&w, "ok", id);
  const char *st = !m ? "empty" : m->state == P_CREATED ? "created" : m->state == P_EXITED ? "exited" : sup.paused ? "paused" : "running";
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

/* FIFREEZE flushes the disk's dirty data and checkpoints its journal: the block device then
 * holds a consistent filesystem until FITHAW, and writers in the guest wait meanwhile. */
int fs_freeze(int freeze) {
  int fd = open(sup.freezable_fs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -1;
  int rc = ioctl(fd, freeze ? FIFREEZE : FITHAW, 0);
  int e = errno;
  close(fd);
  errno = e;
  if (rc == 0) sup.fs_frozen = freeze;
  return rc;
}

void op_freeze_fs(conn *c, uint32_t id, int freeze) {
  if (!sup.freezable_fs) {
    reply_error(c, id, "ERR_STATE", "%s: only the guest agent has a disk to freeze", freeze ? "freeze-fs" : "thaw-fs");
    return;
  }
  if (freeze == sup.fs_frozen) {
    reply_error(c, id, "ERR_STATE", "the container's disk is %s", freeze ? "already frozen" : "not frozen");
    return;
  }
  if (fs_freeze(freeze) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "%s %s: %s", freeze ? "freeze" : "thaw", sup.freezable_fs, strerror(errno));
    return;
  }
  for (conn *o = sup.conns; o; o = o->next) o->froze_fs = 0;
  c->froze_fs = freeze;
  reply_ok(c, id);
}

void op_shutdown(conn *c, uint32_t id) {
  if (sup.fs_frozen && fs_freeze(0) < 0) diag("thaw %s: %s", sup.freezable_fs, strerror(errno));
  proc *m = main_proc();
  if (sup.have_spec && sup.paused) {
    char err[256];
    cgroup_freeze(&sup.spec, 0, err, sizeof err);
    sup.paused = 0;
  }
  for (proc *p = sup.procs; p; p = p->next)
    if (p->state == P_RUNNING) kill(p->pid, SIGKILL);
  /* wait for every process we started; their status is recorded as they go */
  for (int i = 0; i < 500; i++) {
    int running = 0;
    for (proc *p = sup.procs; p; p = p->next) running |= p->state == P_RUNNING;
    if (!running) break;
    usleep(10000);
    reap();
  }
  /* every exited process answers its waiters now, output drained or not */
  for (proc *p = sup.procs; p; p = p->next)
    if (p->state == P_EXITED && !p->finalized) {
      for (int i = 0; i < 2; i++)
        if (!p->ended[i] && p->out_fd[i] >= 0) on_output(p, i);
      end_output(p, 0);
      end_output(p, 1);
    }
  (void)m;
  if (sup.have_spec) {
    int rc = cgroup_destroy(&sup.spec);
    if (rc < 0) diag("removing cgroup: %s", strerror(-rc));
  }
  reply_ok(c, id);
  /* deliver the answer before going away */
  int fl = fcntl(c->fd, F_GETFL);
  fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
  if (c->wlen) write_all(c->fd, c->wbuf, c->wlen);
  c->wlen = 0;
  sup.quit = 1;
}

/* net-up {ifname, nic: "ADDR/PREFIX,GATEWAY,MAC"} and net-down {ifname}: the guest's side of
 * `docker network connect`/`disconnect` (guest-net.c). */
void op_net(conn *c, uint32_t id, const jval *req, int up) {
  const char *what = up ? "net-up" : "net-down";
  if (!sup.owns_network) {
    reply_error(c, id, "ERR_STATE", "%s: only the guest agent has a network of its own to change", what);
    return;
  }
  const jval *ifv = json_get(req, "ifname");
  if (!ifv || ifv->type != J_STR || !guest_valid_ifname(ifv->str)) {
    reply_error(c, id, "ERR_BAD_SPEC", "%s: ifname must be eth0..eth999", what);
    return;
  }
  char err[512];
  int rc;
  if (up) {
    const jval *nv = json_get(req, "nic");
    guest_net n;
    if (!nv || nv->type != J_STR || guest_parse_net(nv->str, nv->len, &n) < 0) {
      reply_error(c, id, "ERR_BAD_SPEC", "net-up: nic must be \"ADDR/PREFIX,GATEWAY,MAC\"");
      return;
    }
    rc = guest_nic_up(ifv->str, &n, err, sizeof err);
  } else {
    rc = guest_nic_down(ifv->str, err, sizeof err);
  }
  if (rc < 0) {
    reply_error(c, id, errno == EEXIST ? "ERR_STATE" : "ERR_SYSTEM", "%s: %s", what, err);
    return;
  }
  diag("%s %s", what, ifv->str);
  reply_ok(c, id);
}

/* resolv-conf {content}: the container joined its first user-defined network while it runs, and
 * its resolv.conf now names that network's DNS server (as Docker rebuilds it). */
void op_resolv_conf(conn *c, uint32_t id, const jval *req) {
  if (!sup.owns_network) {
    reply_error(c, id, "ERR_STATE", "resolv-conf: only the guest agent has a resolv.conf of its own to change");
    return;
  }
  const jval *cv = json_get(req, "content");
  if (!cv || cv->type != J_STR || cv->len > 65536) {
    reply_error(c, id, "ERR_BAD_SPEC", "resolv-conf: content must be a string of at most 64 KiB");
    return;
  }
  char err[512];
  if (guest_set_resolv_conf(cv->str, cv->len, err, sizeof err) < 0) {
    reply_error(c, id, "ERR_SYSTEM", "resolv-conf: %s", err);
    return;
  }
  reply_ok(c, id);
}
