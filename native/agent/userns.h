/* The container's user namespace (spec.userns, set with `tvm daemon --userns-remap`): the id
 * maps, written by the agent into /proc/<child>/uid_map and gid_map while the child waits on
 * its sync pipe, and the child's switch to the namespace's root before it sets anything up. */
#ifndef TVM_USERNS_H
#define TVM_USERNS_H
#include "json.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* the kernel accepts at most this many lines in a uid_map/gid_map (since 4.15) */
#define USERNS_MAX_LINES 340

typedef struct {
  uint32_t container_id, host_id, size;
} id_map_entry;

typedef struct {
  id_map_entry *uid, *gid;
  size_t nuid, ngid; /* nuid == 0: no user namespace */
} userns_spec;

/* Parses {"uidMap": [{"containerID","hostID","size"}...], "gidMap": [...]}: ids within 32 bits,
 * no overlap on either side, container root (0) mapped in both. `where` names the object. */
int userns_parse(const jval *v, userns_spec *out, const char *where, char *err, size_t errlen);
void userns_free(userns_spec *u);
/* "container host size\n" per entry, as the kernel reads a map; returns the length or -1. */
int userns_format_map(const id_map_entry *m, size_t n, char *out, size_t outlen);
/* Host id of a container id, or -1 when it is not mapped. */
int64_t userns_to_host(const id_map_entry *m, size_t n, uint32_t id);
/* Writes the child's uid_map and gid_map (each in one write(), as the kernel requires). */
int userns_write_maps(pid_t pid, const userns_spec *u, char *err, size_t errlen);
/* In the child, once the maps exist: become the namespace's root (uid/gid 0, no supplementary
 * groups), so everything it creates is owned by the mapped root rather than the unmapped host root. */
int userns_become_root(char *err, size_t errlen);
#endif
