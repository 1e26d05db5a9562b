/* The guest's NICs (see guest-net.c). */
#ifndef TVM_GUEST_NET_H
#define TVM_GUEST_NET_H
#include <stddef.h>

/* One NIC's settings: "ADDR/PREFIX,GATEWAY,MAC" (GATEWAY may be empty). */
typedef struct {
  unsigned char addr[4];
  unsigned prefix;
  int has_gateway;
  unsigned char gateway[4];
  unsigned char mac[6];
} guest_net;

/* Parses "ADDR/PREFIX,GATEWAY,MAC" of exactly n bytes: 0, or -1 when malformed. */
int guest_parse_net(const char *v, size_t n, guest_net *out);
/* 1 when the command line has a well-formed tvm.net=, 0 when it has none, -1 when malformed. */
int guest_cmdline_net(const char *cmdline, guest_net *out);
/* 1 for "eth0".."eth999": the names the host gives a container's interfaces. */
int guest_valid_ifname(const char *name);

/* Brings lo up and makes the guest answer ARP only on the interface that has the address.
 * -1 with err filled on failure. */
int guest_net_init(char *err, size_t errlen);
/* Gives `ifname` the settings (its MAC, address, up, a default route when there is a gateway).
 * eth0 is the VM's virtio NIC; any other name is made as a macvlan on it (the host sorts its
 * frames by MAC onto that network's endpoint). -1 with err filled on failure. */
int guest_nic_up(const char *ifname, const guest_net *n, char *err, size_t errlen);
/* Where the host's /etc files for the container travel in the initramfs (src/runtime/vm/isolation.ts
 * GUEST_FILES_DIR); the container's /etc/resolv.conf is a bind mount of this one. */
#define GUEST_RESOLV_CONF "/tvm/files/resolv.conf"
/* Replaces the container's resolv.conf in place (the bind mount holds its inode). */
int guest_set_resolv_conf(const char *content, size_t len, char *err, size_t errlen);
/* Takes `ifname` off its network: a macvlan goes; eth0 (which carries the others) keeps no
 * address but stays up. */
int guest_nic_down(const char *ifname, char *err, size_t errlen);
#endif
