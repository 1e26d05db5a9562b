/* Resolves Docker's --user forms ('', name, uid, name:group, uid:gid, name:gid, uid:group)
 * against the container's /etc/passwd and /etc/group contents, as Docker does. */
#ifndef TVM_USER_H
#define TVM_USER_H
#include <stddef.h>
#include <sys/types.h>

#define USER_MAX_GROUPS 64

typedef struct {
  uid_t uid;
  gid_t gid;
  char home[256];
  gid_t groups[USER_MAX_GROUPS]; /* supplementary groups */
  size_t ngroups;
} exec_user;

/* passwd/group may be NULL (file missing). Returns 0 or -1 with Docker's message in err. */
int user_resolve(const char *spec, const char *passwd, const char *group, exec_user *out, char *err, size_t errlen);
#endif
