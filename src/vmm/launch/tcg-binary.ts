/** QEMU's x86-64 system emulator (Debian: qemu-system-x86), the tcg backend's vCPU. */
export const QEMU_BINARY = 'qemu-system-x86_64';
