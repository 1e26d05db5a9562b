#!/usr/bin/env bash
# npm run bench: every benchmark under bench/, each side by side with its reference.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
shopt -s nullglob
for b in bench/*.bench.ts; do
  echo "== $b"
  npx tsx "$b"
done
