#include "check.h"
#include "json.h"
#include <stdlib.h>

static jval *parse(const char *s, char *err) { return json_parse(s, strlen(s), err, 200); }

static int rejects(const char *s) {
  char err[200] = "";
  jval *v = parse(s, err);
  if (v) {
    json_free(v);
    return 0;
  }
  return err[0] != 0;
}

int main(void) {
  char err[200];
  jval *v = parse(" {\"a\": [1, -2, 3.5, true, false, null], \"s\": \"x\\u00e9\\ud83d\\ude00\\n\", \"o\": {}} ", err);
  CHECK(v != NULL);
  if (v) {
    const jval *a = json_get(v, "a");
    CHECK(a && a->type == J_ARR && a->len == 6);
    CHECK(a->items[0].is_int && a->items[0].i64 == 1);
    CHECK(a->items[1].is_int && a->items[1].i64 == -2);
    CHECK(!a->items[2].is_int && a->items[2].num == 3.5);
    CHECK(a->items[3].type == J_BOOL && a->items[3].boolean);
    CHECK(a->items[5].type == J_NULL);
    CHECK_STR(json_get(v, "s")->str, "x\xc3\xa9\xf0\x9f\x98\x80\n");
    CHECK(json_get(v, "o")->type == J_OBJ && json_get(v, "o")->len == 0);
    CHECK(json_get(v, "missing") == NULL);
    json_free(v);
  }
  /* strictness */
  CHECK(rejects(""));
  CHECK(rejects("{"));
  CHECK(rejects("[1,]"));
  CHECK(rejects("{\"a\":1,}"));
  CHECK(rejects("{\"a\":1,\"a\":2}"));
  CHECK(rejects("01"));
  CHECK(rejects("1."));
  CHECK(rejects("-"));
  CHECK(rejects("1e"));
  CHECK(rejects("\"\\x\""));
  CHECK(rejects("\"a\tb\""));
  CHECK(rejects("\"\\u0000\""));
  CHECK(rejects("\"\\ud83d\""));
  CHECK(rejects("\"\\ude00\""));
  CHECK(rejects("\"\xff\""));
  CHECK(rejects("\"\xc0\xaf\""));
  CHECK(rejects("tru"));
  CHECK(rejects("{} x"));
  CHECK(rejects("{'a':1}"));
  CHECK(rejects("/* c */ {}"));
  CHECK(rejects("1e999"));
  /* depth limit */
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  CHECK(json_parse(deep, 200, err, sizeof err) == NULL);
  CHECK(strstr(err, "nesting") != NULL);
  char ok[2 * JSON_MAX_DEPTH];
  memset(ok, '[', JSON_MAX_DEPTH);
  memset(ok + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
  v = json_parse(ok, sizeof ok, err, sizeof err);
  CHECK(v != NULL);
  json_free(v);
  /* error messages carry the offset */
  CHECK(json_parse("[1, x]", 6, err, sizeof err) == NULL);
  CHECK(strstr(err, "offset 4") != NULL);

  /* writer */
  jwriter w;
  jw_init(&w);
  jw_obj_begin(&w);
  jw_kint(&w, "v", 1);
  jw_kstr(&w, "s", "q\"b\\n\n\x01");
  jw_key(&w, "a");
  jw_arr_begin(&w);
  jw_int(&w, -5);
  jw_bool(&w, 0);
  jw_null(&w);
  jw_obj_begin(&w);
  jw_obj_end(&w);
  jw_arr_end(&w);
  jw_key(&w, "bad");
  jw_strn(&w,
          "a\xff"
          "b\xe2\x82",
          5);
  jw_obj_end(&w);
  CHECK_STR(w.buf, "{\"v\":1,\"s\":\"q\\\"b\\\\n\\n\\u0001\",\"a\":[-5,false,null,{}],\"bad\":\"a\\ufffdb\\ufffd\\ufffd\"}");
  /* what we write, we read back */
  v = json_parse(w.buf, w.len, err, sizeof err);
  CHECK(v != NULL);
  if (v) CHECK_STR(json_get(v, "s")->str, "q\"b\\n\n\x01");
  json_free(v);
  jw_free(&w);
  CHECK_DONE("test_json");
}
