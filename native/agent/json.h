/* A small strict JSON (RFC 8259) parser into a tree, and a streaming writer.
 * Strict: no trailing commas, no comments, no leading zeros, no duplicate keys, no raw control
 * characters in strings, nesting depth <= JSON_MAX_DEPTH. "\u0000" is refused because every
 * string we receive becomes a C string (paths, argv, env). */
#ifndef TVM_JSON_H
#define TVM_JSON_H
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ } jtype;

typedef struct jval {
  jtype type;
  int boolean;
  double num;
  int is_int; /* number had no fraction/exponent and fits in int64 */
  int64_t i64;
  char *str;  /* J_STR: NUL-terminated UTF-8 */
  size_t len; /* J_STR: bytes; J_ARR/J_OBJ: number of items */
  struct jval *items;
  char **keys; /* J_OBJ: keys[i] names items[i] */
} jval;

/* Returns NULL and a message in err on error. */
jval *json_parse(const char *buf, size_t len, char *err, size_t errlen);
void json_free(jval *v);
/* Object member or NULL. */
const jval *json_get(const jval *obj, const char *key);
const char *json_type_name(jtype t);

/* Writer: appends to a growing buffer; commas are handled by the writer. */
typedef struct {
  char *buf;
  size_t len, cap;
  int oom;
  int depth;
  unsigned char need_comma[JSON_MAX_DEPTH + 1];
  int after_key;
} jwriter;

void jw_init(jwriter *w);
void jw_free(jwriter *w);
void jw_obj_begin(jwriter *w);
void jw_obj_end(jwriter *w);
void jw_arr_begin(jwriter *w);
void jw_arr_end(jwriter *w);
void jw_key(jwriter *w, const char *key);
void jw_str(jwriter *w, const char *s);
/* Bytes that may be invalid UTF-8: invalid sequences become U+FFFD, as Go's encoder does. */
void jw_strn(jwriter *w, const char *s, size_t n);
void jw_int(jwriter *w, int64_t v);
void jw_bool(jwriter *w, int b);
void jw_null(jwriter *w);
/* Convenience: key + value */
void jw_kstr(jwriter *w, const char *k, const char *v);
void jw_kint(jwriter *w, const char *k, int64_t v);
void jw_kbool(jwriter *w, const char *k, int b);
#endif
