#!/usr/bin/env bash
# npm run demo: builds what it needs, runs a container in each isolation that exists, prints boot times.
set -euo pipefail
cd "$(dirname "$0")/.."
# The guest kernel is only needed where our VMM can boot it.
if [[ -e /dev/kvm ]]; then bash scripts/setup.sh --kernel; else bash scripts/setup.sh; fi
npx tsx scripts/demo.ts
