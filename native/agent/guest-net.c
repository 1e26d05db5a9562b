/* The guest's NICs. The VM has one virtio NIC, eth0, on its first network (configured at boot
 * from "tvm.net=" on the command line). Every further network is a macvlan on eth0 with the
 * endpoint's own MAC, made when the host asks (`net-up`, docs/agent-protocol.md): virtio-mmio
 * has no hot-plug, and a macvlan gives the workload a second interface, with its own MAC and
 * address, at no boot cost. On the host the tap's frames are sorted onto each network's
 * endpoint by source MAC (src/runtime/vm/guest-net.ts). */
#define _GNU_SOURCE
#include "guest-net.h"
#include "util.h"
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The word "key=value" of a command line: a pointer to value and its length, or NULL. */
static const char *cmdline_word(const char *cmdline, const char *key, size_t *len) {
  size_t klen = strlen(key);
  for (const char *p = cmdline; (p = strstr(p, key)) != NULL; p += klen) {
    if (p != cmdline && p[-1] != ' ') continue;
    const char *v = p + klen;
    *len = strcspn(v, " \n");
    return v;
  }
  return NULL;
}

static int parse_ipv4(const char *s, size_t n, unsigned char out[4]) {
  char buf[16];
  if (n == 0 || n >= sizeof buf) return -1;
  memcpy(buf, s, n);
  buf[n] = 0;
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return -1;
  memcpy(out, &a.s_addr, 4);
  return 0;
}

int guest_parse_net(const char *v, size_t n, guest_net *out) {
  memset(out, 0, sizeof *out);
  /* ADDR/PREFIX */
  const char *slash = memchr(v, '/', n), *c1 = memchr(v, ',', n);
  if (!slash || !c1 || slash > c1 || parse_ipv4(v, (size_t)(slash - v), out->addr) < 0) return -1;
  char *end;
  errno = 0;
  unsigned long prefix = strtoul(slash + 1, &end, 10);
  if (errno || end != c1 || end == slash + 1 || prefix > 32) return -1;
  out->prefix = (unsigned)prefix;
  /* GATEWAY (may be empty) */
  const char *g = c1 + 1, *c2 = memchr(g, ',', n - (size_t)(g - v));
  if (!c2) return -1;
  if (c2 > g) {
    if (parse_ipv4(g, (size_t)(c2 - g), out->gateway) < 0) return -1;
    out->has_gateway = 1;
  }
  /* MAC: exactly six hex pairs to the end */
  const char *m = c2 + 1;
  if ((size_t)(v + n - m) != 17) return -1;
  for (int i = 0; i < 6; i++) {
    char pair[3] = {m[i * 3], m[i * 3 + 1], 0};
    if (!isxdigit((unsigned char)pair[0]) || !isxdigit((unsigned char)pair[1]) || (i < 5 && m[i * 3 + 2] != ':')) return -1;
    out->mac[i] = (unsigned char)strtoul(pair, NULL, 16);
  }
  return 0;
}

int guest_cmdline_net(const char *cmdline, guest_net *out) {
  size_t n;
  const char *v = cmdline_word(cmdline, "tvm.net=", &n);
  if (!v) return 0;
  return guest_parse_net(v, n, out) < 0 ? -1 : 1;
}

int guest_valid_ifname(const char *name) {
  size_t n = strlen(name);
  if (n < 4 || n > 6 || strncmp(name, "eth", 3) != 0) return 0;
  for (size_t i = 3; i < n; i++)
    if (!isdigit((unsigned char)name[i])) return 0;
  return !(name[3] == '0' && n > 4); /* no leading zeros: eth01 is not eth1 */
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
  int e = errno;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  size_t used = strlen(err);
  snprintf(err + used, errlen - used, ": %s", strerror(e));
  errno = e;
  return -1;
}

static void sin_of(struct sockaddr *sa, const unsigned char a[4]) {
  struct sockaddr_in *in = (struct sockaddr_in *)sa;
  memset(in, 0, sizeof *in);
  in->sin_family = AF_INET;
  memcpy(&in->sin_addr.s_addr, a, 4);
}

static int if_up(int s, const char *name) {
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(s, SIOCGIFFLAGS, &r) < 0) return -1;
  r.ifr_flags |= IFF_UP | IFF_RUNNING;
  return ioctl(s, SIOCSIFFLAGS, &r);
}

int guest_net_init(char *err, size_t errlen) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail(err, errlen, "socket");
  int rc = if_up(s, "lo");
  if (rc < 0) fail(err, errlen, "bring up lo");
  close(s);
  if (rc < 0) return -1;
  /* A broadcast (an ARP request for eth1's address, say) reaches eth0 and every macvlan on it:
   * only the interface that has the address may answer, or the other network learns eth0's MAC. */
  int e = write_file_str("/proc/sys/net/ipv4/conf/all/arp_ignore", "1");
  if (e < 0) {
    errno = -e;
    return fail(err, errlen, "net.ipv4.conf.all.arp_ignore");
  }
  return 0;
}

/* struct nlmsghdr + struct ifinfomsg + attributes, built in place (rtnetlink(7)). */
typedef struct {
  struct nlmsghdr h;
  struct ifinfomsg i;
  char attrs[256];
} nl_req;

static struct rtattr *nl_put(nl_req *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}

/* a nested attribute's length covers what was put after it */
static void nl_end(nl_req *r, struct rtattr *nest) { nest->rta_len = (unsigned short)((char *)r + r->h.nlmsg_len - (char *)nest); }

/* Sends one request and reads its acknowledgement: 0, or -1 with errno set to the kernel's error. */
static int nl_call(nl_req *r) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  r->h.nlmsg_seq = 1;
  int rc = -1;
  if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) goto out;
  char buf[1024];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      goto out;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_type != NLMSG_ERROR) continue;
      int e = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (e) errno = e;
      else rc = 0;
      goto out;
    }
  }
out:;
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static int macvlan_add(const char *ifname, const unsigned char mac[6]) {
  unsigned parent = if_nametoindex("eth0");
  if (!parent) return -1;
  nl_req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
  r.h.nlmsg_type = RTM_NEWLINK;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
  r.i.ifi_family = AF_UNSPEC;
  nl_put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  nl_put(&r, IFLA_LINK, &parent, sizeof parent);
  nl_put(&r, IFLA_ADDRESS, mac, 6);
  struct rtattr *info = nl_put(&r, IFLA_LINKINFO, NULL, 0);
  nl_put(&r, IFLA_INFO_KIND, "macvlan", sizeof "macvlan");
  struct rtattr *data = nl_put(&r, IFLA_INFO_DATA, NULL, 0);
  /* private: two networks' interfaces never switch frames between themselves inside the guest */
  uint32_t mode = MACVLAN_MODE_PRIVATE;
  nl_put(&r, IFLA_MACVLAN_MODE, &mode, sizeof mode);
  nl_end(&r, data);
  nl_end(&r, info);
  return nl_call(&r);
}

static int link_del(const char *ifname) {
  nl_req r;
  memset(&r, 0, sizeof r);
  r.h.nlmsg_len = NLMSG_LENGTH(sizeof r.i);
  r.h.nlmsg_type = RTM_DELLINK;
  r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  r.i.ifi_family = AF_UNSPEC;
  nl_put(&r, IFLA_IFNAME, ifname, strlen(ifname) + 1);
  return nl_call(&r);
}

int guest_nic_up(const char *ifname, const guest_net *n, char *err, size_t errlen) {
  if (!guest_valid_ifname(ifname)) {
    errno = EINVAL;
    return fail(err, errlen, "interface name \"%s\"", ifname);
  }
  int is_nic = !strcmp(ifname, "eth0");
  if (!is_nic && if_nametoindex(ifname)) {
    errno = EEXIST;
    return fail(err, errlen, "%s", ifname);
  }
  if (!is_nic && macvlan_add(ifname, n->mac) < 0) return fail(err, errlen, "%s: make a macvlan on eth0", ifname);
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail(err, errlen, "socket");
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "%s", ifname);
  const char *step = "set the MAC";
  if (is_nic) {
    r.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(r.ifr_hwaddr.sa_data, n->mac, 6);
    if (ioctl(s, SIOCSIFHWADDR, &r) < 0) goto bad;
  }
  sin_of(&r.ifr_addr, n->addr);
  step = "set the address";
  if (ioctl(s, SIOCSIFADDR, &r) < 0) goto bad;
  uint32_t mask = n->prefix ? htonl(~0u << (32 - n->prefix)) : 0;
  sin_of(&r.ifr_netmask, (unsigned char *)&mask);
  step = "set the netmask";
  if (ioctl(s, SIOCSIFNETMASK, &r) < 0) goto bad;
  step = "bring it up";
  if (if_up(s, ifname) < 0) goto bad;
  if (n->has_gateway) {
    struct rtentry rt;
    memset(&rt, 0, sizeof rt);
    static const unsigned char any[4] = {0, 0, 0, 0};
    sin_of(&rt.rt_dst, any);
    sin_of(&rt.rt_genmask, any);
    sin_of(&rt.rt_gateway, n->gateway);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    step = "add the default route";
    if (ioctl(s, SIOCADDRT, &rt) < 0) goto bad;
  }
  close(s);
  return 0;
bad:
  fail(err, errlen, "%s: %s", ifname, step);
  close(s);
  /* a half-made macvlan would take the name from the next try */
  if (!is_nic) link_del(ifname);
  return -1;
}

int guest_nic_down(const char *ifname, char *err, size_t errlen) {
  if (!guest_valid_ifname(ifname)) {
    errno = EINVAL;
    return fail(err, errlen, "interface name \"%s\"", ifname);
  }
  if (strcmp(ifname, "eth0") != 0) return link_del(ifname) < 0 ? fail(err, errlen, "%s: remove", ifname) : 0;
  /* the primary address 0.0.0.0 removes every IPv4 address of eth0, and the routes through them */
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail(err, errlen, "socket");
  struct ifreq r;
  memset(&r, 0, sizeof r);
  snprintf(r.ifr_name, IFNAMSIZ, "eth0");
  static const unsigned char none[4] = {0, 0, 0, 0};
  sin_of(&r.ifr_addr, none);
  int rc = ioctl(s, SIOCSIFADDR, &r);
  if (rc < 0 && errno != EADDRNOTAVAIL) fail(err, errlen, "eth0: remove its address");
  close(s);
  return rc < 0 && errno != EADDRNOTAVAIL ? -1 : 0;
}

int guest_set_resolv_conf(const char *content, size_t len, char *err, size_t errlen) {
  /* no O_CREAT: the file the container's bind mount shows must be the one written */
  int fd = open(GUEST_RESOLV_CONF, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return fail(err, errlen, "open %s", GUEST_RESOLV_CONF);
  int rc = write_all(fd, content, len);
  if (rc < 0) fail(err, errlen, "write %s", GUEST_RESOLV_CONF);
  close(fd);
  return rc < 0 ? -1 : 0;
}
