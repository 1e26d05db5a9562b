/* The guest's PID-1 helpers that can run on the host: the clock hint on the command line. */
#include "check.h"
#include "guest.h"
#include <string.h>

int main(void) {
  CHECK(guest_cmdline_time_ms("console=ttyS0 tvm.time=1765000000123 quiet") == 1765000000123LL);
  CHECK(guest_cmdline_time_ms("tvm.time=5\n") == 5);
  CHECK(guest_cmdline_time_ms("quiet") == 0);
  CHECK(guest_cmdline_time_ms("xtvm.time=5") == 0); /* not a word of its own */
  CHECK(guest_cmdline_time_ms("tvm.time=5x") == 0); /* trailing junk */
  CHECK(guest_cmdline_time_ms("tvm.time=") == 0);
  CHECK(guest_cmdline_time_ms("tvm.time=-3") == 0);
  CHECK(guest_cmdline_time_ms("tvm.time=99999999999999999999999") == 0); /* overflow */
  CHECK(guest_cmdline_time_ms("a xtvm.time=1 tvm.time=7") == 7);
  guest_net n;
  CHECK(guest_cmdline_net("quiet tvm.time=5", &n) == 0);
  CHECK(guest_cmdline_net("quiet tvm.net=172.18.0.2/16,172.18.0.1,02:42:ac:12:00:02 x", &n) == 1);
  CHECK(n.addr[0] == 172 && n.addr[1] == 18 && n.addr[2] == 0 && n.addr[3] == 2 && n.prefix == 16);
  CHECK(n.has_gateway && n.gateway[0] == 172 && n.gateway[3] == 1);
  CHECK(n.mac[0] == 0x02 && n.mac[1] == 0x42 && n.mac[5] == 0x02);
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5/24,,02:42:0a:00:00:05\n", &n) == 1); /* internal: no gateway */
  CHECK(!n.has_gateway && n.prefix == 24);
  CHECK(guest_cmdline_net("xtvm.net=10.0.0.5/24,,02:42:0a:00:00:05", &n) == 0); /* not a word of its own */
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5/33,,02:42:0a:00:00:05", &n) == -1); /* prefix */
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5,,02:42:0a:00:00:05", &n) == -1);    /* no prefix */
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5/24,10.0.0,02:42:0a:00:00:05", &n) == -1);
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5/24,,02:42:0a:00:00", &n) == -1); /* short MAC */
  CHECK(guest_cmdline_net("tvm.net=10.0.0.5/24,,02-42-0a-00-00-05", &n) == -1);
  /* net-up's "nic": the same form, exactly n bytes */
  const char *nic = "10.1.0.5/24,,02:42:0a:01:00:05";
  CHECK(guest_parse_net(nic, strlen(nic), &n) == 0 && n.addr[3] == 5 && !n.has_gateway);
  CHECK(guest_parse_net(nic, strlen(nic) - 1, &n) == -1); /* cut short */
  CHECK(guest_parse_net("", 0, &n) == -1);
  /* the interface names the host gives */
  CHECK(guest_valid_ifname("eth0") && guest_valid_ifname("eth1") && guest_valid_ifname("eth12") && guest_valid_ifname("eth999"));
  CHECK(!guest_valid_ifname("eth") && !guest_valid_ifname("eth01") && !guest_valid_ifname("eth1000") && !guest_valid_ifname("lo"));
  CHECK(!guest_valid_ifname("eth1 ") && !guest_valid_ifname("eth-1") && !guest_valid_ifname("../eth1") && !guest_valid_ifname(""));
  CHECK_DONE("test_guest");
}
