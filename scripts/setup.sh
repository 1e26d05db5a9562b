#!/usr/bin/env bash
# Installs and builds what tvm needs, idempotently, saying what it does.
#   scripts/setup.sh            system packages, npm packages, the native agent
#   scripts/setup.sh --kernel   also the guest kernel (cached in ~/.cache/tvm/kernels)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PACKAGES=(
  build-essential musl-tools            # the static agent
  qemu-utils qemu-system-x86            # qemu-img (qcow2 interop), QEMU microvm (boot reference)
  e2fsprogs                             # e2fsck/debugfs check every disk we write
  busybox-static cpio                   # test images and the guest initramfs
  skopeo umoci docker-registry          # independent OCI producers and a real registry
  linux-source-6.1 bc flex bison libelf-dev libssl-dev xz-utils  # the guest kernel
  zstd iproute2 util-linux hyperfine
  docker.io                             # reference dockerd: legacy-builder comparison test, benchmarks
  procps                                # ps: docker top runs the host's ps with the user's options, as dockerd
  iptables curl                         # bridge networks' netfilter rules; the network tests' HTTP client
  docker-compose                        # 1.29, driven by test/integration/network/compose.test.ts
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"; exit 1
  fi
  say "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "Debian packages: all present"
fi

stamp=node_modules/.tvm-lock-stamp
if [[ ! -f $stamp || package-lock.json -nt $stamp ]]; then
  say "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  touch "$stamp"
else
  say "npm packages: up to date"
fi

if [[ -f native/Makefile ]]; then
  say "building the native agent (native/)"
  make -s -C native
fi

# bin/tvm.js (the CLI and the daemon) runs dist/ while it is newer than src/; without it, tsx
# compiles the sources at every start (about half a second per CLI call)
say "compiling src/ to dist/ (scripts/build-js.ts)"
node --import tsx scripts/build-js.ts

if [[ ${1:-} == --kernel && -f kernels/build.sh ]]; then
  say "guest kernel (cached in ~/.cache/tvm/kernels after the first build, ~10 min at -j2 the first time)"
  bash kernels/build.sh
fi
