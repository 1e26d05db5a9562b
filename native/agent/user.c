#include "user.h"
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Splits one colon-separated line into at most max fields (in place); returns the count. */
static int split(char *line, char **f, int max) {
  int n = 0;
  f[n++] = line;
  for (char *p = line; *p && n < max; p++)
    if (*p == ':') {
      *p = 0;
      f[n++] = p + 1;
    }
  return n;
}

static int parse_id(const char *s, unsigned long *out) {
  if (!*s) return -1;
  for (const char *p = s; *p; p++)
    if (*p < '0' || *p > '9') return -1;
  errno = 0;
  unsigned long v = strtoul(s, NULL, 10);
  if (errno || v > 0x7fffffffUL) return -1;
  *out = v;
  return 0;
}

/* Calls fn for each well-formed line; fn returns nonzero to stop. */
typedef int (*line_fn)(char **f, int n, void *ctx);
static int each_line(const char *text, int nfields, line_fn fn, void *ctx) {
  if (!text) return 0;
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    char line[4096];
    if (len < sizeof line && len > 0 && p[0] != '#') {
      memcpy(line, p, len);
      line[len] = 0;
      char *f[8];
      int n = split(line, f, nfields);
      if (n == nfields && fn(f, n, ctx)) return 1;
    }
    p += len;
    if (*p == '\n') p++;
  }
  return 0;
}

struct pw_ctx {
  const char *name;
  int by_id;
  unsigned long id;
  int found;
  unsigned long uid, gid;
  char home[256];
  char uname[256];
};
static int pw_match(char **f, int n, void *vctx) {
  (void)n;
  struct pw_ctx *c = vctx;
  unsigned long uid, gid;
  if (parse_id(f[2], &uid) < 0 || parse_id(f[3], &gid) < 0) return 0;
  if (c->by_id ? uid != c->id : strcmp(f[0], c->name) != 0) return 0;
  c->found = 1;
  c->uid = uid;
  c->gid = gid;
  snprintf(c->home, sizeof c->home, "%s", f[5]);
  snprintf(c->uname, sizeof c->uname, "%s", f[0]);
  return 1;
}

struct gr_ctx {
  const char *name;
  int by_id;
  unsigned long id;
  int found;
  unsigned long gid;
};
static int gr_match(char **f, int n, void *vctx) {
  (void)n;
  struct gr_ctx *c = vctx;
  unsigned long gid;
  if (parse_id(f[2], &gid) < 0) return 0;
  if (c->by_id ? gid != c->id : strcmp(f[0], c->name) != 0) return 0;
  c->found = 1;
  c->gid = gid;
  return 1;
}

struct sg_ctx {
  const char *user;
  exec_user *out;
};
static int sg_match(char **f, int n, void *vctx) {
  (void)n;
  struct sg_ctx *c = vctx;
  unsigned long gid;
  if (parse_id(f[2], &gid) < 0) return 0;
  char members[4096];
  snprintf(members, sizeof members, "%s", f[3]);
  for (char *save = NULL, *m = strtok_r(members, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
    if (strcmp(m, c->user) != 0) continue;
    int dup = 0;
    for (size_t i = 0; i < c->out->ngroups; i++) dup |= c->out->groups[i] == gid;
    if (!dup && c->out->ngroups < USER_MAX_GROUPS) c->out->groups[c->out->ngroups++] = (gid_t)gid;
  }
  return 0;
}

int user_resolve(const char *spec, const char *passwd, const char *group, exec_user *out, char *err, size_t errlen) {
  memset(out, 0, sizeof *out);
  snprintf(out->home, sizeof out->home, "/");
  char ubuf[256], *gspec = NULL;
  if (strlen(spec) >= sizeof ubuf) {
    snprintf(err, errlen, "user \"%s\" is too long", spec);
    return -1;
  }
  snprintf(ubuf, sizeof ubuf, "%s", spec);
  char *colon = strchr(ubuf, ':');
  if (colon) {
    *colon = 0;
    gspec = colon + 1;
  }
  const char *uspec = ubuf[0] ? ubuf : "0";

  struct pw_ctx pw = {0};
  unsigned long num;
  if (parse_id(uspec, &num) == 0) {
    pw.by_id = 1;
    pw.id = num;
    each_line(passwd, 7, pw_match, &pw);
    if (!pw.found) {
      pw.uid = num;
      pw.gid = 0;
    }
  } else {
    if (!passwd) {
      snprintf(err, errlen, "unable to find user %s: no matching entries in passwd file", uspec);
      return -1;
    }
    pw.name = uspec;
    each_line(passwd, 7, pw_match, &pw);
    if (!pw.found) {
      snprintf(err, errlen, "unable to find user %s: no matching entries in passwd file", uspec);
      return -1;
    }
  }
  out->uid = (uid_t)pw.uid;
  out->gid = (gid_t)pw.gid;
  if (pw.found && pw.home[0]) snprintf(out->home, sizeof out->home, "%s", pw.home);

  if (gspec && *gspec) {
    struct gr_ctx gr = {0};
    if (parse_id(gspec, &num) == 0) {
      out->gid = (gid_t)num;
    } else {
      gr.name = gspec;
      each_line(group, 4, gr_match, &gr);
      if (!gr.found) {
        snprintf(err, errlen, "unable to find group %s: no matching entries in group file", gspec);
        return -1;
      }
      out->gid = (gid_t)gr.gid;
    }
  }
  /* the primary group is in the supplementary list too, as runc sets it up */
  out->groups[out->ngroups++] = out->gid;
  if (!(gspec && *gspec) && pw.found) {
    struct sg_ctx sg = {pw.uname, out};
    each_line(group, 4, sg_match, &sg);
  }
  return 0;
}
