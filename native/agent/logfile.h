/* Docker's json-file log: one JSON object per line,
 * {"log":"<line incl. \n>","stream":"stdout","time":"<RFC3339Nano>"}.
 * Output is split at newlines; a partial line is flushed at LOG_MAX_LINE bytes or at EOF.
 *
 * Rotation (json-file's max-size / max-file): before a record would take the current file past
 * max_size, the files shift by rename (path.N-2 -> path.N-1, ..., path.1 -> path.2, the oldest
 * replaced), the current file is hard-linked as path.1, and a new empty file is renamed over
 * path. A reader therefore always finds path, and a file keeps its inode while its number
 * grows: a follower holding the old descriptor drains it and goes on with the next file. With
 * max_files 1 the log starts over empty (Docker truncates). */
#ifndef TVM_LOGFILE_H
#define TVM_LOGFILE_H
#include <stddef.h>
#include <stdint.h>

#define LOG_MAX_LINE (16 * 1024)
/* Docker's json-file keeps at most this many files (its max-file has no documented bound; ours
 * keeps the names short) */
#define LOG_MAX_FILES 1000

typedef struct {
  const char *stream; /* "stdout" | "stderr" */
  char buf[LOG_MAX_LINE];
  size_t len;
} log_line;

typedef struct {
  char *path;
  int fd;
  int64_t size;     /* bytes in the current file */
  int64_t max_size; /* 0: never rotate */
  int max_files;    /* >= 1 */
} log_file;

/* Opens (appends to) path; max_size 0 = no rotation. 0 or -errno. */
int log_open(log_file *lf, const char *path, int64_t max_size, int max_files);
void log_close(log_file *lf);
/* Appends one whole record, rotating first when it would not fit; 0 or -1 (errno set). */
int log_append(log_file *lf, const char *rec, size_t len);
/* Rotates now (tests; log_append does it when needed); 0 or -1 (errno set). */
int log_rotate(log_file *lf);

/* Appends complete lines from data to lf (partial lines stay in l; lf NULL: dropped); 0 or -1. */
int log_write(log_file *lf, log_line *l, const char *data, size_t n);
/* Writes what is left of a partial line. */
int log_flush(log_file *lf, log_line *l);
/* One record into out (for tests); returns length. */
size_t log_record(char *out, size_t outlen, const char *stream, const char *data, size_t n, const char *time);
#endif
