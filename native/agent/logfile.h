/* Docker's json-file log: one JSON object per line,
 * {"log":"<line incl. \n>","stream":"stdout","time":"<RFC3339Nano>"}.
 * Output is split at newlines; a partial line is flushed at LOG_MAX_LINE bytes or at EOF. */
#ifndef TVM_LOGFILE_H
#define TVM_LOGFILE_H
#include <stddef.h>

#define LOG_MAX_LINE (16 * 1024)

typedef struct {
  const char *stream; /* "stdout" | "stderr" */
  char buf[LOG_MAX_LINE];
  size_t len;
} log_line;

/* Appends complete lines from data to fd (partial lines stay in l); 0 or -1. */
int log_write(int fd, log_line *l, const char *data, size_t n);
/* Writes what is left of a partial line. */
int log_flush(int fd, log_line *l);
/* One record into out (for tests); returns length. */
size_t log_record(char *out, size_t outlen, const char *stream, const char *data, size_t n, const char *time);
#endif
