/* docker update in the agent: the `update` request's resources (strict parsing, which keys it
 * sets) and cgroup_update's writes on fake v1 and v2 cgroupfs trees in a temp dir. (The kernel's
 * own checks, memsw ordering and EBUSY below the usage, are exercised on the real v1 hierarchy
 * by test/integration/api/restart-update-logs.test.ts.) */
#define _GNU_SOURCE
#include "cgroup.h"
#include "check.h"
#include "json.h"
#include "spec.h"
#include "util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

/* (re)creates an empty file: the agent's writes do not truncate, as on cgroupfs */
static void touch(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  FILE *f = fopen(p, "w");
  if (!f) {
    perror(p);
    exit(2);
  }
  fclose(f);
}

static char *get(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return read_file(p, NULL);
}

static int is(const char *rel, const char *want) {
  char *v = get(rel);
  int ok = v && strcmp(v, want) == 0;
  if (!ok) fprintf(stderr, "%s: \"%s\" != \"%s\"\n", rel, v ? v : "(missing)", want);
  free(v);
  return ok;
}

static void mk(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  if (mkdir_p(p, 0755) < 0) {
    perror(p);
    exit(2);
  }
}

static int parse(const char *json, resources_update *u, char *err, size_t errlen) {
  char perr[256];
  jval *v = json_parse(json, strlen(json), perr, sizeof perr);
  if (!v) {
    snprintf(err, errlen, "json: %s", perr);
    return -1;
  }
  int rc = resources_update_parse(v, u, err, errlen);
  json_free(v);
  return rc;
}

static void test_parse(void) {
  resources_update u;
  char err[256];
  CHECK(parse("{\"memory\":33554432,\"pidsLimit\":-1,\"cpusetCpus\":\"0\"}", &u, err, sizeof err) == 0);
  CHECK(u.set == (RES_MEMORY | RES_PIDS_LIMIT | RES_CPUSET_CPUS));
  CHECK(u.res.memory == 33554432 && u.res.pids_limit == -1);
  CHECK_STR(u.res.cpuset_cpus, "0");
  resources_update_free(&u);
  CHECK(parse("{\"memory\":1024}", &u, err, sizeof err) < 0);
  CHECK(strstr(err, "minimum memory limit allowed is 6MB") != NULL);
  resources_update_free(&u);
  CHECK(parse("{\"memroy\":1}", &u, err, sizeof err) < 0);
  CHECK(strstr(err, "unknown key \"memroy\"") != NULL);
  resources_update_free(&u);
  CHECK(parse("{\"cpusetCpus\":\"0;1\"}", &u, err, sizeof err) < 0);
  resources_update_free(&u);
  CHECK(parse("{\"memorySwap\":-2}", &u, err, sizeof err) < 0);
  resources_update_free(&u);
  /* the agent computes 2 * memory (default swap) and nanoCpus * the CFS period: values that
   * would overflow int64 are refused rather than written wrapped */
  CHECK(parse("{\"memory\":4611686018427387904}", &u, err, sizeof err) < 0);
  CHECK(strstr(err, "update.resources.memory: too large") != NULL);
  resources_update_free(&u);
  CHECK(parse("{\"memory\":4611686018427387903}", &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(parse("{\"nanoCpus\":92233720368548}", &u, err, sizeof err) < 0);
  CHECK(strstr(err, "update.resources.nanoCpus: too large") != NULL);
  resources_update_free(&u);
  CHECK(parse("{\"memorySwap\":9223372036854775807}", &u, err, sizeof err) < 0);
  resources_update_free(&u);
}

static void test_v1(void) {
  const char *files[] = {"memory/tvm/c1/memory.limit_in_bytes",
                         "memory/tvm/c1/memory.memsw.limit_in_bytes",
                         "memory/tvm/c1/memory.soft_limit_in_bytes",
                         "pids/tvm/c1/pids.max",
                         "cpu/tvm/c1/cpu.cfs_period_us",
                         "cpu/tvm/c1/cpu.cfs_quota_us",
                         "cpu/tvm/c1/cpu.shares",
                         "cpuset/tvm/c1/cpuset.cpus",
                         NULL};
  mk("memory/tvm/c1");
  mk("pids/tvm/c1");
  mk("cpu/tvm/c1");
  mk("cpuset/tvm/c1");
  for (int i = 0; files[i]; i++) touch(files[i]);
  container_spec s;
  memset(&s, 0, sizeof s);
  s.cgroup_version = 1;
  s.cgroup_root = root;
  s.cgroup_path = "tvm/c1";
  s.res.memory = 64 << 20;
  s.res.memory_swap = 128 << 20;
  s.res.pids_limit = 100;
  resources_update u;
  char err[512];
  CHECK(parse("{\"memory\":33554432,\"memorySwap\":67108864,\"pidsLimit\":20,\"nanoCpus\":500000000,\"cpuShares\":512,"
              "\"memoryReservation\":16777216,\"cpusetCpus\":\"0\"}",
              &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(is("memory/tvm/c1/memory.limit_in_bytes", "33554432"));
  CHECK(is("memory/tvm/c1/memory.memsw.limit_in_bytes", "67108864"));
  CHECK(is("memory/tvm/c1/memory.soft_limit_in_bytes", "16777216"));
  CHECK(is("pids/tvm/c1/pids.max", "20"));
  CHECK(is("cpu/tvm/c1/cpu.cfs_period_us", "100000"));
  CHECK(is("cpu/tvm/c1/cpu.cfs_quota_us", "50000"));
  CHECK(is("cpu/tvm/c1/cpu.shares", "512"));
  CHECK(is("cpuset/tvm/c1/cpuset.cpus", "0"));
  /* merged into the spec: what the container now runs with */
  CHECK(s.res.memory == 33554432 && s.res.memory_swap == 67108864 && s.res.pids_limit == 20 && s.res.nano_cpus == 500000000);
  CHECK_STR(s.res.cpuset_cpus, "0");

  /* only what the request sets is written; -1 lifts the pids limit */
  for (int i = 0; files[i]; i++) touch(files[i]);
  CHECK(parse("{\"pidsLimit\":-1}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(is("pids/tvm/c1/pids.max", "max"));
  CHECK(is("memory/tvm/c1/memory.limit_in_bytes", ""));
  CHECK(is("cpu/tvm/c1/cpu.shares", ""));

  /* memory alone keeps the recorded swap; a swap below the memory is refused before any write */
  CHECK(parse("{\"memory\":16777216}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(is("memory/tvm/c1/memory.limit_in_bytes", "16777216"));
  CHECK(is("memory/tvm/c1/memory.memsw.limit_in_bytes", "67108864"));
  for (int i = 0; files[i]; i++) touch(files[i]);
  CHECK(parse("{\"memory\":134217728}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) < 0);
  resources_update_free(&u);
  CHECK(strstr(err, "Minimum memoryswap limit should be larger than memory limit") != NULL);
  CHECK(is("memory/tvm/c1/memory.limit_in_bytes", ""));
  CHECK(s.res.memory == 16777216);

  /* a missing controller file is an error naming it, and the spec keeps its limits */
  char p[512];
  snprintf(p, sizeof p, "%s/pids/tvm/c1/pids.max", root);
  unlink(p);
  CHECK(parse("{\"pidsLimit\":5}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) < 0);
  resources_update_free(&u);
  CHECK(strstr(err, "pids.max") != NULL);
  CHECK(s.res.pids_limit == -1);
  free(s.res.cpuset_cpus);
}

static void test_v2(void) {
  const char *files[] = {"v2/tvm/c2/memory.max", "v2/tvm/c2/memory.swap.max", "v2/tvm/c2/memory.low",  "v2/tvm/c2/cpu.max",
                         "v2/tvm/c2/cpu.weight", "v2/tvm/c2/pids.max",        "v2/tvm/c2/cpuset.cpus", NULL};
  mk("v2/tvm/c2");
  for (int i = 0; files[i]; i++) touch(files[i]);
  char v2root[300];
  snprintf(v2root, sizeof v2root, "%s/v2", root);
  container_spec s;
  memset(&s, 0, sizeof s);
  s.cgroup_version = 2;
  s.cgroup_root = v2root;
  s.cgroup_path = "tvm/c2";
  resources_update u;
  char err[512];
  CHECK(parse("{\"memory\":33554432,\"memorySwap\":67108864,\"pidsLimit\":20,\"nanoCpus\":1500000000,\"cpuShares\":1024,"
              "\"memoryReservation\":16777216}",
              &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(is("v2/tvm/c2/memory.max", "33554432"));
  CHECK(is("v2/tvm/c2/memory.swap.max", "33554432")); /* swap alone: memory+swap - memory */
  CHECK(is("v2/tvm/c2/memory.low", "16777216"));
  CHECK(is("v2/tvm/c2/cpu.max", "150000 100000"));
  CHECK(is("v2/tvm/c2/cpu.weight", "100"));
  CHECK(is("v2/tvm/c2/pids.max", "20"));
  for (int i = 0; files[i]; i++) touch(files[i]);
  CHECK(parse("{\"memorySwap\":-1,\"pidsLimit\":0}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) == 0);
  resources_update_free(&u);
  CHECK(is("v2/tvm/c2/memory.swap.max", "max"));
  CHECK(is("v2/tvm/c2/pids.max", "max"));
  /* no cgroup (a guest without cgroupfs): refused */
  s.cgroup_version = 0;
  CHECK(parse("{\"pidsLimit\":3}", &u, err, sizeof err) == 0);
  CHECK(cgroup_update(&s, &u, err, sizeof err) < 0);
  resources_update_free(&u);
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/tvm-test-update-XXXXXX");
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 2;
  }
  test_parse();
  test_v1();
  test_v2();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0) return 2;
  CHECK_DONE("test_update");
}
