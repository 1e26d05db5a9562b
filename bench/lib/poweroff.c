/* The benchmark floor's /init: power the guest off at once (reboot=t + QEMU -no-reboot). */
#include <sys/reboot.h>
#include <unistd.h>

int main(void) {
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}
