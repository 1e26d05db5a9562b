#include "check.h"
#include "devices.h"

enum { BLK = BPF_DEVCG_DEV_BLOCK, CHR = BPF_DEVCG_DEV_CHAR };
enum { MKNOD = BPF_DEVCG_ACC_MKNOD, R = BPF_DEVCG_ACC_READ, W = BPF_DEVCG_ACC_WRITE };

int main(void) {
  struct bpf_insn p[DEVICES_MAX_INSNS];
  int n = devices_build(p, DEVICES_MAX_INSNS);
  CHECK(n > 10);
  CHECK(devices_eval(p, n, CHR, R | W, 1, 3) == 1);   /* /dev/null */
  CHECK(devices_eval(p, n, CHR, R, 1, 9) == 1);       /* urandom */
  CHECK(devices_eval(p, n, CHR, R | W, 136, 7) == 1); /* /dev/pts/7 */
  CHECK(devices_eval(p, n, CHR, R | W, 5, 2) == 1);   /* ptmx */
  CHECK(devices_eval(p, n, CHR, R, 1, 1) == 0);       /* /dev/mem */
  CHECK(devices_eval(p, n, CHR, R, 1, 4) == 0);       /* /dev/port */
  CHECK(devices_eval(p, n, BLK, R, 8, 0) == 0);       /* /dev/sda */
  CHECK(devices_eval(p, n, BLK, R, 7, 0) == 0);       /* loop0 */
  CHECK(devices_eval(p, n, BLK, MKNOD, 8, 0) == 1);   /* mknod is CAP_MKNOD's business */
  CHECK(devices_eval(p, n, CHR, MKNOD | R, 8, 0) == 0);
  CHECK(devices_eval(p, n, CHR, R, 10, 200) == 1); /* tun */
  CHECK(devices_eval(p, n, CHR, R, 10, 229) == 0); /* fuse */
  CHECK(devices_build(p, 4) == -1);
  CHECK_DONE("test_devices");
}
