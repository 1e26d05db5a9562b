/* Length-prefixed frames: u32 big-endian payload length, then the payload (JSON). */
#ifndef TVM_FRAME_H
#define TVM_FRAME_H
#include <stddef.h>
#include <stdint.h>

#define FRAME_HEADER 4
#define FRAME_MAX (1u << 20)

typedef struct {
  uint8_t *buf;
  size_t len, cap;
} frame_reader;

void frame_reader_init(frame_reader *r);
void frame_reader_free(frame_reader *r);
/* Appends received bytes; -1 on out of memory. */
int frame_reader_feed(frame_reader *r, const void *data, size_t n);
/* 1: a frame was taken (payload copied into *out, NUL-terminated, caller frees);
 * 0: need more bytes; -1: protocol error (length 0 or > FRAME_MAX), message in err. */
int frame_reader_next(frame_reader *r, char **out, size_t *out_len, char *err, size_t errlen);
/* header + payload in one malloc'd buffer; NULL if payload too large. */
uint8_t *frame_encode(const void *payload, size_t n, size_t *out_len);
#endif
