#!/bin/sh
# Rewrites every NAME.expected.jsonl, and average.state.json, from the C reference filters in
# examples/filters.
# Run from anywhere; needs edged on PATH or in the repository's .venv.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
edged=${EDGED:-$root/.venv/bin/edged}
grep -v '^#' "$here/cases.txt" | while read -r name filter params; do
  [ -n "$name" ] || continue
  set --
  for kv in $params; do
    [ "${kv#*=}" = "''" ] && kv="${kv%%=*}="
    set -- "$@" --param "$kv"
  done
  "$edged" filter run "$root/examples/filters/$filter.wasm" --input "$here/input.jsonl" "$@" \
    > "$here/$name.expected.jsonl" 2>/dev/null || true
  echo "$name: $(wc -l < "$here/$name.expected.jsonl") records"
done
# average's state after the first 31 lines: its format 1, pinned
head -n 31 "$here/input.jsonl" |
  "$edged" filter run "$root/examples/filters/average.wasm" --save-state "$here/average.state.json" \
  > /dev/null 2>&1
echo "average.state.json: $(cat "$here/average.state.json")"
