#include "json.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *p, *end, *start;
  char *err;
  size_t errlen;
  int failed;
} parser;

static void fail(parser *ps, const char *fmt, ...) {
  if (ps->failed) return;
  ps->failed = 1;
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (ps->err) snprintf(ps->err, ps->errlen, "%s at offset %zu", msg, (size_t)(ps->p - ps->start));
}

static void skip_ws(parser *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int parse_value(parser *ps, jval *out, int depth);

static int hex4(parser *ps, unsigned *out) {
  if (ps->end - ps->p < 4) {
    fail(ps, "truncated \\u escape");
    return -1;
  }
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    char c = ps->p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
    else {
      fail(ps, "bad hex digit in \\u escape");
      return -1;
    }
  }
  ps->p += 4;
  *out = v;
  return 0;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) {
    o[0] = (char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | (cp >> 6));
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | (cp >> 12));
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | (cp >> 18));
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* Length of a valid UTF-8 sequence at s (max n bytes), or 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t len;
  unsigned cp;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return len;
}

static int parse_string(parser *ps, char **out, size_t *outlen) {
  ps->p++; /* opening quote */
  /* Output is never longer than input. */
  const char *scan = ps->p;
  while (scan < ps->end && *scan != '"') scan += (*scan == '\\' && scan + 1 < ps->end) ? 2 : 1;
  if (scan >= ps->end) {
    fail(ps, "unterminated string");
    return -1;
  }
  char *buf = malloc((size_t)(scan - ps->p) + 1);
  if (!buf) {
    fail(ps, "out of memory");
    return -1;
  }
  size_t n = 0;
  while (ps->p < ps->end) {
    unsigned char c = (unsigned char)*ps->p;
    if (c == '"') {
      ps->p++;
      buf[n] = 0;
      *out = buf;
      *outlen = n;
      return 0;
    }
    if (c < 0x20) {
      fail(ps, "control character in string");
      break;
    }
    if (c == '\\') {
      ps->p++;
      if (ps->p >= ps->end) {
        fail(ps, "unterminated escape");
        break;
      }
      char e = *ps->p++;
      switch (e) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u': {
        unsigned cp;
        if (hex4(ps, &cp) < 0) goto bad;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned lo;
          if (ps->end - ps->p < 2 || ps->p[0] != '\\' || ps->p[1] != 'u') {
            fail(ps, "lone high surrogate");
            goto bad;
          }
          ps->p += 2;
          if (hex4(ps, &lo) < 0) goto bad;
          if (lo < 0xDC00 || lo > 0xDFFF) {
            fail(ps, "bad low surrogate");
            goto bad;
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          fail(ps, "lone low surrogate");
          goto bad;
        }
        if (cp == 0) {
          fail(ps, "\\u0000 not allowed");
          goto bad;
        }
        n += put_utf8(buf + n, cp);
        break;
      }
      default: fail(ps, "bad escape \\%c", e); goto bad;
      }
      continue;
    }
    size_t sl = utf8_seq((const unsigned char *)ps->p, (size_t)(ps->end - ps->p));
    if (sl == 0) {
      fail(ps, "invalid UTF-8 in string");
      break;
    }
    memcpy(buf + n, ps->p, sl);
    n += sl;
    ps->p += sl;
  }
bad:
  free(buf);
  if (!ps->failed) fail(ps, "unterminated string");
  return -1;
}

static int parse_number(parser *ps, jval *out) {
  const char *s = ps->p;
  int is_int = 1;
  if (ps->p < ps->end && *ps->p == '-') ps->p++;
  if (ps->p >= ps->end) {
    fail(ps, "bad number");
    return -1;
  }
  if (*ps->p == '0') ps->p++;
  else if (*ps->p >= '1' && *ps->p <= '9')
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  else {
    fail(ps, "bad number");
    return -1;
  }
  if (ps->p < ps->end && *ps->p == '.') {
    is_int = 0;
    ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
      fail(ps, "bad fraction");
      return -1;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
    is_int = 0;
    ps->p++;
    if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') {
      fail(ps, "bad exponent");
      return -1;
    }
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
  }
  char tmp[64];
  size_t n = (size_t)(ps->p - s);
  if (n >= sizeof tmp) {
    fail(ps, "number too long");
    return -1;
  }
  memcpy(tmp, s, n);
  tmp[n] = 0;
  out->type = J_NUM;
  out->num = strtod(tmp, NULL);
  if (!isfinite(out->num)) {
    fail(ps, "number out of range");
    return -1;
  }
  if (is_int) {
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == 0) {
      out->is_int = 1;
      out->i64 = v;
    }
  }
  return 0;
}

static int expect_word(parser *ps, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) != 0) {
    fail(ps, "unexpected token");
    return -1;
  }
  ps->p += n;
  return 0;
}

static int push_item(parser *ps, jval *arr, size_t *cap, jval *item, char *key) {
  if (arr->len == *cap) {
    size_t nc = *cap ? *cap * 2 : 4;
    jval *ni = realloc(arr->items, nc * sizeof *ni);
    if (!ni) {
      fail(ps, "out of memory");
      return -1;
    }
    arr->items = ni;
    if (arr->type == J_OBJ) {
      char **nk = realloc(arr->keys, nc * sizeof *nk);
      if (!nk) {
        fail(ps, "out of memory");
        return -1;
      }
      arr->keys = nk;
    }
    *cap = nc;
  }
  arr->items[arr->len] = *item;
  if (arr->type == J_OBJ) arr->keys[arr->len] = key;
  arr->len++;
  return 0;
}

static void free_inner(jval *v) {
  if (v->type == J_STR) free(v->str);
  if (v->type == J_ARR || v->type == J_OBJ) {
    for (size_t i = 0; i < v->len; i++) {
      free_inner(&v->items[i]);
      if (v->type == J_OBJ) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
  }
}

static int parse_value(parser *ps, jval *out, int depth) {
  memset(out, 0, sizeof *out);
  skip_ws(ps);
  if (ps->p >= ps->end) {
    fail(ps, "unexpected end of input");
    return -1;
  }
  char c = *ps->p;
  if (c == '{' || c == '[') {
    if (depth >= JSON_MAX_DEPTH) {
      fail(ps, "nesting deeper than %d", JSON_MAX_DEPTH);
      return -1;
    }
    int obj = c == '{';
    char close = obj ? '}' : ']';
    out->type = obj ? J_OBJ : J_ARR;
    size_t cap = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
      ps->p++;
      return 0;
    }
    for (;;) {
      char *key = NULL;
      size_t klen;
      if (obj) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
          fail(ps, "expected object key");
          goto err;
        }
        if (parse_string(ps, &key, &klen) < 0) goto err;
        for (size_t i = 0; i < out->len; i++)
          if (strcmp(out->keys[i], key) == 0) {
            fail(ps, "duplicate key \"%s\"", key);
            free(key);
            goto err;
          }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
          fail(ps, "expected ':'");
          free(key);
          goto err;
        }
        ps->p++;
      }
      jval item;
      if (parse_value(ps, &item, depth + 1) < 0) {
        free(key);
        goto err;
      }
      if (push_item(ps, out, &cap, &item, key) < 0) {
        free_inner(&item);
        free(key);
        goto err;
      }
      skip_ws(ps);
      if (ps->p >= ps->end) {
        fail(ps, "unexpected end of input");
        goto err;
      }
      if (*ps->p == ',') {
        ps->p++;
        continue;
      }
      if (*ps->p == close) {
        ps->p++;
        return 0;
      }
      fail(ps, "expected ',' or '%c'", close);
      goto err;
    }
  err:
    free_inner(out);
    memset(out, 0, sizeof *out);
    return -1;
  }
  if (c == '"') {
    out->type = J_STR;
    return parse_string(ps, &out->str, &out->len);
  }
  if (c == 't') {
    out->type = J_BOOL;
    out->boolean = 1;
    return expect_word(ps, "true");
  }
  if (c == 'f') {
    out->type = J_BOOL;
    return expect_word(ps, "false");
  }
  if (c == 'n') {
    out->type = J_NULL;
    return expect_word(ps, "null");
  }
  if (c == '-' || (c >= '0' && c <= '9')) return parse_number(ps, out);
  fail(ps, "unexpected character '%c'", c);
  return -1;
}

jval *json_parse(const char *buf, size_t len, char *err, size_t errlen) {
  parser ps = {buf, buf + len, buf, err, errlen, 0};
  jval *v = malloc(sizeof *v);
  if (!v) return NULL;
  if (parse_value(&ps, v, 0) < 0) {
    free(v);
    return NULL;
  }
  skip_ws(&ps);
  if (ps.p != ps.end) {
    fail(&ps, "trailing data");
    free_inner(v);
    free(v);
    return NULL;
  }
  return v;
}

void json_free(jval *v) {
  if (!v) return;
  free_inner(v);
  free(v);
}

const jval *json_get(const jval *obj, const char *key) {
  if (!obj || obj->type != J_OBJ) return NULL;
  for (size_t i = 0; i < obj->len; i++)
    if (strcmp(obj->keys[i], key) == 0) return &obj->items[i];
  return NULL;
}

const char *json_type_name(jtype t) {
  static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
  return names[t];
}

/* ---- writer ---- */

static void put(jwriter *w, const char *s, size_t n) {
  if (w->oom) return;
  if (w->len + n + 1 > w->cap) {
    size_t nc = w->cap ? w->cap : 256;
    while (nc < w->len + n + 1) nc *= 2;
    char *nb = realloc(w->buf, nc);
    if (!nb) {
      w->oom = 1;
      return;
    }
    w->buf = nb;
    w->cap = nc;
  }
  memcpy(w->buf + w->len, s, n);
  w->len += n;
  w->buf[w->len] = 0;
}

static void sep(jwriter *w) {
  if (w->after_key) {
    w->after_key = 0;
    return;
  }
  if (w->need_comma[w->depth]) put(w, ",", 1);
  w->need_comma[w->depth] = 1;
}

void jw_init(jwriter *w) { memset(w, 0, sizeof *w); }
void jw_free(jwriter *w) {
  free(w->buf);
  memset(w, 0, sizeof *w);
}

static void open_(jwriter *w, const char *c) {
  sep(w);
  put(w, c, 1);
  if (w->depth < JSON_MAX_DEPTH) w->depth++;
  w->need_comma[w->depth] = 0;
}
static void close_(jwriter *w, const char *c) {
  put(w, c, 1);
  if (w->depth > 0) w->depth--;
}
void jw_obj_begin(jwriter *w) { open_(w, "{"); }
void jw_obj_end(jwriter *w) { close_(w, "}"); }
void jw_arr_begin(jwriter *w) { open_(w, "["); }
void jw_arr_end(jwriter *w) { close_(w, "]"); }

static void put_escaped(jwriter *w, const char *s, size_t n) {
  put(w, "\"", 1);
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"') {
      put(w, "\\\"", 2);
      i++;
    } else if (c == '\\') {
      put(w, "\\\\", 2);
      i++;
    } else if (c == '\n') {
      put(w, "\\n", 2);
      i++;
    } else if (c == '\r') {
      put(w, "\\r", 2);
      i++;
    } else if (c == '\t') {
      put(w, "\\t", 2);
      i++;
    } else if (c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", c);
      put(w, esc, 6);
      i++;
    } else {
      size_t sl = utf8_seq((const unsigned char *)s + i, n - i);
      if (sl == 0) {
        put(w, "\\ufffd", 6);
        i++;
      } else {
        put(w, s + i, sl);
        i += sl;
      }
    }
  }
  put(w, "\"", 1);
}

void jw_key(jwriter *w, const char *key) {
  sep(w);
  put_escaped(w, key, strlen(key));
  put(w, ":", 1);
  w->after_key = 1;
}
void jw_str(jwriter *w, const char *s) {
  sep(w);
  put_escaped(w, s, strlen(s));
}
void jw_strn(jwriter *w, const char *s, size_t n) {
  sep(w);
  put_escaped(w, s, n);
}
void jw_int(jwriter *w, int64_t v) {
  char b[32];
  int n = snprintf(b, sizeof b, "%lld", (long long)v);
  sep(w);
  put(w, b, (size_t)n);
}
void jw_bool(jwriter *w, int b) {
  sep(w);
  put(w, b ? "true" : "false", b ? 4 : 5);
}
void jw_null(jwriter *w) {
  sep(w);
  put(w, "null", 4);
}
void jw_kstr(jwriter *w, const char *k, const char *v) {
  jw_key(w, k);
  jw_str(w, v);
}
void jw_kint(jwriter *w, const char *k, int64_t v) {
  jw_key(w, k);
  jw_int(w, v);
}
void jw_kbool(jwriter *w, const char *k, int b) {
  jw_key(w, k);
  jw_bool(w, b);
}
