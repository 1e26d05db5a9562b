#!/usr/bin/env bash
# Builds tvm's guest kernel reproducibly and caches the result.
#
#   kernels/build.sh              build (or reuse) and print the artifact directory last
#   kernels/build.sh --print-key  print the cache key and exit
#
# Source: Debian's linux-source-6.1 tarball ($TVM_KERNEL_SOURCE), extracted once into the cache.
# Configuration: `make tinyconfig` + kernels/config-fragment + `make olddefconfig`, then
# kernels/check-config.sh fails the build if Kconfig dropped any requested option.
# Patches: kernels/patches/*.patch in name order (-p1).
#
# Cache (${TVM_CACHE:-$HOME/.cache/tvm}/kernels):
#   src/<tarball-sha16>/linux-source-6.1  the extracted tree, with our patches applied in place
#   src/<tarball-sha16>/applied/           copies of the patches applied there (to revert them)
#   obj/<tarball-sha16>/                   the O= object tree, kept for incremental rebuilds
#   <key>/{vmlinux,bzImage,System.map,config,key-material}  finished artifacts
#   current -> <key>                       the last successful build
# key = sha256 of "key-material": the tarball's sha256 and the sha256 of every input file here.
# A finished <key> directory is never modified, so a second run with the same inputs is instant.
set -euo pipefail

# Everything runs inside main, so bash has parsed the whole file before it starts: editing or
# updating this script while a build runs cannot change what that build executes.
main() {

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_tarball=${TVM_KERNEL_SOURCE:-/usr/src/linux-source-6.1.tar.xz}
cache=${TVM_CACHE:-$HOME/.cache/tvm}/kernels
jobs=${TVM_KERNEL_JOBS:-$(nproc)}
# Fixed identity so the same inputs give the same vmlinux (uname -v, /proc/version).
export KBUILD_BUILD_TIMESTAMP='Mon Jan  1 00:00:00 UTC 2024'
export KBUILD_BUILD_USER=tvm
export KBUILD_BUILD_HOST=tvm
export KBUILD_BUILD_VERSION=1
export LC_ALL=C

say() { printf 'tvm-kernel: %s\n' "$*" >&2; }
die() { printf 'tvm-kernel: error: %s\n' "$*" >&2; exit 1; }

[ -r "$source_tarball" ] || die "kernel source $source_tarball not found (apt-get install linux-source-6.1)"

# Inputs that decide the result, relative to the repository root; patches in application order.
mapfile -t patches < <(cd "$here" && ls patches/*.patch 2>/dev/null | LC_ALL=C sort)
inputs=(build.sh check-config.sh config-fragment "${patches[@]}")

key_material() {
  local tar_sha
  tar_sha=$(sha256sum "$source_tarball" | cut -d' ' -f1)
  printf 'source %s %s\n' "$(basename "$source_tarball")" "$tar_sha"
  local f
  for f in "${inputs[@]}"; do
    printf 'kernels/%s %s\n' "$f" "$(sha256sum "$here/$f" | cut -d' ' -f1)"
  done
}

material=$(key_material)
key=$(printf '%s\n' "$material" | sha256sum | cut -d' ' -f1)
if [ "${1:-}" = "--print-key" ]; then
  printf '%s\n' "$key"
  exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--print-key]"

out=$cache/$key
point_current() {
  ln -sfn "$key" "$cache/.current.$$"
  mv -T "$cache/.current.$$" "$cache/current"
}

if [ -f "$out/vmlinux" ]; then
  point_current
  say "cached build $key"
  printf '%s\n' "$out"
  exit 0
fi

mkdir -p "$cache"
# One build at a time per cache: the source and object trees are shared.
exec 9>"$cache/.lock"
say "taking the build lock"
flock 9
if [ -f "$out/vmlinux" ]; then   # another run finished it while we waited
  point_current
  printf '%s\n' "$out"
  exit 0
fi

tar_sha16=$(printf '%s\n' "$material" | head -1 | cut -d' ' -f3 | cut -c1-16)
srcroot=$cache/src/$tar_sha16
src=$srcroot/linux-source-6.1
obj=$cache/obj/$tar_sha16

# 1. Extract once.
if [ ! -f "$srcroot/.extracted" ]; then
  say "extracting $source_tarball (once)"
  rm -rf "$srcroot"
  mkdir -p "$srcroot.tmp"
  tar -C "$srcroot.tmp" -xJf "$source_tarball"
  [ -f "$srcroot.tmp/linux-source-6.1/Makefile" ] || die "$source_tarball has no linux-source-6.1/Makefile"
  mkdir -p "$srcroot"
  mv "$srcroot.tmp/linux-source-6.1" "$src"
  rmdir "$srcroot.tmp"
  mkdir -p "$srcroot/applied"
  touch "$srcroot/.extracted"
fi

# 2. Bring the tree to exactly our patches: revert what is applied (newest first) unless it is
# already the same list, then apply ours. A patch stays in applied/ only while it is in the tree.
applied_dir=$srcroot/applied
same=1
mapfile -t have < <(cd "$applied_dir" && ls 2>/dev/null | LC_ALL=C sort)
if [ "${#have[@]}" -ne "${#patches[@]}" ]; then same=0; else
  for i in "${!patches[@]}"; do
    p=${patches[$i]}
    [ "${have[$i]}" = "$(basename "$p")" ] && cmp -s "$applied_dir/${have[$i]}" "$here/$p" || same=0
  done
fi
if [ $same -eq 0 ]; then
  for ((i = ${#have[@]} - 1; i >= 0; i--)); do
    say "reverting ${have[$i]}"
    patch -d "$src" -p1 -R --no-backup-if-mismatch -s < "$applied_dir/${have[$i]}" \
      || die "cannot revert ${have[$i]}: the tree at $src is damaged; delete $srcroot"
    rm "$applied_dir/${have[$i]}"
  done
  for p in "${patches[@]}"; do
    say "applying $p"
    patch -d "$src" -p1 --dry-run -s < "$here/$p" >/dev/null || die "$p does not apply to $(basename "$source_tarball")"
    patch -d "$src" -p1 --no-backup-if-mismatch -s < "$here/$p"
    cp "$here/$p" "$applied_dir/"
  done
else
  say "patches already applied: ${patches[*]##*/}"
fi

# 3. Configure.
kmake() { make -C "$src" O="$obj" ARCH=x86_64 "$@"; }
mkdir -p "$obj"
say "configuring: tinyconfig + config-fragment"
kmake -s tinyconfig >/dev/null 2>"$obj/.tinyconfig.log" || { cat "$obj/.tinyconfig.log" >&2; die "make tinyconfig failed"; }
cat "$here/config-fragment" >> "$obj/.config"
# Kconfig warns once per fragment line that changes tinyconfig's choice ("override:"): expected.
kmake -s olddefconfig >/dev/null 2>"$obj/.olddefconfig.log" || { cat "$obj/.olddefconfig.log" >&2; die "make olddefconfig failed"; }
grep -v 'warning: override:' "$obj/.olddefconfig.log" >&2 || true
say "fragment overrode $(grep -c 'warning: override: reassigning' "$obj/.olddefconfig.log" || true) tinyconfig settings"
"$here/check-config.sh" "$here/config-fragment" "$obj/.config" >&2

# 4. Build.
say "building vmlinux and bzImage with -j$jobs (8 to 20 minutes from scratch)"
start=$(date +%s)
kmake -j"$jobs" vmlinux bzImage >&2
say "build finished in $(( $(date +%s) - start )) s"

# 5. Publish atomically: a complete <key> directory or none.
tmp=$cache/.$key.$$.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
cp "$obj/vmlinux" "$tmp/vmlinux"
cp "$obj/arch/x86/boot/bzImage" "$tmp/bzImage"
cp "$obj/System.map" "$tmp/System.map"
cp "$obj/.config" "$tmp/config"
printf '%s\n' "$material" > "$tmp/key-material"
grep -q ' entry_SYSCALL_64$' "$tmp/System.map" || die "System.map has no entry_SYSCALL_64"
rm -rf "$out"
mv -T "$tmp" "$out"
point_current
say "ready: $out ($(du -h "$out/vmlinux" | cut -f1) vmlinux, $(kmake -s kernelrelease))"
printf '%s\n' "$out"
}

main "$@"
