#define _GNU_SOURCE
#include "mounts.h"
#include "util.h"
#include <dirent.h>
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

#define ERRNO(...)                                                                                                                         \
  do {                                                                                                                                     \
    int e_ = errno;                                                                                                                        \
    char m_[512];                                                                                                                          \
    snprintf(m_, sizeof m_, __VA_ARGS__);                                                                                                  \
    snprintf(err, errlen, "%s: %s", m_, strerror(e_));                                                                                     \
    return -1;                                                                                                                             \
  } while (0)

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

struct devnode {
  const char *name;
  mode_t mode;
  unsigned major, minor;
};
static const struct devnode devnodes[] = {
    {"null", 0666, 1, 3}, {"zero", 0666, 1, 5}, {"full", 0666, 1, 7}, {"random", 0666, 1, 8}, {"urandom", 0666, 1, 9}, {"tty", 0666, 5, 0},
};

/* Docker's masked and read-only paths, relative to the container root. */
static const char *const masked_paths[] = {
    "/proc/asound",      "/proc/acpi",        "/proc/kcore", "/proc/keys",    "/proc/latency_stats",           "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",  "/sys/firmware", "/sys/devices/virtual/powercap",
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
  if (mount("devpts", p, "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5") < 0) ERRNO("mount /dev/pts");
  snprintf(p, sizeof p, "%s/dev/shm", root);
  mkdir(p, 01777);
  if (mount("shm", p, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0) ERRNO("mount /dev/shm");
  snprintf(p, sizeof p, "%s/dev/mqueue", root);
  mkdir(p, 0755);
  if (mount("mqueue", p, "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) ERRNO("mount /dev/mqueue");
  static const char *const links[][2] = {
      {"pts/ptmx", "ptmx"},          {"/proc/self/fd", "fd"},       {"/proc/self/fd/0", "stdin"},
      {"/proc/self/fd/1", "stdout"}, {"/proc/self/fd/2", "stderr"},
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
  static const struct {
    unsigned long st, ms;
  } keep[] = {
      {ST_NOSUID, MS_NOSUID},   {ST_NODEV, MS_NODEV},           {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME},
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

/* Docker's tmpfs options mix mount flags (noexec, nosuid, ro, ...) with tmpfs data (size, mode):
 * the flags go to mount(2)'s flags, the rest to its data (tmpfs refuses flag words there). Later
 * words win (the daemon puts Docker's defaults noexec,nosuid,nodev first); propagation words are
 * dropped (every container mount is private here). Returns -1 if data does not fit. */
static int tmpfs_options(const char *opts, unsigned long *fl, char *data, size_t datalen) {
  static const struct {
    const char *name;
    unsigned long flag;
    int set;
  } words[] = {
      {"noexec", MS_NOEXEC, 1},
      {"exec", MS_NOEXEC, 0},
      {"nosuid", MS_NOSUID, 1},
      {"suid", MS_NOSUID, 0},
      {"nodev", MS_NODEV, 1},
      {"dev", MS_NODEV, 0},
      {"ro", MS_RDONLY, 1},
      {"rw", MS_RDONLY, 0},
      {"noatime", MS_NOATIME, 1},
      {"atime", MS_NOATIME, 0},
      {"nodiratime", MS_NODIRATIME, 1},
      {"diratime", MS_NODIRATIME, 0},
      {"relatime", MS_RELATIME, 1},
      {"norelatime", MS_RELATIME, 0},
      {"strictatime", MS_STRICTATIME, 1},
      {"nostrictatime", MS_STRICTATIME, 0},
      {"sync", MS_SYNCHRONOUS, 1},
      {"async", MS_SYNCHRONOUS, 0},
      {"dirsync", MS_DIRSYNC, 1},
      {"mand", MS_MANDLOCK, 1},
      {"nomand", MS_MANDLOCK, 0},
  };
  static const char *const propagation[] = {"private", "rprivate",   "shared",      "rshared", "slave",
                                            "rslave",  "unbindable", "runbindable", NULL};
  data[0] = 0;
  if (!opts) return 0;
  const char *p = opts;
  while (*p) {
    size_t n = strcspn(p, ",");
    int known = 0;
    for (size_t i = 0; i < sizeof words / sizeof words[0] && !known; i++) {
      if (strlen(words[i].name) == n && !strncmp(p, words[i].name, n)) {
        if (words[i].set) *fl |= words[i].flag;
        else *fl &= ~words[i].flag;
        known = 1;
      }
    }
    for (size_t i = 0; propagation[i] && !known; i++)
      if (strlen(propagation[i]) == n && !strncmp(p, propagation[i], n)) known = 1;
    if (!known && n > 0) {
      size_t used = strlen(data);
      if (used + n + 2 > datalen) return -1;
      if (used) strcat(data, ",");
      strncat(data, p, n);
    }
    p += n;
    if (*p == ',') p++;
  }
  return 0;
}

static int user_mounts(const container_spec *s, char *err, size_t errlen) {
  for (size_t i = 0; i < s->nmounts; i++) {
    const mount_spec *m = &s->mounts[i];
    char dest[PATH_MAX];
    int rc = secure_join(s->target, m->destination, dest, sizeof dest);
    if (rc < 0) {
      errno = -rc;
      ERRNO("mount destination %s", m->destination);
    }
    if (m->type == MOUNT_TMPFS) {
      if ((rc = make_mountpoint(dest, 0)) < 0) {
        errno = -rc;
        ERRNO("create mount point %s", m->destination);
      }
      unsigned long fl = MS_NOSUID | MS_NODEV;
      char data[4096];
      if (tmpfs_options(m->options, &fl, data, sizeof data) < 0) {
        errno = E2BIG;
        ERRNO("tmpfs options for %s", m->destination);
      }
      if (m->readonly) fl |= MS_RDONLY;
      if (mount("tmpfs", dest, "tmpfs", fl, data[0] ? data : NULL) < 0) ERRNO("mount tmpfs on %s", m->destination);
      continue;
    }
    struct stat st;
    if (stat(m->source, &st) < 0) ERRNO("mount source %s", m->source);
    if ((rc = make_mountpoint(dest, !S_ISDIR(st.st_mode))) < 0) {
      errno = -rc;
      ERRNO("create mount point %s", m->destination);
    }
    if (mount(m->source, dest, NULL, MS_BIND | MS_REC, NULL) < 0) ERRNO("bind %s on %s", m->source, m->destination);
    /* MS_RDONLY is ignored on the bind itself: it takes a remount of the new mount */
    if (m->readonly && remount_bind_ro(dest, 0) < 0) ERRNO("remount %s read-only", m->destination);
  }
  return 0;
}

/* /sys/fs/cgroup as Docker gives it, so runtimes that size themselves from their cgroup (JVM,
 * Go, Node) see the container's limits: the container's own group as the root of the view,
 * read-only unless privileged. v1: a tmpfs with each hierarchy's group bound under its name
 * (what the host mounts over /sys/fs/cgroup stays hidden); v2: the group's directory itself. */
static int mount_cgroupfs(const container_spec *s, char *err, size_t errlen) {
  if (s->cgroup_version == 0 || !s->cgroup_root || !s->cgroup_path) return 0;
  char dst[PATH_MAX], src[PATH_MAX];
  snprintf(dst, sizeof dst, "%s/sys/fs/cgroup", s->target);
  unsigned long ro = s->privileged ? 0 : MS_RDONLY;
  if (s->cgroup_version == 2) {
    snprintf(src, sizeof src, "%s/%s", s->cgroup_root, s->cgroup_path);
    if (mount(src, dst, NULL, MS_BIND, NULL) < 0) ERRNO("bind the container's cgroup on /sys/fs/cgroup");
    if (ro && remount_bind_ro(dst, 0) < 0) ERRNO("remount /sys/fs/cgroup read-only");
    return 0;
  }
  if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755") < 0) ERRNO("mount tmpfs on /sys/fs/cgroup");
  DIR *d = opendir(s->cgroup_root);
  if (!d) ERRNO("open %s", s->cgroup_root);
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    struct stat st;
    snprintf(src, sizeof src, "%s/%s/%s", s->cgroup_root, e->d_name, s->cgroup_path);
    /* a co-mounted pair (cpu,cpuacct) appears as a symlink: link it as the host does */
    char host[PATH_MAX];
    snprintf(host, sizeof host, "%s/%s", s->cgroup_root, e->d_name);
    if (lstat(host, &st) == 0 && S_ISLNK(st.st_mode)) {
      char target[PATH_MAX];
      ssize_t n = readlink(host, target, sizeof target - 1);
      if (n > 0) {
        target[n] = 0;
        snprintf(dst, sizeof dst, "%s/sys/fs/cgroup/%s", s->target, e->d_name);
        if (symlink(target, dst) < 0) rc = -1;
      }
      continue;
    }
    if (stat(src, &st) < 0 || !S_ISDIR(st.st_mode)) continue; /* a hierarchy we have no group in */
    snprintf(dst, sizeof dst, "%s/sys/fs/cgroup/%s", s->target, e->d_name);
    if (mkdir(dst, 0755) < 0 || mount(src, dst, NULL, MS_BIND, NULL) < 0 || (ro && remount_bind_ro(dst, 0) < 0)) rc = -1;
  }
  int saved = errno;
  closedir(d);
  errno = saved;
  if (rc < 0) ERRNO("mount %s", dst);
  /* the tmpfs itself stays writable, as dockerd's (v1): only the groups are read-only */
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
    int rc = S_ISDIR(st.st_mode) ? mount("tmpfs", masked[i], "tmpfs", MS_RDONLY, NULL) : mount("/dev/null", masked[i], NULL, MS_BIND, NULL);
    if (rc < 0) ERRNO("mask %s", masked[i]);
  }
  for (size_t i = 0; i < nro; i++) {
    struct stat st;
    if (stat(ro[i], &st) < 0) continue;
    if (mount(ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL) < 0 || remount_bind_ro(ro[i], MS_REC) < 0) ERRNO("make %s read-only", ro[i]);
  }
  return 0;
}

int rootfs_mount_overlay(const container_spec *s, char *err, size_t errlen) {
  char opts[3 * PATH_MAX + 64];
  if (!s->upper) {
    int rc = mkdir_p(s->target, 0755);
    if (rc < 0 && rc != -EEXIST) {
      errno = -rc;
      ERRNO("mkdir %s", s->target);
    }
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
  if (mount_cgroupfs(s, err, errlen) < 0) return -1;
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
  if (s->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) ERRNO("remount / read-only");
  return 0;
}
