#include "frame.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void frame_reader_init(frame_reader *r) { memset(r, 0, sizeof *r); }
void frame_reader_free(frame_reader *r) {
  free(r->buf);
  memset(r, 0, sizeof *r);
}

int frame_reader_feed(frame_reader *r, const void *data, size_t n) {
  if (r->len + n > r->cap) {
    size_t nc = r->cap ? r->cap : 4096;
    while (nc < r->len + n) nc *= 2;
    uint8_t *nb = realloc(r->buf, nc);
    if (!nb) return -1;
    r->buf = nb;
    r->cap = nc;
  }
  memcpy(r->buf + r->len, data, n);
  r->len += n;
  return 0;
}

int frame_reader_next(frame_reader *r, char **out, size_t *out_len, char *err, size_t errlen) {
  if (r->len < FRAME_HEADER) return 0;
  uint32_t n = ((uint32_t)r->buf[0] << 24) | ((uint32_t)r->buf[1] << 16) | ((uint32_t)r->buf[2] << 8) | r->buf[3];
  if (n == 0 || n > FRAME_MAX) {
    snprintf(err, errlen, "frame length %u outside 1..%u", n, FRAME_MAX);
    return -1;
  }
  if (r->len < FRAME_HEADER + (size_t)n) return 0;
  char *p = malloc((size_t)n + 1);
  if (!p) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  memcpy(p, r->buf + FRAME_HEADER, n);
  p[n] = 0;
  memmove(r->buf, r->buf + FRAME_HEADER + n, r->len - FRAME_HEADER - n);
  r->len -= FRAME_HEADER + n;
  *out = p;
  *out_len = n;
  return 1;
}

uint8_t *frame_encode(const void *payload, size_t n, size_t *out_len) {
  if (n == 0 || n > FRAME_MAX) return NULL;
  uint8_t *b = malloc(FRAME_HEADER + n);
  if (!b) return NULL;
  b[0] = (uint8_t)(n >> 24);
  b[1] = (uint8_t)(n >> 16);
  b[2] = (uint8_t)(n >> 8);
  b[3] = (uint8_t)n;
  memcpy(b + FRAME_HEADER, payload, n);
  *out_len = FRAME_HEADER + n;
  return b;
}
