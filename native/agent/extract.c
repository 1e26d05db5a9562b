/* `docker cp` into a running container whose filesystem only the agent can reach (a microVM's
 * disk is mounted inside the guest). The daemon parses the user's tar and sends its entries as
 * frames on a connection of its own (docs/agent-protocol.md, "extract"); a forked helper joins
 * the container's mount namespace, so every path, symlinks included, resolves inside the
 * container's root exactly as the host isolation's resolveIn does through /proc/<pid>/root. */
#define _GNU_SOURCE
#include "extract.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "json.h"
#include "util.h"

#define COPY_CHUNK 65536

typedef struct {
  int fd;
  const uint8_t *pre; /* bytes the agent had already read after the hello */
  size_t pre_len;
  char code[32];
  char msg[1200];
} xctx;

static int fail(xctx *x, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(xctx *x, const char *code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(x->msg, sizeof x->msg, fmt, ap);
  va_end(ap);
  snprintf(x->code, sizeof x->code, "%s", code);
  return -1;
}

static int read_exact(xctx *x, void *buf, size_t n) {
  size_t got = 0;
  if (x->pre_len) {
    got = n < x->pre_len ? n : x->pre_len;
    memcpy(buf, x->pre, got);
    x->pre += got;
    x->pre_len -= got;
  }
  while (got < n) {
    ssize_t r = read(x->fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static void send_frame(int fd, jwriter *w) {
  size_t n;
  uint8_t *f = w->oom ? NULL : frame_encode(w->buf, w->len, &n);
  if (f) write_all(fd, f, n);
  free(f);
}

static void send_reply(int fd, const char *type, const char *code, const char *msg) {
  jwriter w;
  jw_init(&w);
  jw_obj_begin(&w);
  jw_kint(&w, "v", 1);
  jw_kstr(&w, "type", type);
  if (!strcmp(type, "hello")) {
    jw_kint(&w, "version", 1);
    jw_kstr(&w, "agent", "tvm-agent/0.1");
    jw_kint(&w, "pid", getpid());
  } else {
    jw_kint(&w, "id", 1);
  }
  if (code) {
    jw_kstr(&w, "code", code);
    jw_kstr(&w, "message", msg);
  }
  jw_obj_end(&w);
  send_frame(fd, &w);
  jw_free(&w);
}

/* A relative, normalized path: no empty, "." or ".." component except a lone "." (the
 * destination itself); the daemon normalizes, this refuses anything else. */
static int safe_relative(const char *p) {
  if (!strcmp(p, ".")) return 1;
  if (!*p || *p == '/') return 0;
  for (const char *s = p; *s;) {
    const char *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    s += n + (e ? 1 : 0);
    if (e && !*s) return 0;
  }
  return 1;
}

static int64_t get_i(const jval *m, const char *k, int64_t dflt) {
  const jval *v = json_get(m, k);
  return v && v->type == J_NUM && v->is_int ? v->i64 : dflt;
}

static const char *get_str(const jval *m, const char *k) {
  const jval *v = json_get(m, k);
  return v && v->type == J_STR ? v->str : NULL;
}

/* The file's bytes follow its header; all of them are read even when writing fails, so the
 * stream stays in step and the error is the one reported. */
static int write_file(xctx *x, const char *target, mode_t mode, uint64_t size) {
  if (unlink(target) < 0 && errno != ENOENT) return fail(x, "ERR_SYSTEM", "unlink %s: %s", target, strerror(errno));
  int out = open(target, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
  int werr = out < 0 ? errno : 0;
  char buf[COPY_CHUNK];
  while (size) {
    size_t n = size > sizeof buf ? sizeof buf : (size_t)size;
    if (read_exact(x, buf, n) < 0) {
      if (out >= 0) close(out);
      return fail(x, "ERR_PROTOCOL", "connection ended inside %s", target);
    }
    if (!werr && write_all(out, buf, n) < 0) werr = errno;
    size -= n;
  }
  if (out >= 0 && close(out) < 0 && !werr) werr = errno;
  if (werr) return fail(x, "ERR_SYSTEM", "write %s: %s", target, strerror(werr));
  return 0;
}

static int apply_entry(xctx *x, const char *dest, const jval *m) {
  const char *rel = get_str(m, "path"), *kind = get_str(m, "kind");
  int64_t size = get_i(m, "size", 0), mode = get_i(m, "mode", 0644);
  if (!rel || !kind || !safe_relative(rel) || size < 0 || mode < 0) return fail(x, "ERR_PROTOCOL", "malformed extract entry");
  char target[PATH_MAX];
  if (snprintf(target, sizeof target, "%s/%s", dest, rel) >= (int)sizeof target) return fail(x, "ERR_SYSTEM", "path too long: %s", rel);
  if (strcmp(rel, ".")) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", target);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
      *slash = 0;
      if (mkdir_p(parent, 0755) < 0) return fail(x, "ERR_SYSTEM", "mkdir %s: %s", parent, strerror(errno));
    }
  }
  if (strcmp(kind, "file") && size) return fail(x, "ERR_PROTOCOL", "extract entry %s: only files carry data", rel);
  int is_link = 0;
  if (!strcmp(kind, "dir")) {
    if (mkdir(target, (mode_t)(mode & 07777)) < 0 && errno != EEXIST) return fail(x, "ERR_SYSTEM", "mkdir %s: %s", target, strerror(errno));
  } else if (!strcmp(kind, "file")) {
    if (write_file(x, target, (mode_t)mode, (uint64_t)size) < 0) return -1;
  } else if (!strcmp(kind, "symlink") || !strcmp(kind, "link")) {
    const char *linkname = get_str(m, "linkname");
    if (!linkname) return fail(x, "ERR_PROTOCOL", "extract entry %s: no linkname", rel);
    if (unlink(target) < 0 && errno != ENOENT) return fail(x, "ERR_SYSTEM", "unlink %s: %s", target, strerror(errno));
    if (!strcmp(kind, "symlink")) {
      if (symlink(linkname, target) < 0) return fail(x, "ERR_SYSTEM", "symlink %s: %s", target, strerror(errno));
      is_link = 1;
    } else {
      char src[PATH_MAX];
      if (!safe_relative(linkname) || snprintf(src, sizeof src, "%s/%s", dest, linkname) >= (int)sizeof src) {
        return fail(x, "ERR_PROTOCOL", "extract entry %s: bad hard link target", rel);
      }
      if (link(src, target) < 0) return fail(x, "ERR_SYSTEM", "link %s: %s", target, strerror(errno));
      return 0; /* a hard link shares its target's owner, mode and times */
    }
  } else {
    return fail(x, "ERR_PROTOCOL", "extract entry %s: unknown kind %s", rel, kind);
  }
  /* as tar without privileges elsewhere: owners and times are best effort, content is not;
   * the owner first, as chown clears the set-id bits the mode may carry */
  if (lchown(target, (uid_t)get_i(m, "uid", 0), (gid_t)get_i(m, "gid", 0)) < 0) diag("extract: chown %s: %s", target, strerror(errno));
  if (!is_link && chmod(target, (mode_t)(mode & 07777)) < 0) return fail(x, "ERR_SYSTEM", "chmod %s: %s", target, strerror(errno));
  int64_t mtime = get_i(m, "mtime", -1);
  if (mtime >= 0) {
    struct timespec ts[2] = {{mtime, 0}, {mtime, 0}};
    if (utimensat(AT_FDCWD, target, ts, AT_SYMLINK_NOFOLLOW) < 0) diag("extract: utimes %s: %s", target, strerror(errno));
  }
  return 0;
}

static int serve(xctx *x, pid_t init_pid, const char *dest) {
  char nspath[64];
  snprintf(nspath, sizeof nspath, "/proc/%d/ns/mnt", (int)init_pid);
  int ns = open(nspath, O_RDONLY | O_CLOEXEC);
  if (ns < 0) return fail(x, "ERR_STATE", "the container is not running (%s: %s)", nspath, strerror(errno));
  if (setns(ns, CLONE_NEWNS) < 0) {
    int e = errno;
    close(ns);
    return fail(x, "ERR_SYSTEM", "setns into the container's mounts: %s", strerror(e));
  }
  close(ns);
  if (chdir("/") < 0) return fail(x, "ERR_SYSTEM", "chdir /: %s", strerror(errno));
  struct stat st;
  if (stat(dest, &st) < 0) return fail(x, "ERR_NOT_FOUND", "Could not find the file %s in container", dest);
  if (!S_ISDIR(st.st_mode)) return fail(x, "ERR_NOT_DIR", "extraction point %s is not a directory", dest);
  send_reply(x->fd, "hello", NULL, NULL);
  umask(0);
  for (;;) {
    uint8_t hdr[FRAME_HEADER];
    if (read_exact(x, hdr, sizeof hdr) < 0) return fail(x, "ERR_PROTOCOL", "connection ended before the end of the archive");
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
    if (len == 0 || len > FRAME_MAX) return fail(x, "ERR_PROTOCOL", "frame length %u is outside 1..%u", len, FRAME_MAX);
    char *payload = malloc(len);
    if (!payload) return fail(x, "ERR_SYSTEM", "out of memory");
    if (read_exact(x, payload, len) < 0) {
      free(payload);
      return fail(x, "ERR_PROTOCOL", "connection ended inside a frame");
    }
    char err[256];
    jval *m = json_parse(payload, len, err, sizeof err);
    free(payload);
    if (!m) return fail(x, "ERR_PROTOCOL", "malformed JSON: %s", err);
    const char *type = get_str(m, "type");
    int r;
    if (type && !strcmp(type, "end")) {
      json_free(m);
      return 0;
    }
    r = type && !strcmp(type, "entry") ? apply_entry(x, dest, m) : fail(x, "ERR_PROTOCOL", "expected an entry or end frame");
    json_free(m);
    if (r < 0) return -1;
  }
}

int extract_child(int fd, pid_t init_pid, const char *dest, const void *pre, size_t pre_len) {
  xctx x = {.fd = fd, .pre = pre, .pre_len = pre_len};
  int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  if (serve(&x, init_pid, dest) == 0) {
    send_reply(fd, "ok", NULL, NULL);
    return 0;
  }
  /* the answer to the hello when nothing was accepted yet, else the stream's result */
  send_reply(fd, "error", x.code, x.msg);
  /* read what is still in flight until the daemon, having seen the error, closes its side:
   * closing first could reset the connection before the error is read */
  shutdown(fd, SHUT_WR);
  char buf[COPY_CHUNK];
  while (read(fd, buf, sizeof buf) > 0) {}
  return 1;
}
