#include "check.h"
#include "frame.h"
#include <stdlib.h>

int main(void) {
  frame_reader r;
  frame_reader_init(&r);
  size_t n1, n2;
  uint8_t *f1 = frame_encode("{\"a\":1}", 7, &n1);
  uint8_t *f2 = frame_encode("[]", 2, &n2);
  CHECK(n1 == 11 && f1[0] == 0 && f1[3] == 7);
  /* two frames fed one byte at a time */
  uint8_t both[64];
  memcpy(both, f1, n1);
  memcpy(both + n1, f2, n2);
  char *out, err[100];
  size_t len;
  int got = 0;
  for (size_t i = 0; i < n1 + n2; i++) {
    frame_reader_feed(&r, both + i, 1);
    int rc;
    while ((rc = frame_reader_next(&r, &out, &len, err, sizeof err)) == 1) {
      if (got == 0) CHECK(len == 7 && memcmp(out, "{\"a\":1}", 7) == 0 && out[7] == 0);
      if (got == 1) CHECK(len == 2 && memcmp(out, "[]", 2) == 0);
      got++;
      free(out);
    }
    CHECK(rc == 0);
  }
  CHECK(got == 2);
  CHECK(r.len == 0);
  /* zero and oversize lengths are protocol errors */
  uint8_t zero[4] = {0, 0, 0, 0};
  frame_reader_feed(&r, zero, 4);
  CHECK(frame_reader_next(&r, &out, &len, err, sizeof err) == -1);
  frame_reader_free(&r);
  frame_reader_init(&r);
  uint8_t big[4] = {0, 0x10, 0, 1}; /* FRAME_MAX + 1 */
  frame_reader_feed(&r, big, 4);
  CHECK(frame_reader_next(&r, &out, &len, err, sizeof err) == -1);
  CHECK(strstr(err, "outside") != NULL);
  frame_reader_free(&r);
  /* the largest frame is fine */
  CHECK(frame_encode("x", FRAME_MAX + 1, &n1) == NULL);
  CHECK(frame_encode("x", 0, &n1) == NULL);
  free(f1);
  free(f2);
  CHECK_DONE("test_frame");
}
