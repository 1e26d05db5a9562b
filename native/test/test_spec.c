#include "caps.h"
#include "check.h"
#include "spec.h"
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *base_fmt =
    "{\"id\":\"c1\",\"hostname\":\"box\",\"network\":\"none\","
    "\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/t\"},"
    "\"process\":{\"args\":[\"sh\",\"-c\",\"x\"],\"env\":[\"A=1\"],\"cwd\":\"/tmp\",\"user\":\"app\",\"tty\":true,\"stdin\":true},"
    "\"mounts\":[{\"type\":\"bind\",\"source\":\"/h\",\"destination\":\"/c\",\"readonly\":true},"
    "{\"type\":\"tmpfs\",\"destination\":\"/t\",\"readonly\":false,\"options\":[\"size=1m\",\"mode=755\"]}],"
    "\"resources\":{\"memory\":33554432,\"pidsLimit\":20,\"nanoCpus\":500000000},"
    "\"capAdd\":[\"NET_ADMIN\"],\"capDrop\":[\"cap_chown\"],"
    "\"cgroup\":{\"version\":1,\"root\":\"/sys/fs/cgroup\",\"path\":\"tvm/c1\"},"
    "\"logPath\":\"/x/log.jsonl\"%s}";

static int parse_with(const char *extra, container_spec *s, char *err) {
  char buf[4096];
  snprintf(buf, sizeof buf, base_fmt, extra);
  jval *v = json_parse(buf, strlen(buf), err, 300);
  if (!v) return -2;
  int rc = spec_parse(v, s, err, 300);
  json_free(v);
  return rc;
}

static int bad(const char *json, const char *want) {
  char err[300] = "";
  container_spec s;
  jval *v = json_parse(json, strlen(json), err, sizeof err);
  int rc = v ? spec_parse(v, &s, err, sizeof err) : -2;
  json_free(v);
  if (v) spec_free(&s);
  if (rc != -1 || !strstr(err, want)) {
    fprintf(stderr, "  wanted error containing \"%s\", got rc=%d \"%s\"\n", want, rc, err);
    return 0;
  }
  return 1;
}

int main(void) {
  container_spec s;
  char err[300];
  CHECK(parse_with("", &s, err) == 0);
  CHECK_STR(s.id, "c1");
  CHECK(s.net_none == 1);
  CHECK(s.process.nargs == 3 && s.process.args[3] == NULL);
  CHECK(s.process.tty && s.process.stdin_open);
  CHECK_STR(s.process.user, "app");
  CHECK(s.nmounts == 2 && s.mounts[0].readonly && s.mounts[1].type == MOUNT_TMPFS);
  CHECK_STR(s.mounts[1].options, "size=1m,mode=755");
  CHECK(s.res.memory == 32 << 20 && s.res.pids_limit == 20 && s.res.nano_cpus == 500000000);
  CHECK(s.caps & (1ull << CAP_NET_ADMIN));
  CHECK(!(s.caps & (1ull << CAP_CHOWN)));
  CHECK(s.caps & (1ull << CAP_KILL));
  CHECK(s.cgroup_version == 1);
  spec_free(&s);

  CHECK(parse_with(",\"extra\":1", &s, err) == -1);
  CHECK(strstr(err, "unknown key \"extra\"") != NULL);
  spec_free(&s);

  const char *rootfs = "\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/t\"}";
  char j[1024];
#define SPEC(...) (snprintf(j, sizeof j, __VA_ARGS__), j)
  /* the microVM guest's root: lower bound as the root, no overlay */
  CHECK(bad(SPEC("{\"id\":\"c\",\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"target\":\"/"
                 "t\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}"),
            "upper and work go together"));
  {
    const char *vm = SPEC("{\"id\":\"c\",\"rootfs\":{\"lower\":\"/run/tvm/disk\",\"target\":\"/"
                          "t\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/dev/null\"}");
    jval *v = json_parse(vm, strlen(vm), err, sizeof err);
    CHECK(v && spec_parse(v, &s, err, sizeof err) == 0);
    CHECK(s.upper == NULL && s.work == NULL);
    CHECK_STR(s.lower, "/run/tvm/disk");
    json_free(v);
    spec_free(&s);
  }
  CHECK(bad(SPEC("{\"id\":\"c\",\"rootfs\":{\"lower\":\"/l\",\"upper\":\"u\",\"work\":\"/w\",\"target\":\"/"
                 "t\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}"),
            "must be absolute"));
  CHECK(bad(SPEC("{\"id\":\"../x\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}", rootfs), "not a valid container id"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[]},\"logPath\":\"/l\"}", rootfs), "at least one argument"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"],\"env\":[\"NOEQ\"]},\"logPath\":\"/l\"}", rootfs), "KEY=VALUE"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"],\"cwd\":\"rel\"},\"logPath\":\"/l\"}", rootfs), "absolute"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[1]},\"logPath\":\"/l\"}", rootfs), "args[0]: expected a string"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]}}", rootfs), "logPath: required"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"resources\":{\"memory\":1000}}", rootfs), "6MB"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"resources\":{\"memory\":1.5}}", rootfs),
            "expected an integer"));
  CHECK(bad(
      SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"resources\":{\"memory\":4611686018427387904}}", rootfs),
      "spec.resources.memory: too large"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"resources\":{\"nanoCpus\":92233720368548}}", rootfs),
            "spec.resources.nanoCpus: too large"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"capAdd\":[\"NOPE\"]}", rootfs),
            "unknown capability: \"NOPE\""));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"network\":\"bridge\"}", rootfs),
            "unknown network mode"));
  /* a prepared namespace (bridge networks): joined by path, never a new one */
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"network\":{\"path\":\"rel/ns\"}}", rootfs),
            "spec.network.path: must be an absolute path"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"network\":{\"path\":\"/n\",\"x\":1}}", rootfs),
            "unknown key \"x\""));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"network\":{}}", rootfs),
            "spec.network.path: required"));
  {
    container_spec n;
    SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"network\":{\"path\":\"/run/tvm/netns/c\"}}", rootfs);
    jval *v = json_parse(j, strlen(j), err, sizeof err);
    CHECK(v && spec_parse(v, &n, err, sizeof err) == 0);
    CHECK(n.net_none == 0);
    CHECK_STR(n.netns_path, "/run/tvm/netns/c");
    spec_free(&n);
    json_free(v);
  }
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/"
                 "l\",\"mounts\":[{\"type\":\"bind\",\"source\":\"rel\",\"destination\":\"/x\"}]}",
                 rootfs),
            "source: must be an absolute path"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"mounts\":[{\"type\":\"bind\",\"source\":\"/"
                 "s\",\"destination\":\"/x/../..\"}]}",
                 rootfs),
            "\"..\""));
  CHECK(
      bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"mounts\":[{\"type\":\"nfs\",\"destination\":\"/x\"}]}",
               rootfs),
          "unknown mount type"));
  CHECK(bad(
      SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"cgroup\":{\"version\":3,\"root\":\"/r\",\"path\":\"p\"}}",
           rootfs),
      "1 or 2"));
  CHECK(bad(SPEC("{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"cgroup\":{\"version\":1,\"root\":\"/"
                 "r\",\"path\":\"../p\"}}",
                 rootfs),
            "relative without"));
  CHECK(bad("{\"id\":\"c\",\"rootfs\":{\"lower\":\"/a,b\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/"
            "t\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}",
            "must not contain"));

  /* paths the agent joins into fixed PATH_MAX buffers (cgroup dirs, <target>/proc, the overlay's
   * one-page mount data): too long is refused, never truncated into another path */
  {
    static char big[3 * 4096], longp[2100], j2[sizeof big + 4400];
    memset(longp, 'a', sizeof longp - 1);
    snprintf(
        big, sizeof big,
        "{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"cgroup\":{\"version\":1,\"root\":\"/r\",\"path\":\"%s\"}}",
        rootfs, longp);
    CHECK(bad(big, "spec.cgroup: root and path too long"));
    snprintf(big, sizeof big,
             "{\"id\":\"c\",\"rootfs\":{\"lower\":\"/%s\",\"upper\":\"/%s\",\"work\":\"/w\",\"target\":\"/"
             "t\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}",
             longp, longp);
    CHECK(bad(big, "spec.rootfs: lower, upper and work too long"));
    char longt[4000];
    memset(longt, 'a', sizeof longt - 1);
    longt[sizeof longt - 1] = 0;
    snprintf(j2, sizeof j2,
             "{\"id\":\"c\",\"rootfs\":{\"lower\":\"/l\",\"upper\":\"/u\",\"work\":\"/w\",\"target\":\"/"
             "%s\"},\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\"}",
             longt);
    CHECK(bad(j2, "spec.rootfs.target: too long"));
    /* a sysctl key becomes /proc/sys/<key> in a PATH_MAX buffer (hostopts_sysctls): Docker's
     * name rules let "net." + any length through the daemon */
    char key[4200];
    memset(key, 'a', sizeof key - 1);
    key[sizeof key - 1] = 0;
    memcpy(key, "net.", 4);
    snprintf(j2, sizeof j2, "{\"id\":\"c\",%s,\"process\":{\"args\":[\"a\"]},\"logPath\":\"/l\",\"sysctls\":{\"%s\":\"1\"}}", rootfs, key);
    CHECK(bad(j2, "spec.sysctls: key too long"));
  }

  /* Docker's capability rules */
  uint64_t m;
  const char *all[] = {"ALL"}, *chown_[] = {"CHOWN"}, *admin[] = {"SYS_ADMIN"};
  CHECK(caps_compute(NULL, 0, NULL, 0, 0, &m, err, sizeof err) == 0 && m == caps_docker_default());
  CHECK(__builtin_popcountll(caps_docker_default()) == 14);
  CHECK(caps_compute(all, 1, chown_, 1, 0, &m, err, sizeof err) == 0 && m == (caps_all() & ~(1ull << CAP_CHOWN)));
  CHECK(caps_compute(admin, 1, all, 1, 0, &m, err, sizeof err) == 0 && m == (1ull << CAP_SYS_ADMIN));
  /* as moby: drops apply to the defaults, adds come after, so adding and dropping one keeps it */
  CHECK(caps_compute(chown_, 1, chown_, 1, 0, &m, err, sizeof err) == 0 && m == caps_docker_default());
  CHECK(caps_compute(NULL, 0, all, 1, 1, &m, err, sizeof err) == 0 && m == caps_all());
  CHECK(cap_from_name("cap_sys_admin") == CAP_SYS_ADMIN && cap_from_name("Net_Raw") == CAP_NET_RAW);
  CHECK(cap_from_name("CHECKPOINT_RESTORE") == 40 && cap_from_name("FOO") == -1);
  CHECK_DONE("test_spec");
}
