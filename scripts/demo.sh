#!/usr/bin/env bash
# npm run demo: builds what it needs, runs a container in each isolation that exists, prints boot times.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsx scripts/demo.ts
