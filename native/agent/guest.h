/* PID 1 in the microVM guest (see guest.c). */
#ifndef TVM_GUEST_H
#define TVM_GUEST_H
#include "guest-net.h"

/* The agent protocol's vsock port in the guest (docs/agent-protocol.md). */
#define GUEST_AGENT_PORT 1024
/* Where the guest mounts /dev/vda (the container's disk: base disk through its qcow2 overlay). */
#define GUEST_DISK_DIR "/run/tvm/disk"
#define GUEST_STATE_DIR "/run/tvm/state"

/* Never returns: powers the guest off when the supervisor loop ends. */
int guest_main(void);
/* Parses "tvm.time=<unix ms>" out of a kernel command line; 0 if absent or malformed. */
long long guest_cmdline_time_ms(const char *cmdline);

#endif
