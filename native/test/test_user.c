#include "check.h"
#include "user.h"

static const char *passwd = "root:x:0:0:root:/root:/bin/sh\n"
                            "# comment\n"
                            "broken line\n"
                            "app:x:1000:1000:app:/home/app:/bin/sh\n"
                            "nohome:x:1001:1001:::/bin/sh\n";
static const char *group = "root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:other,app\n";

int main(void) {
  exec_user u;
  char err[200];
  CHECK(user_resolve("", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.uid == 0 && u.gid == 0);
  CHECK_STR(u.home, "/root");
  CHECK(u.ngroups == 1 && u.groups[0] == 0);

  CHECK(user_resolve("app", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.uid == 1000 && u.gid == 1000);
  CHECK_STR(u.home, "/home/app");
  CHECK(u.ngroups == 3 && u.groups[0] == 1000 && u.groups[1] == 50 && u.groups[2] == 10);

  CHECK(user_resolve("1000", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.uid == 1000 && u.gid == 1000);

  /* a uid not in passwd: gid 0, home / */
  CHECK(user_resolve("4242", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.uid == 4242 && u.gid == 0);
  CHECK_STR(u.home, "/");

  CHECK(user_resolve("app:staff", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.uid == 1000 && u.gid == 50 && u.ngroups == 1);
  CHECK(user_resolve("app:77", passwd, group, &u, err, sizeof err) == 0);
  CHECK(u.gid == 77);
  CHECK(user_resolve("nohome", passwd, group, &u, err, sizeof err) == 0);
  CHECK_STR(u.home, "/");

  CHECK(user_resolve("ghost", passwd, group, &u, err, sizeof err) == -1);
  CHECK_STR(err, "unable to find user ghost: no matching entries in passwd file");
  CHECK(user_resolve("app:ghosts", passwd, group, &u, err, sizeof err) == -1);
  CHECK_STR(err, "unable to find group ghosts: no matching entries in group file");
  /* no /etc/passwd: numeric works, names do not */
  CHECK(user_resolve("5:6", NULL, NULL, &u, err, sizeof err) == 0);
  CHECK(u.uid == 5 && u.gid == 6);
  CHECK(user_resolve("app", NULL, NULL, &u, err, sizeof err) == -1);
  /* out of range ids are names, and unknown */
  CHECK(user_resolve("99999999999", passwd, group, &u, err, sizeof err) == -1);
  CHECK_DONE("test_user");
}
