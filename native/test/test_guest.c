/* The guest's PID-1 helpers that can run on the host: the clock hint on the command line. */
#include "check.h"
#include "guest.h"

int main(void) {
  CHECK(guest_cmdline_time_ms("console=ttyS0 tvm.time=1765000000123 quiet") == 1765000000123LL);
  CHECK(guest_cmdline_time_ms("tvm.time=5\n") == 5);
  CHECK(guest_cmdline_time_ms("quiet") == 0);
  CHECK(guest_cmdline_time_ms("xtvm.time=5") == 0);        /* not a word of its own */
  CHECK(guest_cmdline_time_ms("tvm.time=5x") == 0);         /* trailing junk */
  CHECK(guest_cmdline_time_ms("tvm.time=") == 0);
  CHECK(guest_cmdline_time_ms("tvm.time=-3") == 0);
  CHECK(guest_cmdline_time_ms("tvm.time=99999999999999999999999") == 0); /* overflow */
  CHECK(guest_cmdline_time_ms("a xtvm.time=1 tvm.time=7") == 7);
  CHECK_DONE("test_guest");
}
