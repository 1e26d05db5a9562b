/* `tvm-agent run`: argument parsing and Docker's exit status from a wait status. */
#define _GNU_SOURCE
#include "check.h"
#include "run.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int parse(int argc, char *const argv[], run_args *a, char *err) {
  err[0] = 0;
  return run_parse_args(argc, argv, a, err, 256);
}

static void test_args(void) {
  run_args a;
  char err[256];
  char *const ok[] = {"run", "--spec", "/s.json", "--state-dir", "/st"};
  CHECK(parse(5, ok, &a, err) == 0);
  CHECK_STR(a.spec_path, "/s.json");
  CHECK_STR(a.state_dir, "/st");
  char *const only[] = {"run", "--spec", "s.json"};
  CHECK(parse(3, only, &a, err) == 0);
  CHECK(a.state_dir == NULL);

  char *const upd[] = {"update", "--resources", "{\"pidsLimit\":5}", "--spec", "s.json"};
  CHECK(parse(5, upd, &a, err) == 0);
  CHECK_STR(a.resources, "{\"pidsLimit\":5}");
  CHECK_STR(a.spec_path, "s.json");
  CHECK(a.state_dir == NULL);

  char *const none[] = {"run"};
  CHECK(parse(1, none, &a, err) == -1);
  CHECK(strstr(err, "--spec FILE is required") != NULL);
  char *const dangling[] = {"run", "--spec"};
  CHECK(parse(2, dangling, &a, err) == -1);
  CHECK(strstr(err, "--spec needs a value") != NULL);
  char *const empty[] = {"run", "--spec", ""};
  CHECK(parse(3, empty, &a, err) == -1);
  char *const twice[] = {"run", "--spec", "a", "--spec", "b"};
  CHECK(parse(5, twice, &a, err) == -1);
  CHECK(strstr(err, "given twice") != NULL);
  char *const unknown[] = {"run", "--spec", "a", "--detach"};
  CHECK(parse(4, unknown, &a, err) == -1);
  CHECK(strstr(err, "\"--detach\"") != NULL);
}

/* The wait status of a real child that exits with code or dies of sig. */
static int status_of(int code, int sig) {
  pid_t pid = fork();
  if (pid == 0) {
    if (sig) {
      signal(sig, SIG_DFL);
      raise(sig);
    }
    _exit(code);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

static void test_exit_codes(void) {
  CHECK(run_exit_code(status_of(0, 0)) == 0);
  CHECK(run_exit_code(status_of(3, 0)) == 3);
  CHECK(run_exit_code(status_of(255, 0)) == 255);
  CHECK(run_exit_code(status_of(0, SIGKILL)) == 137); /* also what an OOM kill gives */
  CHECK(run_exit_code(status_of(0, SIGTERM)) == 143);
  CHECK(run_exit_code(status_of(0, SIGINT)) == 130);
}

int main(void) {
  test_args();
  test_exit_codes();
  CHECK_DONE("test_run");
}
