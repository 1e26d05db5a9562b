#include "check.h"
#include "spec.h"
#include "userns.h"
#include <stdio.h>
#include <stdlib.h>

static const char *base = "{\"id\":\"c1\","
                          "\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/t\"},"
                          "\"process\":{\"args\":[\"sh\"]},\"logPath\":\"/x/log.jsonl\"%s}";

/* Parses a spec with `extra` appended; returns spec_parse's result, err holds its message. */
static int parse(const char *extra, container_spec *s, char *err, size_t errlen) {
  char buf[4096];
  snprintf(buf, sizeof buf, base, extra);
  jval *v = json_parse(buf, strlen(buf), err, errlen);
  if (!v) return -2;
  int rc = spec_parse(v, s, err, errlen);
  json_free(v);
  return rc;
}

static int refused(const char *extra, const char *want) {
  char err[300] = "";
  container_spec s;
  int rc = parse(extra, &s, err, sizeof err);
  spec_free(&s);
  if (rc != -1 || !strstr(err, want)) {
    fprintf(stderr, "  %s: wanted an error containing \"%s\", got rc=%d \"%s\"\n", extra, want, rc, err);
    return 0;
  }
  return 1;
}

#define MAP(c, h, n) "{\"containerID\":" #c ",\"hostID\":" #h ",\"size\":" #n "}"

int main(void) {
  char err[300] = "";
  container_spec s;
  CHECK(parse("", &s, err, sizeof err) == 0);
  CHECK(s.userns.nuid == 0 && s.userns.ngid == 0);
  spec_free(&s);

  CHECK(parse(",\"userns\":{\"uidMap\":[" MAP(0, 100000, 65536) "," MAP(65536, 300000, 10) "],"
                                                                                           "\"gidMap\":[" MAP(0, 200000, 65536) "]}",
              &s, err, sizeof err) == 0);
  CHECK(s.userns.nuid == 2 && s.userns.ngid == 1);
  CHECK(s.userns.uid[1].container_id == 65536 && s.userns.uid[1].host_id == 300000 && s.userns.uid[1].size == 10);
  CHECK(userns_to_host(s.userns.uid, s.userns.nuid, 0) == 100000);
  CHECK(userns_to_host(s.userns.uid, s.userns.nuid, 65535) == 165535);
  CHECK(userns_to_host(s.userns.uid, s.userns.nuid, 65536) == 300000);
  CHECK(userns_to_host(s.userns.uid, s.userns.nuid, 65546) == -1);
  CHECK(userns_to_host(s.userns.gid, s.userns.ngid, 7) == 200007);
  char out[128];
  CHECK(userns_format_map(s.userns.uid, s.userns.nuid, out, sizeof out) == (int)strlen("0 100000 65536\n65536 300000 10\n"));
  CHECK_STR(out, "0 100000 65536\n65536 300000 10\n");
  CHECK(userns_format_map(s.userns.uid, s.userns.nuid, out, 10) == -1);
  /* the largest ids still format */
  id_map_entry big = {0, 4294967294u, 1};
  CHECK(userns_format_map(&big, 1, out, sizeof out) > 0);
  CHECK_STR(out, "0 4294967294 1\n");
  spec_free(&s);

  CHECK(refused(",\"userns\":[]", "spec.userns: expected an object"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 1, 1) "]}", "spec.userns.gidMap: expected an array"));
  CHECK(refused(",\"userns\":{\"uidMap\":[],\"gidMap\":[" MAP(0, 1, 1) "]}", "spec.userns.uidMap: must not be empty"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 1, 1) "],\"gidMap\":[" MAP(0, 1, 1) "],\"x\":1}", "unknown key \"x\""));
  CHECK(refused(",\"userns\":{\"uidMap\":[{\"containerID\":0,\"hostID\":1}],\"gidMap\":[" MAP(0, 1, 1) "]}",
                "uidMap[0].size: expected an integer"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 1, 0) "],\"gidMap\":[" MAP(0, 1, 1) "]}", "size: must be at least 1"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, -1, 1) "],\"gidMap\":[" MAP(0, 1, 1) "]}", "hostID: outside the 32-bit id space"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 4294967295, 2) "],\"gidMap\":[" MAP(0, 1, 1) "]}", "range ends outside"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 100, 10) "," MAP(5, 200, 10) "],\"gidMap\":[" MAP(0, 1, 1) "]}",
                "uidMap[1]: overlaps entry 0"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(0, 100, 10) "," MAP(10, 105, 10) "],\"gidMap\":[" MAP(0, 1, 1) "]}", "overlaps entry 0"));
  CHECK(refused(",\"userns\":{\"uidMap\":[" MAP(1, 100, 10) "],\"gidMap\":[" MAP(0, 1, 1) "]}",
                "uidMap: container id 0 (root) is not mapped"));
  CHECK(refused(",\"network\":\"host\",\"userns\":{\"uidMap\":[" MAP(0, 1, 1) "],\"gidMap\":[" MAP(0, 1, 1) "]}",
                "needs its own network namespace"));
  CHECK(refused(",\"privileged\":true,\"userns\":{\"uidMap\":[" MAP(0, 1, 1) "],\"gidMap\":[" MAP(0, 1, 1) "]}",
                "privileged containers run in the host's user namespace"));
  CHECK_DONE("test_userns");
}
