#include "check.h"
#include "logfile.h"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char *slurp(FILE *f) {
  fflush(f);
  long n = ftell(f);
  char *b = calloc(1, (size_t)n + 1);
  rewind(f);
  if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); return NULL; }
  return b;
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++) n += *s == '\n';
  return n;
}

int main(void) {
  char rec[256];
  size_t n = log_record(rec, sizeof rec, "stdout", "hi \"x\"\n", 7, "2024-01-01T00:00:00.000000001Z");
  rec[n] = 0;
  CHECK_STR(rec, "{\"log\":\"hi \\\"x\\\"\\n\",\"stream\":\"stdout\",\"time\":\"2024-01-01T00:00:00.000000001Z\"}\n");

  FILE *f = tmpfile();
  int fd = fileno(f);
  log_line l = {.stream = "stderr"};
  CHECK(log_write(fd, &l, "a\nb", 3) == 0);
  CHECK(log_write(fd, &l, "c\n\n", 3) == 0);
  CHECK(log_write(fd, &l, "partial", 7) == 0);
  char *t = slurp(f);
  CHECK(count_lines(t) == 3);
  CHECK(strstr(t, "\"log\":\"a\\n\",\"stream\":\"stderr\"") != NULL);
  CHECK(strstr(t, "\"log\":\"bc\\n\"") != NULL);
  CHECK(strstr(t, "\"log\":\"\\n\"") != NULL);
  free(t);
  CHECK(log_flush(fd, &l) == 0);
  fseek(f, 0, SEEK_END);
  t = slurp(f);
  CHECK(strstr(t, "\"log\":\"partial\"") != NULL);
  free(t);
  /* a line longer than LOG_MAX_LINE is split */
  char *big = malloc(LOG_MAX_LINE + 10);
  memset(big, 'x', LOG_MAX_LINE + 10);
  FILE *g = tmpfile();
  log_line l2 = {.stream = "stdout"};
  log_write(fileno(g), &l2, big, LOG_MAX_LINE + 10);
  log_flush(fileno(g), &l2);
  fseek(g, 0, SEEK_END);
  t = slurp(g);
  CHECK(count_lines(t) == 2);
  free(t);
  free(big);
  CHECK_DONE("test_log");
}
