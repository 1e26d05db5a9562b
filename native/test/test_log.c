#define _GNU_SOURCE
#include "check.h"
#include "logfile.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char *slurp_path(const char *p, size_t *len) {
  FILE *f = fopen(p, "r");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  char *b = calloc(1, (size_t)n + 1);
  rewind(f);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) {
    free(b);
    fclose(f);
    return NULL;
  }
  fclose(f);
  if (len) *len = (size_t)n;
  return b;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; s && *s; s++) n += *s == '\n';
  return n;
}

static long fsize(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

static ino_t inode(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 ? st.st_ino : 0;
}

/* "line <i>\n" records of a fixed length through the json-file writer */
static void write_lines(log_file *lf, int from, int to) {
  log_line l = {.stream = "stdout"};
  char b[64];
  for (int i = from; i < to; i++) {
    int n = snprintf(b, sizeof b, "line %04d\n", i);
    log_write(lf, &l, b, (size_t)n);
  }
}

int main(void) {
  char rec[256];
  size_t n = log_record(rec, sizeof rec, "stdout", "hi \"x\"\n", 7, "2024-01-01T00:00:00.000000001Z");
  rec[n] = 0;
  CHECK_STR(rec, "{\"log\":\"hi \\\"x\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.000000001Z\"}\n");

  char dir[] = "/tmp/tvm-test-log-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], p1[300], p2[300], p3[300];
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  snprintf(p1, sizeof p1, "%s.1", path);
  snprintf(p2, sizeof p2, "%s.2", path);
  snprintf(p3, sizeof p3, "%s.3", path);

  /* lines, partial lines, flush: no rotation */
  log_file lf;
  CHECK(log_open(&lf, path, 0, 1) == 0);
  log_line l = {.stream = "stderr"};
  CHECK(log_write(&lf, &l, "a\nb", 3) == 0);
  CHECK(log_write(&lf, &l, "c\n\n", 3) == 0);
  CHECK(log_write(&lf, &l, "partial", 7) == 0);
  char *t = slurp_path(path, NULL);
  CHECK(count_lines(t) == 3);
  CHECK(strstr(t, "\"log\":\"a\\n\",\"stream\":\"stderr\"") != NULL);
  CHECK(strstr(t, "\"log\":\"bc\\n\"") != NULL);
  CHECK(strstr(t, "\"log\":\"\\n\"") != NULL);
  free(t);
  CHECK(log_flush(&lf, &l) == 0);
  t = slurp_path(path, NULL);
  CHECK(strstr(t, "\"log\":\"partial\"") != NULL);
  free(t);
  /* a line longer than LOG_MAX_LINE is split */
  char *big = malloc(LOG_MAX_LINE + 10);
  memset(big, 'x', LOG_MAX_LINE + 10);
  log_line l2 = {.stream = "stdout"};
  log_write(&lf, &l2, big, LOG_MAX_LINE + 10);
  log_flush(&lf, &l2);
  t = slurp_path(path, NULL);
  CHECK(count_lines(t) == 6);
  free(t);
  free(big);
  /* reopening appends and knows the size */
  long before = fsize(path);
  log_close(&lf);
  CHECK(log_open(&lf, path, 0, 1) == 0);
  CHECK(lf.size == before);
  log_close(&lf);
  unlink(path);
  CHECK(log_open(&lf, path, 1000, 0) == -EINVAL);
  CHECK(log_open(&lf, path, 1000, LOG_MAX_FILES + 1) == -EINVAL);

  /* rotation: 3 files, none over max-size, oldest dropped, newest lines in the current file */
  size_t reclen = log_record(rec, sizeof rec, "stdout", "line 0000\n", 10, "2024-01-01T00:00:00.000000001Z");
  long max = (long)reclen * 10 + (long)reclen / 2; /* room for 10 records, not 11 */
  CHECK(log_open(&lf, path, max, 3) == 0);
  write_lines(&lf, 0, 10);
  CHECK(fsize(p1) == -1);
  ino_t first = inode(path);
  write_lines(&lf, 10, 11);
  CHECK(inode(p1) == first); /* renamed, same inode: a follower's descriptor stays valid */
  CHECK(inode(path) != first);
  CHECK(fsize(path) == (long)reclen);
  write_lines(&lf, 11, 45);
  CHECK(fsize(p3) == -1);
  CHECK(fsize(path) <= max && fsize(p1) <= max && fsize(p2) <= max);
  CHECK(fsize(p1) == (long)reclen * 10 && fsize(p2) == (long)reclen * 10);
  t = slurp_path(path, NULL);
  CHECK(count_lines(t) == 5 && strstr(t, "line 0040") && strstr(t, "line 0044"));
  free(t);
  t = slurp_path(p2, NULL);
  CHECK(strstr(t, "line 0020") != NULL && strstr(t, "line 0029") != NULL);
  free(t);
  char tmp[320];
  snprintf(tmp, sizeof tmp, "%s.rotating", path);
  CHECK(fsize(tmp) == -1);
  log_close(&lf);
  unlink(path);
  unlink(p1);
  unlink(p2);

  /* max-file 1: the log starts over (Docker truncates) */
  CHECK(log_open(&lf, path, max, 1) == 0);
  write_lines(&lf, 0, 12);
  CHECK(fsize(p1) == -1);
  CHECK(fsize(path) == (long)reclen * 2);
  log_close(&lf);
  unlink(path);

  /* max-file 2: .1 is replaced at each rotation */
  CHECK(log_open(&lf, path, max, 2) == 0);
  write_lines(&lf, 0, 25);
  t = slurp_path(p1, NULL);
  CHECK(count_lines(t) == 10 && strstr(t, "line 0010") && strstr(t, "line 0019"));
  free(t);
  CHECK(fsize(p2) == -1);
  /* a record larger than max-size still gets written, alone in its file */
  log_close(&lf);
  unlink(path);
  unlink(p1);
  CHECK(log_open(&lf, path, 10, 2) == 0);
  write_lines(&lf, 0, 2);
  CHECK(fsize(path) == (long)reclen && fsize(p1) == (long)reclen);
  log_close(&lf);
  unlink(path);
  unlink(p1);
  rmdir(dir);
  CHECK_DONE("test_log");
}
