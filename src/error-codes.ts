/**
 * The registry of tvm's error codes: each code a TvmError can carry, the HTTP status the API
 * answers it with, and what it means (docs/errors.md lists them for API users, as undici's
 * lib/core/errors.js and fastify's lib/errors.js do). TvmError's code is typed from this
 * table, so a code that is not registered here does not compile, and
 * test/unit/error-codes.test.ts checks every registered code is still used and documented.
 *
 * A few codes are built at run time from another system's code (ERROR_CODE_FAMILIES); and
 * FOREIGN_CODES are codes src/ compares against but never raises.
 */

export interface ErrorCodeInfo {
  /** the HTTP status the API answers with */
  readonly status: number;
  readonly meaning: string;
  /** the heading docs/errors.md lists it under */
  readonly area: string;
}

export const ERROR_CODES = {
  // General
  ERR_INVALID_PARAMETER: { status: 400, area: 'General', meaning: 'The request or an option is malformed (the generic 400).' },
  ERR_NOT_FOUND: {
    status: 404,
    area: 'General',
    meaning: "No such object (the generic 404); also the guest agent's wire code for a missing file or process.",
  },
  ERR_CONFLICT: { status: 409, area: 'General', meaning: 'The object exists but its state forbids the operation (the generic 409).' },
  ERR_NOT_IMPLEMENTED: {
    status: 501,
    area: 'General',
    meaning: 'A feature tvm does not have yet; refused rather than silently substituted (the generic 501).',
  },
  ERR_BAD_FORMAT: { status: 400, area: 'General', meaning: 'Malformed binary or archive input (the generic format error).' },
  ERR_FORBIDDEN: { status: 403, area: 'General', meaning: 'The operation is refused as Docker refuses it (the generic 403).' },
  ERR_NOT_MODIFIED: {
    status: 304,
    area: 'General',
    meaning: 'Nothing to do: the container is already in the asked state (start of a running one, stop of a stopped one).',
  },
  ERR_PART_MISSING: {
    status: 500,
    area: 'General',
    meaning: 'A part the daemon needs (the agent binary, the guest kernel) is not installed; the message names the setup step.',
  },
  ERR_SOCKET_PATH: { status: 500, area: 'General', meaning: 'The run directory is too long for a unix socket path.' },
  // CLI
  ERR_BAD_HOST: { status: 400, area: 'CLI', meaning: 'The CLI was given a daemon host it cannot use (only unix:// and tcp://).' },
  ERR_DAEMON_UNREACHABLE: { status: 500, area: 'CLI', meaning: 'The CLI cannot connect to the tvm daemon.' },
  // API
  ERR_API_VERSION: { status: 400, area: 'API', meaning: 'The client asks for an API version newer than the daemon serves.' },
  ERR_BAD_FILTER: { status: 400, area: 'API', meaning: 'A `filters` query parameter is not valid JSON of the expected shape.' },
  ERR_EXEC_STARTED: { status: 400, area: 'API', meaning: 'The exec instance has already run.' },
  ERR_TOP: { status: 500, area: 'API', meaning: '`docker top`: the ps output could not be read.' },
  // Containers
  ERR_AMBIGUOUS: { status: 400, area: 'Containers', meaning: 'A container ID prefix matches more than one container.' },
  ERR_BAD_TRANSITION: {
    status: 409,
    area: 'Containers',
    meaning: "The container's state forbids the operation (for example unpause of a running container).",
  },
  ERR_ISOLATION_UNAVAILABLE: {
    status: 501,
    area: 'Containers',
    meaning: 'The requested isolation (vm or container) is not available in this daemon.',
  },
  ERR_START_FAILED: {
    status: 400,
    area: 'Containers',
    meaning: 'The container could not be started (when the isolation gave no more specific code).',
  },
  ERR_UPDATE: { status: 500, area: 'Containers', meaning: '`docker update` could not apply the new limits to a running container.' },
  ERR_EXEC: {
    status: 400,
    area: 'Containers',
    meaning: "The process could not be executed (not found, not executable); also the guest agent's wire code for it.",
  },
  ERR_SUPERVISOR_START: { status: 500, area: 'Containers', meaning: 'The per-container supervisor process could not be started.' },
  ERR_SUPERVISOR_LOST: { status: 500, area: 'Containers', meaning: "The connection to a container's supervisor was lost." },
  ERR_CGROUP_BUSY: { status: 500, area: 'Containers', meaning: "A container's cgroup could not be removed (processes still in it)." },
  ERR_NO_CGROUPS: { status: 500, area: 'Containers', meaning: 'No cgroup hierarchy is mounted on the host.' },
  ERR_ROOTFS_MOUNT: { status: 500, area: 'Containers', meaning: "The container's filesystem could not be mounted (docker cp, export)." },
  ERR_LEFTOVER_UNMOUNT: { status: 500, area: 'Containers', meaning: 'A mount left by an interrupted daemon could not be released.' },
  ERR_BASE_MOUNT: { status: 500, area: 'Containers', meaning: "The image's base disk could not be loop-mounted." },
  ERR_BASE_UNMOUNT: { status: 500, area: 'Containers', meaning: "The image's base disk could not be unmounted." },
  ERR_LAYER_MOUNT: { status: 500, area: 'Containers', meaning: "A container's writable layer disk could not be mounted." },
  ERR_LAYER_UNMOUNT: { status: 500, area: 'Containers', meaning: "A container's writable layer disk could not be unmounted." },
  ERR_VIEW_UNMOUNT: { status: 500, area: 'Containers', meaning: "A temporary view of a container's filesystem could not be unmounted." },
  ERR_LAYER_MISSING: { status: 400, area: 'Containers', meaning: "A container's writable layer disk is missing." },
  ERR_LAYER_SIZE: { status: 400, area: 'Containers', meaning: 'The requested writable layer size (--storage-opt size) is too small.' },
  ERR_VOLUME_COPY: { status: 500, area: 'Containers', meaning: "The image's content could not be copied into a new volume." },
  ERR_XATTR: { status: 500, area: 'Containers', meaning: 'Reading an extended attribute of a container file failed.' },
  ERR_USERNS_MISMATCH: {
    status: 409,
    area: 'Containers',
    meaning: 'The container was created under another --userns-remap than the daemon runs with.',
  },
  ERR_USERNS_UNREACHABLE: {
    status: 500,
    area: 'Containers',
    meaning: "--userns-remap: the remapped root cannot reach the daemon's data directory.",
  },
  ERR_USERADD: { status: 500, area: 'Containers', meaning: '--userns-remap=default: the dockremap user could not be created.' },
  ERR_NO_SUCH_USER: { status: 400, area: 'Containers', meaning: '--userns-remap names a user that does not exist.' },
  ERR_NO_SUCH_GROUP: { status: 400, area: 'Containers', meaning: '--userns-remap names a group that does not exist.' },
  ERR_NO_SUBIDS: {
    status: 400,
    area: 'Containers',
    meaning: '--userns-remap: the user has no subordinate ids in /etc/subuid or /etc/subgid.',
  },
  ERR_SUBID_FORMAT: { status: 400, area: 'Containers', meaning: 'A line of /etc/subuid or /etc/subgid is malformed.' },
  ERR_SUBID_RANGE: {
    status: 400,
    area: 'Containers',
    meaning: 'Subordinate id ranges that the kernel cannot map (too many, overlapping, out of range).',
  },
  ERR_SUBID_FULL: { status: 500, area: 'Containers', meaning: 'No free range of subordinate ids is left to allocate.' },
  // VM isolation
  ERR_VM_BACKEND: {
    status: 500,
    area: 'VM isolation',
    meaning: 'The chosen VM backend (kvm, tcg) cannot run on this host; the message names what is missing.',
  },
  ERR_VM_START: {
    status: 500,
    area: 'VM isolation',
    meaning: 'The microVM could not be started (when no more specific code was reported).',
  },
  ERR_VM_CREATE: { status: 500, area: 'VM isolation', meaning: 'The guest agent could not create the container inside the microVM.' },
  ERR_VM_GUEST: { status: 500, area: 'VM isolation', meaning: 'The guest agent reported a fatal error while booting.' },
  ERR_VM_BOOT_TIMEOUT: { status: 500, area: 'VM isolation', meaning: 'The guest agent did not answer in time after boot.' },
  ERR_VM_SUPERVISOR: { status: 500, area: 'VM isolation', meaning: 'The VM supervisor process misbehaved (bad or missing ready line).' },
  ERR_VM_LAUNCH_CONFIG: { status: 400, area: 'VM isolation', meaning: 'A VM launch configuration file is malformed.' },
  ERR_VM_RUNNING: {
    status: 501,
    area: 'VM isolation',
    meaning: 'The operation is not supported on a running --isolation=vm container yet.',
  },
  ERR_BAD_SPEC: { status: 400, area: 'VM isolation', meaning: 'The guest agent refused the container spec; also its wire code for that.' },
  ERR_KERNEL_NOT_BUILT: {
    status: 500,
    area: 'VM isolation',
    meaning: 'The guest kernel is not built (404 from `tvm kernel` commands, 500 when a VM needs it).',
  },
  ERR_KERNEL_BUILD: { status: 500, area: 'VM isolation', meaning: 'Building the guest kernel failed.' },
  ERR_KERNEL_SOURCE: { status: 404, area: 'VM isolation', meaning: 'The kernel source tarball is not installed.' },
  ERR_KERNEL_SOURCES: { status: 404, area: 'VM isolation', meaning: 'kernels/build.sh is not found.' },
  ERR_KERNEL_SYMBOL: { status: 404, area: 'VM isolation', meaning: "A symbol is missing from the kernel's System.map." },
  // Guest agent
  ERR_AGENT_CLOSED: { status: 500, area: 'Guest agent', meaning: 'The agent closed the connection.' },
  ERR_AGENT_UNREACHABLE: { status: 500, area: 'Guest agent', meaning: 'The agent cannot be reached.' },
  ERR_AGENT_FRAME: { status: 400, area: 'Guest agent', meaning: 'An agent frame has an impossible length.' },
  ERR_AGENT_HANDSHAKE: { status: 400, area: 'Guest agent', meaning: 'The vsock proxy handshake failed.' },
  ERR_AGENT_MESSAGE: { status: 400, area: 'Guest agent', meaning: 'The agent sent a message that does not fit the protocol.' },
  // VMM
  ERR_VMM: { status: 500, area: 'VMM', meaning: 'The virtual machine monitor failed (a vCPU, a device, an exit it cannot handle).' },
  ERR_VMM_KVM: { status: 500, area: 'VMM', meaning: 'Building a VM: /dev/kvm could not be opened or lacks a capability tvm needs.' },
  ERR_VMM_CREATE_VM: { status: 500, area: 'VMM', meaning: 'Building a VM: KVM refused to create the VM, its irqchip or PIT.' },
  ERR_VMM_MEMORY: { status: 500, area: 'VMM', meaning: 'Building a VM: guest memory could not be allocated or registered.' },
  ERR_VMM_LEGACY_DEVICES: { status: 500, area: 'VMM', meaning: 'Building a VM: the serial console or i8042 could not be wired.' },
  ERR_VMM_VCPUS: { status: 500, area: 'VMM', meaning: 'Building a VM: a vCPU could not be created or set up (CPUID, MSRs, LAPIC).' },
  ERR_VMM_DEVICES: { status: 500, area: 'VMM', meaning: 'Building a VM: a virtio-mmio device could not be attached.' },
  ERR_VMM_KERNEL: { status: 500, area: 'VMM', meaning: 'Building a VM: the kernel, initramfs or boot tables could not be loaded.' },
  ERR_VMM_BOOT_CPU: { status: 500, area: 'VMM', meaning: "Building a VM: the boot vCPU's registers could not be set." },
  ERR_NO_KVM: { status: 500, area: 'VMM', meaning: '/dev/kvm is missing or unusable.' },
  ERR_GUEST_MEMORY: { status: 500, area: 'VMM', meaning: 'A guest memory access is outside guest RAM.' },
  ERR_BUS_OVERLAP: { status: 409, area: 'VMM', meaning: 'Two devices claim overlapping bus addresses.' },
  ERR_VHOST_USER: { status: 500, area: 'VMM', meaning: 'A vhost-user message or session is invalid.' },
  ERR_VIRTQUEUE: { status: 500, area: 'VMM', meaning: 'A virtqueue operation failed.' },
  ERR_VIRTQUEUE_BROKEN: {
    status: 500,
    area: 'VMM',
    meaning: 'The guest set up a virtqueue that cannot be used (misaligned or out-of-range rings).',
  },
  ERR_VIRTQUEUE_STATE: { status: 500, area: 'VMM', meaning: 'A saved virtqueue state is out of range.' },
  ERR_VIRTIO_STATE: { status: 400, area: 'VMM', meaning: 'A saved virtio-mmio device state is malformed.' },
  ERR_VIRTIO_POLLER_CLOSED: { status: 409, area: 'VMM', meaning: 'The notification poller is closed.' },
  ERR_VIRTIO_POLLER_FD: { status: 409, area: 'VMM', meaning: 'The notification poller already watches this fd.' },
  ERR_VSOCK_LISTEN: { status: 500, area: 'VMM', meaning: 'The vsock device cannot listen on its unix socket.' },
  ERR_VSOCK_PORTS: { status: 500, area: 'VMM', meaning: 'The vsock device has no free host port.' },
  ERR_VSOCK_PACKET: { status: 400, area: 'VMM', meaning: 'A vsock packet header is malformed.' },
  // Networking
  ERR_NETWORK_SETUP: { status: 500, area: 'Networking', meaning: "Setting up a container's network (namespace, veth, iptables) failed." },
  ERR_NETWORK_EXISTS: { status: 409, area: 'Networking', meaning: 'A network with that name already exists.' },
  ERR_NETWORK_IN_USE: { status: 403, area: 'Networking', meaning: 'The network still has containers attached.' },
  ERR_NO_SUCH_NETWORK: { status: 404, area: 'Networking', meaning: 'No such network.' },
  ERR_NO_SUCH_DRIVER: { status: 404, area: 'Networking', meaning: 'The network driver is not supported.' },
  ERR_NO_POOL: { status: 403, area: 'Networking', meaning: 'No free default address pool is left for a new network.' },
  ERR_POOL_OVERLAP: { status: 403, area: 'Networking', meaning: "The requested subnet overlaps another network's." },
  ERR_NO_ADDRESS: { status: 409, area: 'Networking', meaning: 'The network has no free IPv4 address left.' },
  ERR_ADDRESS_IN_USE: { status: 403, area: 'Networking', meaning: 'The requested IP address is already in use on the network.' },
  ERR_PORT_ALLOCATED: { status: 500, area: 'Networking', meaning: 'The published host port is already allocated to another container.' },
  ERR_PORT_ALLOCATION: { status: 500, area: 'Networking', meaning: 'No free host port is left in the range.' },
  ERR_PORT_IN_USE: { status: 500, area: 'Networking', meaning: 'The published host port is in use by another process.' },
  // Images and registries
  ERR_NO_SUCH_IMAGE: { status: 404, area: 'Images and registries', meaning: 'No such image.' },
  ERR_AMBIGUOUS_ID: { status: 400, area: 'Images and registries', meaning: 'A short image ID matches more than one image.' },
  ERR_IMAGE_IN_USE: { status: 409, area: 'Images and registries', meaning: 'The image is used by a container (rmi without force).' },
  ERR_IMAGE_HAS_CHILDREN: {
    status: 409,
    area: 'Images and registries',
    meaning: 'The image has dependent child images (rmi, even with force).',
  },
  ERR_IMAGE_MULTIPLE_REFS: {
    status: 409,
    area: 'Images and registries',
    meaning: 'The image is tagged in several repositories (rmi by ID without force).',
  },
  ERR_INVALID_REFERENCE: { status: 400, area: 'Images and registries', meaning: 'An image reference is malformed.' },
  ERR_INVALID_DIGEST: { status: 400, area: 'Images and registries', meaning: 'A digest is malformed.' },
  ERR_UNSUPPORTED_DIGEST: { status: 400, area: 'Images and registries', meaning: 'A digest uses an algorithm other than sha256.' },
  ERR_INVALID_CHANGE: { status: 400, area: 'Images and registries', meaning: 'A --change instruction (import, commit) is not valid.' },
  ERR_BLOB_NOT_FOUND: { status: 404, area: 'Images and registries', meaning: 'A blob is not in the local store.' },
  ERR_DIGEST_MISMATCH: { status: 400, area: 'Images and registries', meaning: 'Content does not match its digest.' },
  ERR_SIZE_MISMATCH: {
    status: 400,
    area: 'Images and registries',
    meaning: 'Content is longer than its descriptor or Content-Length says.',
  },
  ERR_TRUNCATED: { status: 400, area: 'Images and registries', meaning: 'Content is shorter than its descriptor says.' },
  ERR_DIFF_ID_MISMATCH: {
    status: 400,
    area: 'Images and registries',
    meaning: "A layer's uncompressed digest differs from the config's diff ID.",
  },
  ERR_BAD_MANIFEST: { status: 400, area: 'Images and registries', meaning: 'A manifest or index is malformed.' },
  ERR_BAD_CONFIG: { status: 400, area: 'Images and registries', meaning: 'An image config is malformed.' },
  ERR_NO_MATCHING_MANIFEST: { status: 404, area: 'Images and registries', meaning: 'The manifest list has no entry for linux/amd64.' },
  ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 400,
    area: 'Images and registries',
    meaning: 'A manifest or layer has a media type tvm does not support.',
  },
  ERR_UNSUPPORTED_COMPRESSION: {
    status: 400,
    area: 'Images and registries',
    meaning: 'A layer uses a compression tvm does not support (xz).',
  },
  ERR_BAD_COMPRESSION: { status: 400, area: 'Images and registries', meaning: 'A compressed layer is corrupt.' },
  ERR_NO_ZLIB: { status: 400, area: 'Images and registries', meaning: 'No zlib is available to decompress layers.' },
  ERR_BAD_ARCHIVE: {
    status: 400,
    area: 'Images and registries',
    meaning: 'A docker-archive or OCI layout tar (docker load) is malformed.',
  },
  ERR_BAD_TAR: { status: 400, area: 'Images and registries', meaning: 'A layer tar is corrupt or truncated.' },
  ERR_UNSAFE_TAR_ENTRY: {
    status: 400,
    area: 'Images and registries',
    meaning: 'A tar entry would escape its root (absolute path, `..`, dangling hard link).',
  },
  ERR_ABORTED: { status: 400, area: 'Images and registries', meaning: 'A layer inspection was aborted.' },
  ERR_LAYER_INSPECT: { status: 500, area: 'Images and registries', meaning: 'The layer inspection worker failed.' },
  ERR_BAD_DOCKER_CONFIG: {
    status: 500,
    area: 'Images and registries',
    meaning: 'The docker client config file (~/.docker/config.json) is malformed.',
  },
  ERR_CREDENTIAL_HELPER: { status: 500, area: 'Images and registries', meaning: 'A docker credential helper failed.' },
  ERR_BAD_CHALLENGE: { status: 400, area: 'Images and registries', meaning: 'A registry sent a malformed WWW-Authenticate header.' },
  ERR_UNAUTHORIZED: { status: 401, area: 'Images and registries', meaning: 'The registry refused the credentials.' },
  ERR_DENIED: { status: 500, area: 'Images and registries', meaning: 'The registry denied access.' },
  ERR_TOKEN_SERVER: { status: 500, area: 'Images and registries', meaning: "The registry's token server failed or answered nonsense." },
  ERR_PULL_ACCESS_DENIED: {
    status: 404,
    area: 'Images and registries',
    meaning: "The repository does not exist or needs `docker login` (Docker's words).",
  },
  ERR_MANIFEST_UNKNOWN: { status: 404, area: 'Images and registries', meaning: 'The registry has no manifest for the tag or digest.' },
  ERR_NAME_UNKNOWN: { status: 404, area: 'Images and registries', meaning: 'The registry has no such repository.' },
  ERR_REGISTRY: {
    status: 500,
    area: 'Images and registries',
    meaning: 'The registry answered with an error or broke the protocol (502 when its answer is unusable).',
  },
  ERR_REGISTRY_NOT_FOUND: { status: 404, area: 'Images and registries', meaning: 'The registry answered 404.' },
  ERR_REGISTRY_SERVER: { status: 500, area: 'Images and registries', meaning: 'The registry answered with a server error (5xx).' },
  ERR_REGISTRY_UNREACHABLE: { status: 500, area: 'Images and registries', meaning: 'The registry cannot be reached.' },
  ERR_TOO_MANY_REQUESTS: { status: 429, area: 'Images and registries', meaning: 'The registry answered 429 (rate limited).' },
  ERR_TOO_MANY_REDIRECTS: { status: 502, area: 'Images and registries', meaning: 'The registry redirected too many times.' },
  ERR_INSECURE_REDIRECT: { status: 502, area: 'Images and registries', meaning: 'The registry redirected from HTTPS to plain HTTP.' },
  ERR_BAD_HEADER: { status: 400, area: 'Images and registries', meaning: 'A header of a blob request contains a line break.' },
  // Build
  ERR_BUILD: { status: 400, area: 'Build', meaning: 'The build failed (the generic build error).' },
  ERR_DOCKERFILE_PARSE: { status: 400, area: 'Build', meaning: 'The Dockerfile has a syntax error.' },
  ERR_NO_DOCKERFILE: { status: 400, area: 'Build', meaning: 'The Dockerfile cannot be found in the context.' },
  ERR_BUILD_CONTEXT: { status: 400, area: 'Build', meaning: 'The build context tar is malformed.' },
  ERR_BUILD_CONTEXT_PATH: { status: 400, area: 'Build', meaning: 'A COPY/ADD source is outside the build context.' },
  ERR_BUILD_COPY_SOURCE: { status: 400, area: 'Build', meaning: 'A COPY/ADD source does not exist.' },
  ERR_BUILD_ISOLATION: { status: 400, area: 'Build', meaning: "The build's isolation cannot commit its containers yet." },
  ERR_BUILD_RUN_FAILED: { status: 500, area: 'Build', meaning: 'A RUN step exited non-zero.' },
  // Disks
  ERR_DISK_NOT_FOUND: { status: 404, area: 'Disks', meaning: 'No such disk image (or its backing file).' },
  ERR_DISK_EXISTS: { status: 409, area: 'Disks', meaning: 'A disk image to create already exists.' },
  ERR_DISK_CLOSED: { status: 409, area: 'Disks', meaning: 'The disk image is closed.' },
  ERR_DISK_IO: { status: 500, area: 'Disks', meaning: 'Reading or writing a disk image failed.' },
  ERR_DISK_FULL: { status: 507, area: 'Disks', meaning: 'The disk has no space left.' },
  ERR_DISK_TOO_SMALL: { status: 400, area: 'Disks', meaning: 'The content does not fit the disk size (or the size is below the minimum).' },
  ERR_DISK_TOO_LARGE: { status: 400, area: 'Disks', meaning: 'The disk size is above what the ext4 writer supports.' },
  ERR_BLOCK_RANGE: { status: 400, area: 'Disks', meaning: 'A block request is outside the disk.' },
  ERR_BLOCK_READ_ONLY: { status: 409, area: 'Disks', meaning: 'A write to a disk opened read-only.' },
  ERR_BAD_IMAGE_ID: { status: 400, area: 'Disks', meaning: 'A base disk was asked for a malformed image ID.' },
  ERR_BAD_LABEL: { status: 400, area: 'Disks', meaning: 'An ext4 label is longer than 16 bytes.' },
  ERR_BAD_UUID: { status: 400, area: 'Disks', meaning: 'A filesystem UUID is malformed.' },
  ERR_EXT4_FORMAT: { status: 400, area: 'Disks', meaning: 'An ext4 filesystem is malformed.' },
  ERR_EXT4_UNSUPPORTED: { status: 501, area: 'Disks', meaning: 'An ext4 feature tvm cannot edit offline.' },
  ERR_EXT4_OFFLINE_UNSUPPORTED: {
    status: 501,
    area: 'Disks',
    meaning: "A change that cannot be written to a stopped container's ext4 disk.",
  },
  ERR_EXT4_NEEDS_RECOVERY: { status: 409, area: 'Disks', meaning: 'The ext4 journal needs recovery (the container did not stop cleanly).' },
  ERR_ID_UNMAPPED: { status: 400, area: 'Disks', meaning: 'An owner id cannot be mapped into the remapped range.' },
  ERR_TAR_FORMAT: {
    status: 400,
    area: 'Disks',
    meaning: 'A layer tar entry cannot be written to ext4 (bad ACL, xattrs too large, bad type).',
  },
  ERR_TAR_BAD_LINK: { status: 400, area: 'Disks', meaning: 'A hard link in a layer tar names a file that does not exist.' },
  ERR_TAR_TRUNCATED: { status: 400, area: 'Disks', meaning: 'A layer tar ends in the middle of an entry.' },
  ERR_TAR_UNSAFE_PATH: { status: 400, area: 'Disks', meaning: 'A layer tar entry has an absolute or escaping path.' },
  ERR_QCOW2_BAD_HEADER: { status: 400, area: 'Disks', meaning: 'A qcow2 header is malformed.' },
  ERR_QCOW2_BAD_MAGIC: { status: 400, area: 'Disks', meaning: 'A file is not a qcow2 image.' },
  ERR_QCOW2_BAD_VERSION: { status: 400, area: 'Disks', meaning: 'A qcow2 version other than 2 or 3.' },
  ERR_QCOW2_CORRUPT: { status: 400, area: 'Disks', meaning: 'A qcow2 image is corrupt (the image is then marked corrupt).' },
  ERR_QCOW2_UNSUPPORTED: { status: 501, area: 'Disks', meaning: 'A qcow2 feature tvm does not support.' },
  ERR_QCOW2_FAILED: { status: 500, area: 'Disks', meaning: 'A qcow2 image failed earlier (an I/O error) and accepts no more requests.' },
  ERR_CPIO_FIELD: { status: 400, area: 'Disks', meaning: 'A cpio field does not fit its header or is malformed.' },
  ERR_CPIO_PATH: { status: 400, area: 'Disks', meaning: 'A cpio entry path is empty or escapes the archive.' },
  ERR_CPIO_TYPE: { status: 400, area: 'Disks', meaning: 'A cpio entry has an unknown type.' },
  ERR_CPIO_DUPLICATE: { status: 400, area: 'Disks', meaning: 'A cpio path appears twice.' },
  ERR_CPIO_PARENT: { status: 400, area: 'Disks', meaning: 'A cpio entry comes before its parent directory.' },
  ERR_CPIO_MAGIC: { status: 400, area: 'Disks', meaning: 'Not a cpio newc archive.' },
  ERR_CPIO_TRUNCATED: { status: 400, area: 'Disks', meaning: 'A cpio archive is truncated.' },
  ERR_CPIO_CHECKSUM: { status: 400, area: 'Disks', meaning: "A cpio entry's checksum does not match." },
  ERR_INITRAMFS_APPLET: { status: 400, area: 'Disks', meaning: 'A busybox applet name is not a plain name.' },
  ERR_INITRAMFS_DUPLICATE: { status: 400, area: 'Disks', meaning: 'An initramfs path is given twice.' },
  ERR_INITRAMFS_PARENT: { status: 400, area: 'Disks', meaning: "An initramfs path's parent is not a directory." },
} as const satisfies Record<string, ErrorCodeInfo>;

export type RegisteredErrorCode = keyof typeof ERROR_CODES;

/**
 * Codes made at run time from another system's: the guest agent's wire codes become
 * ERR_AGENT_<code> (ERR_AGENT_NOT_FOUND 404, ERR_AGENT_STATE 409, ERR_AGENT_BAD_SPEC 400, any
 * other 500); ERR_ARCHIVE_<errno> a failed file operation of docker cp; an errno name (ENOENT,
 * EAGAIN, ...) names a failed system call of the VMM (500);
 * the CLI's HTTP_<status> carries a daemon answer it could not word better.
 */
export const ERROR_CODE_FAMILIES = [
  {
    pattern: 'ERR_AGENT_<code>',
    status: 500,
    meaning:
      "The guest agent's own error code, prefixed (`ERR_AGENT_NOT_FOUND` answers 404, `ERR_AGENT_STATE` 409, `ERR_AGENT_BAD_SPEC` 400).",
  },
  {
    pattern: 'ERR_ARCHIVE_<errno name>',
    status: 500,
    meaning:
      'docker cp: a file operation in the container failed with this errno (400 when the tar asked for the impossible, as a hard link to nothing).',
  },
  {
    pattern: '<errno name>',
    status: 500,
    meaning: 'A system call of the VMM failed with this errno (`ENOENT`, `EAGAIN`, ...; `errno 123` for one Node has no name for).',
  },
  { pattern: 'HTTP_<status>', status: 0, meaning: 'CLI only: the daemon answered this HTTP status; the message is its own.' },
] as const;

/** errno names as Node knows them (ENOENT, EAGAIN, ...) */
export type ErrnoName = keyof typeof import('node:os').constants.errno;

export type ErrorCode =
  RegisteredErrorCode | `ERR_AGENT_${string}` | `ERR_ARCHIVE_${ErrnoName}` | ErrnoName | `errno ${number}` | `HTTP_${number}`;

/** Codes src/ compares against but never raises: another system's. */
export const FOREIGN_CODES: Readonly<Record<string, string>> = {
  ERR_STATE: "the guest agent's wire code for an operation its state refuses (ERR_AGENT_STATE, 409)",
  ERR_SYSTEM: "the guest agent's wire code for a failed system call (ERR_AGENT_SYSTEM, 500)",
  ERR_NOT_DIR: "the guest agent's wire code for an extraction point that is not a directory (docker cp into a running VM)",
  ERR_PROTOCOL: "the guest agent's wire code for a broken exchange (raised as ERR_AGENT_PROTOCOL)",
  ERR_SSL_WRONG_VERSION_NUMBER: "Node's TLS error for a plain-HTTP registry spoken to over HTTPS",
  ERR_TLS_CERT_ALTNAME_INVALID: "Node's TLS error for a certificate that does not name the registry",
};

export function isRegisteredErrorCode(code: string): code is RegisteredErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
