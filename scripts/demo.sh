#!/usr/bin/env bash
# npm run demo: builds what it needs, runs a container in each isolation that exists, prints boot times.
set -euo pipefail
cd "$(dirname "$0")/.."
# The guest kernel: --isolation=vm boots it (on kvm, or under QEMU's TCG where there is no /dev/kvm).
bash scripts/setup.sh --kernel
npx tsx scripts/demo.ts
