#define _GNU_SOURCE
#include "logfile.h"
#include "json.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

size_t log_record(char *out, size_t outlen, const char *stream, const char *data, size_t n, const char *time) {
  jwriter w;
  jw_init(&w);
  jw_obj_begin(&w);
  jw_key(&w, "log");
  jw_strn(&w, data, n);
  jw_kstr(&w, "stream", stream);
  jw_kstr(&w, "time", time);
  jw_obj_end(&w);
  size_t len = 0;
  if (!w.oom && w.len + 1 < outlen) {
    memcpy(out, w.buf, w.len);
    out[w.len] = '\n';
    len = w.len + 1;
  }
  jw_free(&w);
  return len;
}

int log_open(log_file *lf, const char *path, int64_t max_size, int max_files) {
  memset(lf, 0, sizeof *lf);
  lf->fd = -1;
  if (max_size < 0 || max_files < 1 || max_files > LOG_MAX_FILES) return -EINVAL;
  lf->path = strdup(path);
  if (!lf->path) return -ENOMEM;
  lf->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (lf->fd < 0) {
    int e = errno;
    free(lf->path);
    lf->path = NULL;
    return -e;
  }
  struct stat st;
  lf->size = fstat(lf->fd, &st) == 0 ? st.st_size : 0;
  lf->max_size = max_size;
  lf->max_files = max_files;
  return 0;
}

void log_close(log_file *lf) {
  if (lf->fd >= 0) close(lf->fd);
  free(lf->path);
  memset(lf, 0, sizeof *lf);
  lf->fd = -1;
}

static void numbered(char *out, size_t n, const char *path, int k) { snprintf(out, n, "%s.%d", path, k); }

int log_rotate(log_file *lf) {
  char from[4200], to[4200], tmp[4200];
  int linked = 0;
  /* the new current file first: nothing is moved if it cannot be made */
  snprintf(tmp, sizeof tmp, "%s.rotating", lf->path);
  int nfd = open(tmp, O_WRONLY | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (nfd < 0) return -1;
  if (lf->max_files > 1) {
    for (int k = lf->max_files - 1; k >= 2; k--) {
      numbered(from, sizeof from, lf->path, k - 1);
      numbered(to, sizeof to, lf->path, k);
      if (rename(from, to) < 0 && errno != ENOENT) goto fail;
    }
    numbered(to, sizeof to, lf->path, 1);
    /* with max_files 2 the old .1 is the one dropped */
    if (unlink(to) < 0 && errno != ENOENT) goto fail;
    if (link(lf->path, to) < 0) goto fail;
    linked = 1;
  }
  if (rename(tmp, lf->path) < 0) goto fail;
  close(lf->fd);
  lf->fd = nfd;
  lf->size = 0;
  return 0;
fail : {
  int e = errno;
  close(nfd);
  unlink(tmp);
  /* the current file stays current: a second name for it as .1 would repeat its lines */
  if (linked) unlink(to);
  errno = e;
  return -1;
}
}

int log_append(log_file *lf, const char *rec, size_t len) {
  if (!lf || lf->fd < 0) return 0;
  /* Docker rotates once the file has reached max-size; we rotate before a record would cross
   * it, so no file ends up larger than max-size unless a single record is */
  if (lf->max_size > 0 && lf->size > 0 && lf->size + (int64_t)len > lf->max_size && log_rotate(lf) < 0) {
    /* keep logging into the current file rather than lose output */
    diag("rotating %s: %s", lf->path, strerror(errno));
  }
  if (write_all(lf->fd, rec, len) < 0) return -1;
  lf->size += (int64_t)len;
  return 0;
}

static int emit(log_file *lf, const char *stream, const char *data, size_t n) {
  char ts[40];
  format_time_rfc3339nano(ts);
  /* worst case every byte becomes \u00XX */
  static char rec[LOG_MAX_LINE * 6 + 256];
  size_t len = log_record(rec, sizeof rec, stream, data, n, ts);
  if (len == 0) return -1;
  return log_append(lf, rec, len);
}

int log_write(log_file *lf, log_line *l, const char *data, size_t n) {
  int rc = 0;
  while (n > 0) {
    const char *nl = memchr(data, '\n', n);
    size_t take = nl ? (size_t)(nl - data) + 1 : n;
    size_t room = LOG_MAX_LINE - l->len;
    if (take > room) take = room;
    memcpy(l->buf + l->len, data, take);
    l->len += take;
    data += take;
    n -= take;
    if (l->buf[l->len - 1] == '\n' || l->len == LOG_MAX_LINE) {
      if (lf && emit(lf, l->stream, l->buf, l->len) < 0) rc = -1;
      l->len = 0;
    }
  }
  return rc;
}

int log_flush(log_file *lf, log_line *l) {
  if (l->len == 0) return 0;
  int rc = lf ? emit(lf, l->stream, l->buf, l->len) : 0;
  l->len = 0;
  return rc;
}
