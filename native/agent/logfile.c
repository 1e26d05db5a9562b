#include "logfile.h"
#include "json.h"
#include "util.h"
#include <string.h>

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

static int emit(int fd, const char *stream, const char *data, size_t n) {
  char ts[40];
  format_time_rfc3339nano(ts);
  /* worst case every byte becomes \u00XX */
  static char rec[LOG_MAX_LINE * 6 + 256];
  size_t len = log_record(rec, sizeof rec, stream, data, n, ts);
  if (len == 0) return -1;
  return write_all(fd, rec, len);
}

int log_write(int fd, log_line *l, const char *data, size_t n) {
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
      if (fd >= 0 && emit(fd, l->stream, l->buf, l->len) < 0) rc = -1;
      l->len = 0;
    }
  }
  return rc;
}

int log_flush(int fd, log_line *l) {
  if (l->len == 0) return 0;
  int rc = fd >= 0 ? emit(fd, l->stream, l->buf, l->len) : 0;
  l->len = 0;
  return rc;
}
