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
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <linux/fs.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* lo always (the workload shares the guest's network namespace); eth0 as the host's endpoint
 * was: its MAC, address and default route (the host joined the endpoint to this NIC's tap). A
 * failure is reported on the console and leaves the guest without that part of its network. */
static void setup_network(void) {
  char err[512];
  if (guest_net_init(err, sizeof err) < 0) say("network: %s", err);
  char *cmd = read_file("/proc/cmdline", NULL);
  guest_net n;
  int have = cmd ? guest_cmdline_net(cmd, &n) : 0;
  free(cmd);
  if (have < 0) say("network: malformed tvm.net= on the command line");
  if (have > 0 && guest_nic_up("eth0", &n, err, sizeof err) < 0) say("network: %s", err);
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

#ifndef EXT4_IOC_RESIZE_FS
#define EXT4_IOC_RESIZE_FS _IOW('f', 16, uint64_t)
#endif

/* ext4 superblock fields (at byte 1024 of the disk) this needs */
#define SB_OFFSET 1024
#define SB_BLOCKS_COUNT_LO 0x04
#define SB_LOG_BLOCK_SIZE 0x18
#define SB_BLOCKS_COUNT_HI 0x150

/* `--storage-opt size=` made the container's overlay larger than the image's filesystem: grow
 * the filesystem online to the whole disk (the kernel converts to meta_bg where it must). A
 * failure leaves the image's size, which still works, and says so. */
static void grow_disk(void) {
  int dev = open("/dev/vda", O_RDONLY | O_CLOEXEC);
  if (dev < 0) return;
  uint64_t bytes = 0;
  unsigned char sb[0x200];
  int ok = ioctl(dev, BLKGETSIZE64, &bytes) == 0 && pread(dev, sb, sizeof sb, SB_OFFSET) == (ssize_t)sizeof sb;
  close(dev);
  if (!ok) return;
  uint32_t lo = sb[SB_BLOCKS_COUNT_LO] | sb[SB_BLOCKS_COUNT_LO + 1] << 8 | sb[SB_BLOCKS_COUNT_LO + 2] << 16 |
                (uint32_t)sb[SB_BLOCKS_COUNT_LO + 3] << 24;
  uint32_t hi = sb[SB_BLOCKS_COUNT_HI] | sb[SB_BLOCKS_COUNT_HI + 1] << 8 | sb[SB_BLOCKS_COUNT_HI + 2] << 16 |
                (uint32_t)sb[SB_BLOCKS_COUNT_HI + 3] << 24;
  uint32_t log = sb[SB_LOG_BLOCK_SIZE];
  if (log > 6) return;
  uint64_t block = 1024u << log, have = (uint64_t)hi << 32 | lo, want = bytes / block;
  if (want <= have) return;
  int fd = open(GUEST_DISK_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  if (ioctl(fd, EXT4_IOC_RESIZE_FS, &want) < 0)
    say("could not grow the disk to %llu blocks: %s", (unsigned long long)want, strerror(errno));
  else say("disk grown from %llu to %llu blocks", (unsigned long long)have, (unsigned long long)want);
  close(fd);
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
  setup_network();
  /* the container's disk; ext4 errors remount it read-only rather than corrupting the overlay */
  mount_or_die("/dev/vda", GUEST_DISK_DIR, "ext4", MS_NOATIME, "errors=remount-ro");
  grow_disk();
  if (mkdir_p(GUEST_STATE_DIR, 0700) < 0) fatal("mkdir " GUEST_STATE_DIR);
  int lfd = listen_vsock();
  if (lfd < 0) fatal("listen on vsock port 1024");
  say("ready");
  supervisor_opts o = {GUEST_STATE_DIR, lfd, 0, GUEST_DISK_DIR, 1};
  int rc = supervisor_run(&o);
  say("powering off (supervisor exited %d)", rc);
  power_off();
  return rc;
}
