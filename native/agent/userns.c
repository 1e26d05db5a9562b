#define _GNU_SOURCE
#include "userns.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define ERR(...)                                                                                                                           \
  do {                                                                                                                                     \
    snprintf(err, errlen, __VA_ARGS__);                                                                                                    \
    return -1;                                                                                                                             \
  } while (0)
#define MAX_ID 0xffffffffULL

static int parse_entry(const jval *e, id_map_entry *out, const char *where, size_t i, char *err, size_t errlen) {
  static const char *const keys[] = {"containerID", "hostID", "size"};
  if (!e || e->type != J_OBJ) ERR("%s[%zu]: expected an object", where, i);
  for (size_t k = 0; k < e->len; k++) {
    int known = 0;
    for (size_t j = 0; j < ARRAY_LEN(keys); j++) known |= strcmp(e->keys[k], keys[j]) == 0;
    if (!known) ERR("%s[%zu]: unknown key \"%s\"", where, i, e->keys[k]);
  }
  int64_t val[3];
  for (size_t j = 0; j < ARRAY_LEN(keys); j++) {
    const jval *v = json_get(e, keys[j]);
    if (!v || v->type != J_NUM || !v->is_int) ERR("%s[%zu].%s: expected an integer", where, i, keys[j]);
    if (v->i64 < 0 || (uint64_t)v->i64 > MAX_ID) ERR("%s[%zu].%s: outside the 32-bit id space", where, i, keys[j]);
    val[j] = v->i64;
  }
  if (val[2] < 1) ERR("%s[%zu].size: must be at least 1", where, i);
  if ((uint64_t)val[0] + (uint64_t)val[2] - 1 > MAX_ID || (uint64_t)val[1] + (uint64_t)val[2] - 1 > MAX_ID)
    ERR("%s[%zu]: range ends outside the 32-bit id space", where, i);
  out->container_id = (uint32_t)val[0];
  out->host_id = (uint32_t)val[1];
  out->size = (uint32_t)val[2];
  return 0;
}

static int overlaps(uint32_t a, uint32_t an, uint32_t b, uint32_t bn) {
  return (uint64_t)a < (uint64_t)b + bn && (uint64_t)b < (uint64_t)a + an;
}

static int parse_map(const jval *v, id_map_entry **out, size_t *n, const char *where, char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  if (!v || v->type != J_ARR) ERR("%s: expected an array", where);
  if (v->len == 0) ERR("%s: must not be empty", where);
  if (v->len > USERNS_MAX_LINES) ERR("%s: more than %d entries", where, USERNS_MAX_LINES);
  *out = calloc(v->len, sizeof **out);
  if (!*out) ERR("out of memory");
  for (size_t i = 0; i < v->len; i++) {
    if (parse_entry(&v->items[i], &(*out)[i], where, i, err, errlen) < 0) return -1;
    *n = i + 1;
    for (size_t k = 0; k < i; k++) {
      const id_map_entry *a = &(*out)[k], *b = &(*out)[i];
      if (overlaps(a->container_id, a->size, b->container_id, b->size) || overlaps(a->host_id, a->size, b->host_id, b->size))
        ERR("%s[%zu]: overlaps entry %zu", where, i, k);
    }
  }
  if (userns_to_host(*out, *n, 0) < 0) ERR("%s: container id 0 (root) is not mapped", where);
  return 0;
}

int userns_parse(const jval *v, userns_spec *u, const char *where, char *err, size_t errlen) {
  memset(u, 0, sizeof *u);
  if (!v || v->type == J_NULL) return 0;
  if (v->type != J_OBJ) ERR("%s: expected an object", where);
  for (size_t k = 0; k < v->len; k++)
    if (strcmp(v->keys[k], "uidMap") && strcmp(v->keys[k], "gidMap")) ERR("%s: unknown key \"%s\"", where, v->keys[k]);
  char w[128];
  snprintf(w, sizeof w, "%s.uidMap", where);
  if (parse_map(json_get(v, "uidMap"), &u->uid, &u->nuid, w, err, errlen) < 0) return -1;
  snprintf(w, sizeof w, "%s.gidMap", where);
  if (parse_map(json_get(v, "gidMap"), &u->gid, &u->ngid, w, err, errlen) < 0) return -1;
  return 0;
}

void userns_free(userns_spec *u) {
  free(u->uid);
  free(u->gid);
  memset(u, 0, sizeof *u);
}

int userns_format_map(const id_map_entry *m, size_t n, char *out, size_t outlen) {
  size_t len = 0;
  if (outlen) out[0] = 0;
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(out + len, outlen - len, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
    if (w < 0 || (size_t)w >= outlen - len) return -1;
    len += (size_t)w;
  }
  return (int)len;
}

int64_t userns_to_host(const id_map_entry *m, size_t n, uint32_t id) {
  for (size_t i = 0; i < n; i++)
    if (id >= m[i].container_id && (uint64_t)id < (uint64_t)m[i].container_id + m[i].size)
      return (int64_t)m[i].host_id + (id - m[i].container_id);
  return -1;
}

static int write_map(pid_t pid, const char *name, const id_map_entry *m, size_t n, char *err, size_t errlen) {
  /* 340 lines of three 10-digit numbers fit */
  static char buf[USERNS_MAX_LINES * 34 + 1];
  int len = userns_format_map(m, n, buf, sizeof buf);
  if (len < 0) ERR("%s: too many entries", name);
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) ERR("open %s: %s", path, strerror(errno));
  ssize_t w = write(fd, buf, (size_t)len);
  int e = errno;
  close(fd);
  if (w != len) ERR("write %s (\"%.*s\"): %s", path, len > 0 ? len - 1 : 0, buf, w < 0 ? strerror(e) : "short write");
  return 0;
}

int userns_write_maps(pid_t pid, const userns_spec *u, char *err, size_t errlen) {
  if (write_map(pid, "uid_map", u->uid, u->nuid, err, errlen) < 0) return -1;
  return write_map(pid, "gid_map", u->gid, u->ngid, err, errlen);
}

int userns_become_root(char *err, size_t errlen) {
  if (setgroups(0, NULL) < 0) ERR("setgroups in the user namespace: %s", strerror(errno));
  if (setresgid(0, 0, 0) < 0) ERR("setgid 0 in the user namespace: %s", strerror(errno));
  if (setresuid(0, 0, 0) < 0) ERR("setuid 0 in the user namespace: %s", strerror(errno));
  /* The uid change made us undumpable, and an undumpable process's /proc/self belongs to the
   * host's root, which the namespace cannot write (oom_score_adj, ...). As runc does, become
   * dumpable again: execve decides anew for the container's program. */
  if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0) ERR("set dumpable in the user namespace: %s", strerror(errno));
  return 0;
}
