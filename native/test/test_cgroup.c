/* cgroup v2 logic without a cgroup2 mount: the shares -> weight conversion, controller lists,
 * and the readers, freezer and cleanup run against a fake cgroupfs tree in a temp dir. (The
 * real limits are proven in our guest kernel: test/integration/agent/cgroup-v2-tcg.test.ts.) */
#define _GNU_SOURCE
#include "cgroup.h"
#include "check.h"
#include "util.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[256];

static void put(const char *rel, const char *content) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  FILE *f = fopen(p, "w");
  if (!f) {
    perror(p);
    exit(2);
  }
  fputs(content, f);
  fclose(f);
}

static char *get(const char *rel) {
  char p[512];
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return read_file(p, NULL);
}

static int present(const char *rel) {
  char p[512];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", root, rel);
  return stat(p, &st) == 0;
}

static void rm_tree(const char *rel) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s/%s'", root, rel);
  if (system(cmd) != 0) exit(2);
}

static container_spec v2_spec(void) {
  container_spec s;
  memset(&s, 0, sizeof s);
  s.cgroup_version = 2;
  s.cgroup_root = root;
  s.cgroup_path = "tvm/c1";
  return s;
}

static void test_weight(void) {
  /* the fixed points of the conversion: ends, v1 default -> v2 default */
  CHECK(cgroup_shares_to_weight(0) == 0);
  CHECK(cgroup_shares_to_weight(1) == 1);
  CHECK(cgroup_shares_to_weight(2) == 1);
  CHECK(cgroup_shares_to_weight(1024) == 100);
  CHECK(cgroup_shares_to_weight(262144) == 10000);
  CHECK(cgroup_shares_to_weight(1 << 20) == 10000);
  /* values runc >= 1.3.2 gives (runc issue 4896: 2000 -> 170) */
  CHECK(cgroup_shares_to_weight(2000) == 170);
  CHECK(cgroup_shares_to_weight(512) == 59);
  CHECK(cgroup_shares_to_weight(3) == 2);
  CHECK(cgroup_shares_to_weight(262143) == 10000);
  /* monotonic over the whole range, inside [1, 10000] */
  int64_t prev = 1, bad = 0;
  for (int64_t sh = 2; sh <= 262144; sh++) {
    int64_t w = cgroup_shares_to_weight(sh);
    if (w < prev || w < 1 || w > 10000) bad++;
    prev = w;
  }
  CHECK(bad == 0);
}

static void test_list_has(void) {
  CHECK(cgroup_list_has("cpuset cpu io memory pids\n", "cpu"));
  CHECK(cgroup_list_has("cpuset cpu io memory pids\n", "pids"));
  CHECK(cgroup_list_has("cpuset cpu io memory pids\n", "cpuset"));
  CHECK(!cgroup_list_has("cpuset io memory pids\n", "cpu"));
  CHECK(!cgroup_list_has("cpuset io hugetlb\n", "memory"));
  CHECK(!cgroup_list_has("misc_pids\n", "pids"));
  CHECK(!cgroup_list_has("", "cpu"));
}

static void test_stats(void) {
  container_spec s = v2_spec();
  CHECK(mkdir_p(root, 0755) == 0 || errno == EEXIST);
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tvm/c1", root);
  CHECK(mkdir_p(dir, 0755) == 0);
  put("tvm/c1/memory.current", "1234567\n");
  put("tvm/c1/memory.max", "16777216\n");
  put("tvm/c1/memory.peak", "2345678\n");
  put("tvm/c1/cpu.stat",
      "usage_usec 1264079\nuser_usec 1068066\nsystem_usec 196012\nnr_periods 25\nnr_throttled 25\nthrottled_usec 1204069\n");
  put("tvm/c1/pids.current", "3\n");
  put("tvm/c1/pids.max", "8\n");
  put("tvm/c1/memory.events", "low 0\nhigh 0\nmax 53\noom 2\noom_kill 1\noom_group_kill 0\n");
  put("tvm/c1/cgroup.procs", "41\n44\n");
  cgroup_stats st;
  CHECK(cgroup_stats_read(&s, &st) == 0);
  CHECK(st.mem_usage == 1234567);
  CHECK(st.mem_limit == 16777216);
  CHECK(st.mem_max_usage == 2345678);
  CHECK(st.cpu_usage_ns == 1264079000LL);
  CHECK(st.pids_current == 3);
  CHECK(st.pids_limit == 8);
  CHECK(cgroup_oom_kills(&s) == 1);
  pid_t pids[4];
  CHECK(cgroup_pids(&s, pids, 4) == 2);
  CHECK(pids[0] == 41 && pids[1] == 44);

  /* unlimited reads as -1; a kernel before 5.19 has no memory.peak: -1, not 0 or garbage */
  put("tvm/c1/memory.max", "max\n");
  put("tvm/c1/pids.max", "max\n");
  char p[600];
  snprintf(p, sizeof p, "%s/memory.peak", dir);
  unlink(p);
  CHECK(cgroup_stats_read(&s, &st) == 0);
  CHECK(st.mem_limit == -1);
  CHECK(st.pids_limit == -1);
  CHECK(st.mem_max_usage == -1);
  /* oom_kill is matched as a key, not as a prefix of oom_group_kill */
  put("tvm/c1/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_group_kill 5\noom_kill 0\n");
  CHECK(cgroup_oom_kills(&s) == 0);
  rm_tree("tvm");
}

static void test_freeze(void) {
  container_spec s = v2_spec();
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tvm/c1", root);
  CHECK(mkdir_p(dir, 0755) == 0);
  put("tvm/c1/cgroup.freeze", "0\n");
  put("tvm/c1/cgroup.events", "populated 1\nfrozen 1\n");
  char err[512] = "";
  CHECK(cgroup_freeze(&s, 1, err, sizeof err) == 0);
  char *v = get("tvm/c1/cgroup.freeze");
  CHECK(v && v[0] == '1');
  free(v);
  /* the kernel never reports frozen: a clear error naming the group, not a hang */
  put("tvm/c1/cgroup.events", "populated 1\nfrozen 0\n");
  CHECK(cgroup_freeze(&s, 1, err, sizeof err) == -1);
  CHECK(strstr(err, "did not freeze") != NULL && strstr(err, "tvm/c1") != NULL);
  put("tvm/c1/cgroup.events", "populated 0\nfrozen 0\n");
  CHECK(cgroup_freeze(&s, 0, err, sizeof err) == 0);
  rm_tree("tvm");
}

static void test_create_failure_and_destroy(void) {
  /* A tree whose new group has no knob files, as if a controller could not be enabled: the
   * error names the file, and nothing of the container's group is left behind. */
  container_spec s = v2_spec();
  s.privileged = 1; /* no device program: this is not a cgroup2 mount */
  s.res.memory = 16 << 20;
  put("cgroup.controllers", "cpuset cpu io memory pids\n");
  put("cgroup.subtree_control", "");
  char err[512] = "";
  CHECK(cgroup_create(&s, err, sizeof err) == -1);
  CHECK(strstr(err, "memory.max") != NULL && strstr(err, "16777216") != NULL);
  CHECK(present("tvm"));
  CHECK(!present("tvm/c1"));
  /* the root was asked to delegate (the last write of the four is what a plain file keeps) */
  char *sub = get("cgroup.subtree_control");
  CHECK(sub && strncmp(sub, "+cpuset", 7) == 0);
  free(sub);

  /* an existing group is refused and left alone */
  char dir[512];
  snprintf(dir, sizeof dir, "%s/tvm/c1", root);
  CHECK(mkdir_p(dir, 0755) == 0);
  CHECK(cgroup_create(&s, err, sizeof err) == -1);
  CHECK(strstr(err, "already exists") != NULL);
  CHECK(present("tvm/c1"));
  /* destroy removes the empty group */
  CHECK(cgroup_destroy(&s) == 0);
  CHECK(!present("tvm/c1"));
  CHECK(cgroup_destroy(&s) == 0);
  rm_tree("tvm");
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/tvm-test-cgroup-%d", (int)getpid());
  if (mkdir(root, 0755) < 0) {
    perror(root);
    return 2;
  }
  test_weight();
  test_list_has();
  test_stats();
  test_freeze();
  test_create_failure_and_destroy();
  rm_tree("");
  CHECK_DONE("test_cgroup");
}
