#!/usr/bin/env bash
# Verifies that every option of a config fragment ended up in a resolved kernel .config.
#
# Kconfig drops a requested option without a word when one of its dependencies is missing, so
# "we asked for it" proves nothing; this check compares the fragment with what `make
# olddefconfig` produced and names every option that did not survive.
#
# Usage: check-config.sh <fragment> <.config>
# Fragment lines: `CONFIG_X=value` (must appear exactly so) or `# CONFIG_X is not set` (must not
# be set to anything). Other comments and blank lines are ignored. Exit 0 if all hold, 1 with one
# line per mismatch on stderr otherwise, 2 on usage errors.
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <fragment> <.config>" >&2
  exit 2
fi
fragment=$1
config=$2
for f in "$fragment" "$config"; do
  [ -r "$f" ] || { echo "check-config: cannot read $f" >&2; exit 2; }
done

awk -v fragment="$fragment" '
  # Pass 1: the resolved .config, as name -> value ("n" for "is not set").
  FILENAME == ARGV[1] {
    if (match($0, /^CONFIG_[A-Za-z0-9_]+=/)) {
      name = substr($0, 1, RLENGTH - 1); have[name] = substr($0, RLENGTH + 1)
    } else if (match($0, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) {
      have[$2] = "n"
    }
    next
  }
  # Pass 2: the fragment.
  /^[ \t]*$/ { next }
  /^# CONFIG_[A-Za-z0-9_]+ is not set$/ {
    want = $2
    if ((want in have) && have[want] != "n") {
      printf "check-config: %s should be unset but is %s=%s\n", want, want, have[want] > "/dev/stderr"; bad++
    }
    checked++; next
  }
  /^#/ { next }
  /^CONFIG_[A-Za-z0-9_]+=/ {
    eq = index($0, "="); name = substr($0, 1, eq - 1); value = substr($0, eq + 1)
    if (!(name in have)) {
      printf "check-config: %s=%s was dropped (missing dependency or unknown option)\n", name, value > "/dev/stderr"; bad++
    } else if (have[name] != value) {
      printf "check-config: %s should be %s but is %s\n", name, value, have[name] > "/dev/stderr"; bad++
    }
    checked++; next
  }
  { printf "check-config: %s:%d: cannot parse: %s\n", fragment, FNR, $0 > "/dev/stderr"; bad++ }
  END {
    if (bad) { printf "check-config: %d of %d fragment options not satisfied\n", bad, checked > "/dev/stderr"; exit 1 }
    printf "check-config: all %d fragment options satisfied\n", checked
  }
' "$config" "$fragment"
