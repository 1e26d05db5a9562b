#define _GNU_SOURCE
/* hostopts: strict parsing of the spec's process options, --group-add resolution, rlimits and
 * oom_score_adj applied for real in a child, and docker-init (init_main) reaping, forwarding
 * and passing on the child's status. */
#include "check.h"
#include "hostopts.h"
#include "init.h"
#include "json.h"
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse(const char *text, host_opts *o, char *err, size_t errlen) {
  jval *v = json_parse(text, strlen(text), err, errlen);
  if (!v) return -2;
  int rc = hostopts_parse(v, o, err, errlen);
  json_free(v);
  return rc;
}

/* runs init_main in a child with argv; returns its wait status */
static int run_init(char **argv, int argc, int sig_after_ms) {
  pid_t pid = fork();
  if (pid == 0) _exit(init_main(argc, argv));
  if (sig_after_ms) {
    usleep((useconds_t)sig_after_ms * 1000);
    kill(pid, SIGTERM);
  }
  int st;
  waitpid(pid, &st, 0);
  return st;
}

int main(void) {
  char err[256];
  host_opts o;
  CHECK(parse("{}", &o, err, sizeof err) == 0 && o.nulimits == 0 && !o.init && !o.has_oom_score_adj);
  hostopts_free(&o);
  CHECK(parse("{\"ulimits\":[{\"name\":\"nofile\",\"soft\":100,\"hard\":200},{\"name\":\"core\",\"soft\":-1,\"hard\":-1}],"
              "\"sysctls\":{\"net.ipv4.ip_forward\":\"1\"},\"shmSize\":1048576,\"init\":true,\"groupAdd\":[\"staff\",\"77\"],"
              "\"oomScoreAdj\":10,\"devices\":[{\"path\":\"/dev/null\",\"containerPath\":\"/dev/n\",\"permissions\":\"rw\"}],"
              "\"oomKillDisable\":true}",
              &o, err, sizeof err) == 0);
  CHECK(o.nulimits == 2 && o.ulimits[0].resource == RLIMIT_NOFILE && o.ulimits[0].soft == 100 && o.ulimits[1].hard == -1);
  CHECK(o.nsysctls == 1 && strcmp(o.sysctl_keys[0], "net.ipv4.ip_forward") == 0 && strcmp(o.sysctl_vals[0], "1") == 0);
  CHECK(o.shm_size == 1048576 && o.init && o.ngroup_add == 2 && o.has_oom_score_adj && o.oom_score_adj == 10);
  CHECK(o.ndevices == 1 && o.devices[0].major == 1 && o.devices[0].minor == 3 && strcmp(o.devices[0].perms, "rw") == 0);
  CHECK(o.oom_kill_disable && !o.has_masked_paths && !o.has_readonly_paths);

  /* --group-add: names through /etc/group, numbers as they are, duplicates once */
  exec_user u = {.uid = 0, .gid = 0, .ngroups = 1, .groups = {0}};
  CHECK(hostopts_groups(&o, "root:x:0:\nstaff:x:50:app\n", &u, err, sizeof err) == 0);
  CHECK(u.ngroups == 3 && u.groups[1] == 50 && u.groups[2] == 77);
  CHECK(hostopts_groups(&o, "root:x:0:\n", &u, err, sizeof err) < 0 && strstr(err, "Unable to find group staff"));

  /* rlimits and oom_score_adj for real, in a child */
  pid_t pid = fork();
  if (pid == 0) {
    if (hostopts_process(&o, err, sizeof err) < 0) {
      fprintf(stderr, "hostopts_process: %s\n", err);
      _exit(2);
    }
    struct rlimit r;
    getrlimit(RLIMIT_NOFILE, &r);
    if (r.rlim_cur != 100 || r.rlim_max != 200) _exit(3);
    getrlimit(RLIMIT_CORE, &r);
    if (r.rlim_cur != RLIM_INFINITY) _exit(4);
    FILE *f = fopen("/proc/self/oom_score_adj", "r");
    int adj = 0;
    if (!f || fscanf(f, "%d", &adj) != 1 || adj != 10) _exit(5);
    _exit(0);
  }
  int st;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  char **iv = hostopts_init_argv((char *[]){"sh", "-c", "x", NULL}, 3);
  CHECK(strcmp(iv[0], DOCKER_INIT_PATH) == 0 && strcmp(iv[1], "--") == 0 && strcmp(iv[2], "sh") == 0 && iv[5] == NULL);
  free(iv);
  hostopts_free(&o);

  /* masked/readonly paths: given lists replace Docker's (empty: systempaths=unconfined) */
  CHECK(parse("{\"maskedPaths\":[],\"readonlyPaths\":[\"/proc/sys\"]}", &o, err, sizeof err) == 0);
  CHECK(o.has_masked_paths && o.nmasked_paths == 0 && o.has_readonly_paths && o.nreadonly_paths == 1);
  hostopts_free(&o);
  CHECK(parse("{\"maskedPaths\":[\"proc/kcore\"]}", &o, err, sizeof err) < 0 && strstr(err, "spec.maskedPaths[0]"));
  hostopts_free(&o);

  /* bad input names the field */
  CHECK(parse("{\"ulimits\":[{\"name\":\"fds\",\"soft\":1,\"hard\":1}]}", &o, err, sizeof err) < 0 &&
        strstr(err, "invalid ulimit type: fds"));
  hostopts_free(&o);
  CHECK(parse("{\"ulimits\":[{\"name\":\"nofile\",\"soft\":5,\"hard\":1}]}", &o, err, sizeof err) < 0 && strstr(err, "soft limit"));
  hostopts_free(&o);
  CHECK(parse("{\"ulimits\":[{\"name\":\"nofile\",\"soft\":1,\"hard\":1,\"x\":1}]}", &o, err, sizeof err) < 0 &&
        strstr(err, "unknown key"));
  hostopts_free(&o);
  CHECK(parse("{\"oomScoreAdj\":1001}", &o, err, sizeof err) < 0 && strstr(err, "spec.oomScoreAdj"));
  hostopts_free(&o);
  CHECK(parse("{\"sysctls\":{\"../x\":\"1\"}}", &o, err, sizeof err) < 0 && strstr(err, "invalid key"));
  hostopts_free(&o);
  {
    /* a name longer than a path: refused, never cut into another file's name (or past the buffer) */
    static char body[2 * PATH_MAX];
    char key[PATH_MAX + 16];
    memset(key, 'a', sizeof key - 1);
    key[sizeof key - 1] = 0;
    memcpy(key, "net.", 4);
    snprintf(body, sizeof body, "{\"sysctls\":{\"%s\":\"1\"}}", key);
    CHECK(parse(body, &o, err, sizeof err) == 0 && o.nsysctls == 1);
    CHECK(hostopts_sysctls(&o, err, sizeof err) < 0 && strstr(err, "name too long"));
    hostopts_free(&o);
  }
  CHECK(parse("{\"devices\":[{\"path\":\"/nonexistent\",\"containerPath\":\"/dev/x\",\"permissions\":\"r\"}]}", &o, err, sizeof err) < 0 &&
        strstr(err, "error gathering device information"));
  hostopts_free(&o);
  CHECK(parse("{\"devices\":[{\"path\":\"/dev/null\",\"containerPath\":\"/dev/x\",\"permissions\":\"rx\"}]}", &o, err, sizeof err) < 0 &&
        strstr(err, "permissions"));
  hostopts_free(&o);

  /* docker-init: the child's exit status, 128+N for a signal, a forwarded SIGTERM, reaped orphans */
  st = run_init((char *[]){"docker-init", "--", "/bin/sh", "-c", "exit 7", NULL}, 5, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7);
  st = run_init((char *[]){"docker-init", "/bin/sh", "-c", "kill -9 $$", NULL}, 4, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 137);
  st = run_init((char *[]){"docker-init", "--", "/bin/sleep", "30", NULL}, 4, 200);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM);
  st = run_init((char *[]){"docker-init", "--", "/nonexistent", NULL}, 3, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 127);
  CHECK_DONE("test_hostopts");
}
