#define _GNU_SOURCE
#include "mounts.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define ERRNO(...) do { int e_ = errno; char m_[512]; snprintf(m_, sizeof m_, __VA_ARGS__); \
  snprintf(err, errlen, "%s: %s", m_, strerror(e_)); return -1; } while (0)

int secure_join(const char *root, const char *unsafe, char *out, size_t outlen) {
  /* rel: the resolved in-container path so far ("" = root); todo: what is left to walk */
  char rel[PATH_MAX] = "", todo[PATH_MAX];
  if (strlen(unsafe) >= sizeof todo) return -ENAMETOOLONG;
  snprintf(todo, sizeof todo, "%s", unsafe);
  int links = 0;
  char *p = todo;
  while (*p) {
    while (*p == '/') p++;
    if (!*p) break;
    char *slash = strchr(p, '/');
    size_t n = slash ? (size_t)(slash - p) : strlen(p);
    char comp[NAME_MAX + 1];
    if (n > NAME_MAX) return -ENAMETOOLONG;
    memcpy(comp, p, n);
    comp[n] = 0;
    p += n;
    if (strcmp(comp, ".") == 0) continue;
    if (strcmp(comp, "..") == 0) {
      char *last = strrchr(rel, '/');
      if (last) *last = 0;
      continue;
    }
    char cand[PATH_MAX], host[PATH_MAX];
    if ((size_t)snprintf(cand, sizeof cand, "%s/%s", rel, comp) >= sizeof cand) return -ENAMETOOLONG;
    snprintf(host, sizeof host, "%s%s", root, cand);
    struct stat st;
    if (lstat(host, &st) == 0 && S_ISLNK(st.st_mode)) {
      if (++links > 40) return -ELOOP;
      char target[PATH_MAX];
      ssize_t tl = readlink(host, target, sizeof target - 1);
      if (tl < 0) return -errno;
      target[tl] = 0;
      char rest[PATH_MAX];
      if ((size_t)snprintf(rest, sizeof rest, "%s/%s", target, p) >= sizeof rest) return -ENAMETOOLONG;
      snprintf(todo, sizeof todo, "%s", rest);
      p = todo;
      if (target[0] == '/') rel[0] = 0;
      continue;
    }
    snprintf(rel, sizeof rel, "%s", cand);
  }
  if ((size_t)snprintf(out, outlen, "%s%s", root, rel[0] ? rel : "") >= outlen) return -ENAMETOOLONG;
  return 0;
}

struct devnode { const char *name; mode_t mode; unsigned major, minor; };
static const struct devnode devnodes[] = {
  {"null", 0666, 1, 3}, {"zero", 0666, 1, 5}, {"full", 0666, 1, 7},
  {"random", 0666, 1, 8}, {"urandom", 0666, 1, 9}, {"tty", 0666, 5, 0},
};

/* Docker's masked and read-only paths, relative to the container root. */
static const char *const masked_paths[] = {
  "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
  "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
};
static const char *const readonly_paths[] = {
  "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

static int mount_dev(const char *root, char *err, size_t errlen) {
  char p[PATH_MAX];
  snprintf(p, sizeof p, "%s/dev", root);
  mkdir(p, 0755);
  if (mount("tmpfs", p, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") < 0) ERRNO("mount /dev");
  for (size_t i = 0; i < ARRAY_LEN(devnodes); i++) {
    const struct devnode *d = &devnodes[i];
    snprintf(p, sizeof p, "%s/dev/%s", root, d->name);
    mode_t old = umask(0);
    int rc = mknod(p, S_IFCHR | d->mode, makedev(d->major, d->minor));
    umask(old);
    if (rc < 0) {
      /* in a user namespace mknod is refused: bind the host's node instead */
      char host[64];
      snprintf(host, sizeof host, "/dev/%s", d->name);
      int fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      if (fd < 0) ERRNO("create %s", p);
      close(fd);
      if (mount(host, p, NULL, MS_BIND, NULL) < 0) ERRNO("bind %s", host);
    }
  }
  snprintf(p, sizeof p, "%s/dev/pts", root);
  mkdir(p, 0755);
  if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0)
    ERRNO("mount /dev/pts");
  snprintf(p, sizeof p, "%s/dev/shm", root);
  mkdir(p, 01777);
  if (mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0) ERRNO("mount /dev/shm");
  snprintf(p, sizeof p, "%s/dev/mqueue", root);
  mkdir(p, 0755);
  if (mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) ERRNO("mount /dev/mqueue");
  static const char *const links[][2] = {
    {"pts/ptmx", "ptmx"}, {"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"},
    {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"}, {"/proc/kcore", "core"},
  };
  for (size_t i = 0; i < ARRAY_LEN(links); i++) {
    snprintf(p, sizeof p, "%s/dev/%s", root, links[i][1]);
    if (symlink(links[i][0], p) < 0) ERRNO("symlink %s", p);
  }
  return 0;
}

/* Read-only remount of a bind mount keeping the flags it already has: in a user namespace the
 * kernel refuses to clear nosuid/nodev/noexec/atime flags locked by the mount's original owner
 * (EPERM), and a plain MS_RDONLY remount would clear them. */
static int remount_bind_ro(const char *path, unsigned long extra) {
  struct statvfs sv;
  if (statvfs(path, &sv) < 0) return -1;
  unsigned long fl = MS_REMOUNT | MS_BIND | MS_RDONLY | extra;
  static const struct { unsigned long st, ms; } keep[] = {
    {ST_NOSUID, MS_NOSUID}, {ST_NODEV, MS_NODEV}, {ST_NOEXEC, MS_NOEXEC}, {ST_NOATIME, MS_NOATIME},
    {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
  };
  for (size_t i = 0; i < ARRAY_LEN(keep); i++)
    if (sv.f_flag & keep[i].st) fl |= keep[i].ms;
  return mount(NULL, path, NULL, fl, NULL);
}

/* Creates the mount point: a directory, or an empty file when the source is a file. */
static int make_mountpoint(const char *path, int is_file) {
  if (!is_file) return mkdir_p(path, 0755);
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    int rc = mkdir_p(dir, 0755);
    if (rc < 0) return rc;
  }
  int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0 && errno != EISDIR) return -errno;
  if (fd >= 0) close(fd);
  return 0;
}

static int user_mounts(const container_spec *s, char *err, size_t errlen) {
  for (size_t i = 0; i < s->nmounts; i++) {
    const mount_spec *m = &s->mounts[i];
    char dest[PATH_MAX];
    int rc = secure_join(s->target, m->destination, dest, sizeof dest);
    if (rc < 0) { errno = -rc; ERRNO("mount destination %s", m->destination); }
    if (m->type == MOUNT_TMPFS) {
      if ((rc = make_mountpoint(dest, 0)) < 0) { errno = -rc; ERRNO("create mount point %s", m->destination); }
      unsigned long fl = MS_NOSUID | MS_NODEV | (m->readonly ? MS_RDONLY : 0);
      if (mount("tmpfs", dest, "tmpfs", fl, m->options) < 0) ERRNO("mount tmpfs on %s", m->destination);
      continue;
    }
    struct stat st;
    if (stat(m->source, &st) < 0) ERRNO("mount source %s", m->source);
    if ((rc = make_mountpoint(dest, !S_ISDIR(st.st_mode))) < 0) { errno = -rc; ERRNO("create mount point %s", m->destination); }
    if (mount(m->source, dest, NULL, MS_BIND | MS_REC, NULL) < 0) ERRNO("bind %s on %s", m->source, m->destination);
    /* MS_RDONLY is ignored on the bind itself: it takes a remount of the new mount */
    if (m->readonly && remount_bind_ro(dest, 0) < 0)
      ERRNO("remount %s read-only", m->destination);
  }
  return 0;
}

/* Docker's lists, or the spec's (HostConfig.MaskedPaths/ReadonlyPaths; empty with
 * --security-opt systempaths=unconfined). */
static int mask_paths(const host_opts *o, char *err, size_t errlen) {
  const char *const *masked = o->has_masked_paths ? (const char *const *)o->masked_paths : masked_paths;
  size_t nmasked = o->has_masked_paths ? o->nmasked_paths : ARRAY_LEN(masked_paths);
  const char *const *ro = o->has_readonly_paths ? (const char *const *)o->readonly_paths : readonly_paths;
  size_t nro = o->has_readonly_paths ? o->nreadonly_paths : ARRAY_LEN(readonly_paths);
  for (size_t i = 0; i < nmasked; i++) {
    struct stat st;
    if (stat(masked[i], &st) < 0) continue;
    int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY, NULL)
                                 : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
    if (rc < 0) ERRNO("mask %s", masked[i]);
  }
  for (size_t i = 0; i < nro; i++) {
    struct stat st;
    if (stat(ro[i], &st) < 0) continue;
    if (mount(ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL) < 0 || remount_bind_ro(ro[i], MS_REC) < 0)
      ERRNO("make %s read-only", ro[i]);
  }
  return 0;
}

int rootfs_mount_overlay(const container_spec *s, char *err, size_t errlen) {
  char opts[3 * PATH_MAX + 64];
  if (!s->upper) {
    int rc = mkdir_p(s->target, 0755);
    if (rc < 0 && rc != -EEXIST) { errno = -rc; ERRNO("mkdir %s", s->target); }
    if (mount(s->lower, s->target, NULL, MS_BIND | MS_REC, NULL) < 0) ERRNO("bind the rootfs %s", s->lower);
    return 0;
  }
  snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", s->lower, s->upper, s->work);
  if (mount("overlay", s->target, "overlay", 0, opts) < 0) ERRNO("mount overlay rootfs (%s)", opts);
  return 0;
}

int rootfs_setup(const container_spec *s, char *err, size_t errlen) {
  char p[PATH_MAX];
  /* nothing we mount may propagate back to the host */
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) ERRNO("make / private");
  /* with a user namespace the agent has mounted it already, from the host's user namespace */
  if (!s->userns.nuid && rootfs_mount_overlay(s, err, errlen) < 0) return -1;

  snprintf(p, sizeof p, "%s/proc", s->target);
  mkdir(p, 0555);
  if (mount("proc", p, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) ERRNO("mount /proc");
  snprintf(p, sizeof p, "%s/sys", s->target);
  mkdir(p, 0555);
  unsigned long sysfl = MS_NOSUID | MS_NODEV | MS_NOEXEC | (s->privileged ? 0 : MS_RDONLY);
  if (mount("sysfs", p, "sysfs", sysfl, NULL) < 0) {
    /* sysfs cannot be mounted without owning the network namespace: bind the host's instead */
    if (mount("/sys", p, NULL, MS_BIND | MS_REC, NULL) < 0) ERRNO("mount /sys");
    if (!s->privileged && remount_bind_ro(p, 0) < 0) ERRNO("remount /sys read-only");
  }
  if (mount_dev(s->target, err, errlen) < 0) return -1;
  /* before the user's mounts, so a user mount at /dev/shm (or over /dev) wins, as in Docker */
  if (hostopts_rootfs(&s->opts, s->target, s->userns.nuid != 0, err, errlen) < 0) return -1;
  if (user_mounts(s, err, errlen) < 0) return -1;
  if (hostopts_init_mount(&s->opts, s->target, err, errlen) < 0) return -1;

  if (chdir(s->target) < 0) ERRNO("chdir %s", s->target);
  /* pivot_root(".", "."): the old root ends up stacked on the new one and is lazily detached */
  if (syscall(SYS_pivot_root, ".", ".") < 0) ERRNO("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) ERRNO("detach the old root");
  if (chdir("/") < 0) ERRNO("chdir /");
  /* --sysctl: written in the container's own ipc/net namespaces, before /proc/sys goes read-only */
  if (hostopts_sysctls(&s->opts, err, errlen) < 0) return -1;
  if (!s->privileged && mask_paths(&s->opts, err, errlen) < 0) return -1;
  if (s->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    ERRNO("remount / read-only");
  return 0;
}
