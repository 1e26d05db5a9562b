/* The container's filesystem, built inside its own mount namespace: overlay rootfs (lower = the
 * image's read-only base disk mount, upper/work in the state dir), /proc, /sys, /dev, user
 * mounts, then pivot_root. Everything here disappears with the mount namespace. */
#ifndef TVM_MOUNTS_H
#define TVM_MOUNTS_H
#include "spec.h"
#include <stddef.h>

/* Joins root and an untrusted in-container path, resolving symlinks as if root were "/", so
 * that no component escapes root. out receives the host path. */
int secure_join(const char *root, const char *unsafe, char *out, size_t outlen);
/* The overlay rootfs at spec target (in the caller's mount namespace). */
int rootfs_mount_overlay(const container_spec *s, char *err, size_t errlen);
/* Runs in the child, in its new mount namespace; returns 0 or -1 with err. */
int rootfs_setup(const container_spec *s, char *err, size_t errlen);
#endif
