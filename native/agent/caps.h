/* Linux capabilities: names, Docker's default set, cap-add/cap-drop, applying all five sets. */
#ifndef TVM_CAPS_H
#define TVM_CAPS_H
#include <stddef.h>
#include <stdint.h>

#define CAPS_MAX 64
/* Number of capabilities this build knows by name (CAP_CHOWN .. CAP_CHECKPOINT_RESTORE). */
#define CAPS_KNOWN 41

/* Capability number for "CHOWN" or "CAP_CHOWN" (case-insensitive), or -1. */
int cap_from_name(const char *name);
const char *cap_name(int cap);
uint64_t caps_docker_default(void);
uint64_t caps_all(void);
/* Docker's rules: add ALL -> all minus drops; drop ALL -> only adds; else default + adds - drops.
 * Returns 0, or -1 with the bad name in err. */
int caps_compute(const char *const *add, size_t nadd, const char *const *drop, size_t ndrop, int privileged, uint64_t *out, char *err,
                 size_t errlen);
/* Drops every capability not in keep from the bounding set (needs CAP_SETPCAP). */
int caps_apply_bounding(uint64_t keep);
/* After the uid switch: effective = permitted = keep, inheritable = 0, ambient cleared. */
int caps_apply_sets(uint64_t keep);
#endif
