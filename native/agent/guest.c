/* PID 1 in the microVM guest: the kernel runs the agent as /init from the initramfs.
 *
 * It makes the guest a place the host agent's code can run unchanged: the basic mounts
 * (/proc, /sys, /dev, cgroup2, /run), the container's disk (/dev/vda: the image's base disk
 * through the container's qcow2 overlay, so writes land in the overlay and the base disk is
 * never written) mounted at GUEST_DISK_DIR, and the agent protocol on vsock port 1024 instead
 * of a unix socket. Then the ordinary supervisor loop serves the daemon; when it is told to
 * shut down, PID 1 syncs, unmounts and reboots, which both backends turn into the VM's exit
 * (QEMU -no-reboot; the i8042 reset in our VMM).
 *
 * pivot_root(2) refuses to move away from the initramfs (rootfs has no parent mount), and
 * every container's setup pivots; so before anything else the root is re-entered through a
 * recursive bind of itself moved over "/" (switch_root's trick without copying a byte). */
#define _GNU_SOURCE
#include "guest.h"
#include "supervisor.h"
#include "util.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <linux/vm_sockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Console lines the host watches for (boot timing, failure reasons in `docker inspect`). */
#define MARK "tvm-agent: "

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n > sizeof line - 2) n = sizeof line - 2;
  line[n++] = '\n';
  if (write(2, MARK, sizeof MARK - 1) < 0 || write(2, line, (size_t)n) < 0) {
    /* the console is the only place left to report to */
  }
}

static void power_off(void) {
  sync();
  umount2(GUEST_DISK_DIR, MNT_DETACH);
  sync();
  reboot(RB_AUTOBOOT);
  /* reboot failed: PID 1 must not exit (the kernel would panic, which also ends the VM, but
   * with a misleading message) */
  for (;;) pause();
}

static void fatal(const char *what) {
  say("fatal: %s: %s", what, strerror(errno));
  power_off();
}

long long guest_cmdline_time_ms(const char *cmdline) {
  const char *p = cmdline;
  while ((p = strstr(p, "tvm.time=")) != NULL) {
    if (p == cmdline || p[-1] == ' ') {
      char *end;
      errno = 0;
      long long v = strtoll(p + 9, &end, 10);
      if (errno || end == p + 9 || (*end && *end != ' ' && *end != '\n') || v <= 0) return 0;
      return v;
    }
    p += 9;
  }
  return 0;
}

/* The guest has no RTC on either backend: the host passes its clock on the command line, so
 * timestamps the agent writes (startedAt, log lines) are close to the host's. */
static void set_clock(void) {
  char *cmd = read_file("/proc/cmdline", NULL);
  if (!cmd) return;
  long long ms = guest_cmdline_time_ms(cmd);
  free(cmd);
  if (!ms) return;
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  if (clock_settime(CLOCK_REALTIME, &ts) < 0) say("set the clock: %s", strerror(errno));
}

static void mount_or_die(const char *src, const char *dst, const char *type, unsigned long flags, const char *data) {
  mkdir_p(dst, 0755);
  if (mount(src, dst, type, flags, data) < 0) {
    char what[256];
    snprintf(what, sizeof what, "mount %s on %s", type ? type : src, dst);
    fatal(what);
  }
}

static void reenter_root(void) {
  if (mkdir("/.root", 0700) < 0 && errno != EEXIST) fatal("mkdir /.root");
  if (mount("/", "/.root", NULL, MS_BIND | MS_REC, NULL) < 0) fatal("bind / on /.root");
  if (chdir("/.root") < 0) fatal("chdir /.root");
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) fatal("move /.root over /");
  if (chroot(".") < 0) fatal("chroot");
  if (chdir("/") < 0) fatal("chdir /");
}

static int listen_vsock(void) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_vm sa = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = GUEST_AGENT_PORT};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int guest_main(void) {
  say("init");
  reenter_root();
  mount_or_die("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mount_or_die("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mount_or_die("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  set_clock();
  /* the container's disk; ext4 errors remount it read-only rather than corrupting the overlay */
  mount_or_die("/dev/vda", GUEST_DISK_DIR, "ext4", MS_NOATIME, "errors=remount-ro");
  if (mkdir_p(GUEST_STATE_DIR, 0700) < 0) fatal("mkdir " GUEST_STATE_DIR);
  int lfd = listen_vsock();
  if (lfd < 0) fatal("listen on vsock port 1024");
  say("ready");
  supervisor_opts o = {GUEST_STATE_DIR, lfd, 0, GUEST_DISK_DIR};
  int rc = supervisor_run(&o);
  say("powering off (supervisor exited %d)", rc);
  power_off();
  return rc;
}
