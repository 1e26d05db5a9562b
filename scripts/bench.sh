#!/usr/bin/env bash
# npm run bench: every benchmark under bench/, each side by side with its reference, in one run.
#   npm run bench              all of them
#   npm run bench -- qcow2 run only bench/qcow2.bench.ts and bench/run.bench.ts
# Benchmarks that need what this machine lacks (e.g. /dev/kvm) say so and are listed at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
say() { printf '\033[1m[bench]\033[0m %s\n' "$*"; }
if ! dpkg-query -W -f='${Status}' docker.io 2>/dev/null | grep -q 'install ok installed'; then
  say "installing Debian's docker.io (dockerd + runc: the reference for bench/run.bench.ts)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
shopt -s nullglob
if (($#)); then files=(); for n in "$@"; do files+=("bench/$n.bench.ts"); done; else files=(bench/*.bench.ts); fi
failed=()
for b in "${files[@]}"; do
  say "== $b"
  npx tsx "$b" || failed+=("$b")
done
if ((${#failed[@]})); then
  say "did not complete (see their output above): ${failed[*]}"
  exit 1
fi
