#!/usr/bin/env bash
# npm run lint: ESLint with type information (zero warnings), Prettier's check of the TypeScript,
# JavaScript and JSON, and clang-format's of native/. All three run, each timed, so one CI log
# names every kind of finding; the exit status fails if any did.
# npm run format (--fix): Prettier --write and clang-format -i. ESLint's own fixes are not
# applied here: they change code, not layout, and want a reader (run `npx eslint --fix` for them).
set -uo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m[lint]\033[0m %s\n' "$*"; }

# pinned: another clang-format version lays the same file out differently
CLANG_FORMAT=${CLANG_FORMAT:-clang-format-14}
if ! command -v "$CLANG_FORMAT" >/dev/null; then
  say "missing: $CLANG_FORMAT (Debian package clang-format-14; scripts/setup.sh installs it)"
  exit 1
fi
mapfile -t c_files < <(find native -path native/build -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print | sort)

if [[ ${1:-} == --fix ]]; then
  npx prettier --write --log-level warn . && "$CLANG_FORMAT" -i "${c_files[@]}"
  exit
fi

failed=()
step() {
  local name=$1 start=$SECONDS
  shift
  say "$name"
  if "$@"; then say "$name: clean ($((SECONDS - start)) s)"; else failed+=("$name"); say "$name: FAILED ($((SECONDS - start)) s)"; fi
}
step "eslint" npx eslint --max-warnings 0 .
step "prettier --check" npx prettier --check --log-level warn .
step "clang-format (native/)" "$CLANG_FORMAT" --dry-run -Werror "${c_files[@]}"
if ((${#failed[@]})); then
  say "failed: ${failed[*]} (npm run format fixes the layout; ESLint's findings are fixed by hand)"
  exit 1
fi
