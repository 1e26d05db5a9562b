/* Small helpers shared by every agent module: diagnostics, full reads/writes, atomic files,
 * Docker's time format. */
#ifndef TVM_UTIL_H
#define TVM_UTIL_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Diagnostics go to stderr, which the supervisor points at STATE/agent.log. */
void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int write_all(int fd, const void *buf, size_t len);
/* Reads until EOF or max bytes; returns bytes read or -1. */
ssize_t read_full(int fd, void *buf, size_t max);
/* temp file in the same dir + fsync + rename + fsync(dir): a crash leaves old or new. */
int write_file_atomic(const char *path, const void *data, size_t len);
/* Reads a whole (small) file into a NUL-terminated malloc'd buffer. */
char *read_file(const char *path, size_t *len_out);
/* Writes a string to an existing file (cgroup knobs); returns 0 or -errno. */
int write_file_str(const char *path, const char *value);
/* RFC 3339 with nanoseconds in UTC, as Docker writes: 2024-01-01T00:00:00.123456789Z */
void format_time_rfc3339nano(char out[40]);
int mkdir_p(const char *path, mode_t mode);
int set_nonblock(int fd);
int set_cloexec(int fd);
#endif
