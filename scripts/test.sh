#!/usr/bin/env bash
# The test command (npm test): sets up what the tests need, type-checks, then runs every
# vitest project this machine can run. The kvm project needs /dev/kvm; where it is absent,
# this says so loudly and names what is missing (run `npm run test:kvm` to see it fail).
set -euo pipefail
cd "$(dirname "$0")/.."
# The guest kernel is built (once, cached outside the clone) because the integration suite
# boots it under QEMU's emulator, and the kvm project boots it in our VMM.
bash scripts/setup.sh --kernel
say() { printf '\033[1m[test]\033[0m %s\n' "$*"; }

say "type-checking (tsc --noEmit, strict)"
npx tsc -p tsconfig.json --noEmit
# ESLint (a forgotten promise loses an error), Prettier and clang-format: see scripts/lint.sh
say "linting (npm run lint)"
npm run -s lint

projects=(--project unit --project integration)
if [[ -r /dev/kvm && -w /dev/kvm ]]; then
  say "/dev/kvm present: running the kvm project too"
  projects+=(--project kvm)
else
  reason="/dev/kvm does not exist on this machine"
  if dmesg 2>/dev/null | grep -q 'kvm-pvm: this kernel is itself a kvm-pvm guest'; then
    reason="$reason (kvm_pvm is loaded but did not bind: 'this kernel is itself a kvm-pvm guest')"
  fi
  echo "=================================================================="
  echo " NOT RUN: the kvm test project (test/kvm). Missing: /dev/kvm."
  echo " $reason"
  echo "=================================================================="
fi
say "running vitest: ${projects[*]}"
report=$(mktemp --suffix=.json)
trap 'rm -f "$report"' EXIT
rc=0
npx vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$report" "$@" || rc=$?
# One plain closing line that any CI log reader understands.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`);
' "$report" || true
exit "$rc"
