/* Minimal test harness: CHECK(cond) records a failure and continues; each test binary exits
 * non-zero if anything failed. */
#ifndef TVM_CHECK_H
#define TVM_CHECK_H
#include <stdio.h>
#include <string.h>

static int check_failures, check_count;

#define CHECK(cond)                                                                                                                        \
  do {                                                                                                                                     \
    check_count++;                                                                                                                         \
    if (!(cond)) {                                                                                                                         \
      check_failures++;                                                                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                                             \
    }                                                                                                                                      \
  } while (0)
#define CHECK_STR(a, b)                                                                                                                    \
  do {                                                                                                                                     \
    check_count++;                                                                                                                         \
    const char *a_ = (a), *b_ = (b);                                                                                                       \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                                                               \
      check_failures++;                                                                                                                    \
      fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", b_ ? b_ : "(null)");          \
    }                                                                                                                                      \
  } while (0)
#define CHECK_DONE(name)                                                                                                                   \
  do {                                                                                                                                     \
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);                                                               \
    return check_failures ? 1 : 0;                                                                                                         \
  } while (0)
#endif
