#!/usr/bin/env bash
# The compilers of the WASI SDKs, for tests/integration/test_sdks_wasi.py: installs each one
# asked for (default: all) only when it is missing, then says which one the tests will use.
#
#   scripts/toolchains.sh [go] [zig]
#
# zig: the PyPI package pinned in sdk/zig/requirements.txt, into .venv (scripts/setup.sh
#      first). Python -m ziglang is the whole compiler, wasi-libc included.
# go:  Go 1.24 or newer (//go:wasmexport). Debian bookworm's golang-go is 1.19: too old, and
#      too old to fetch a newer one. So this uses a Go that is there ($GO, PATH,
#      /usr/local/go/bin); a Go 1.21..1.23 fetches $GO_TOOLCHAIN from the Go module proxy
#      (the toolchain mechanism: GOTOOLCHAIN), and the tests need that variable exported.
#      With no usable Go the Go tests skip and say why.
#
# Exits 1 when a toolchain asked for cannot be had (its tests then skip), 2 on a bad argument.
#
# Build caches (GOCACHE, Zig's global cache, the built modules) go under
# ~/.cache/edged/toolchains (or $EDGED_CACHE), per machine: a fresh clone reuses them.
set -euo pipefail
cd "$(dirname "$0")/.."

GO_MIN_MINOR=24
GO_TOOLCHAIN=${GO_TOOLCHAIN:-go1.26.8}
status=0

go_minor() { # "go1.26.8" -> 26 (0 when it is not go1.N)
  local v=${1#go1.}
  v=${v%%.*}
  [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}

want_go() {
  local candidates=() go minor
  [ -n "${GO:-}" ] && candidates+=("$GO")
  command -v go >/dev/null 2>&1 && candidates+=("$(command -v go)")
  candidates+=(/usr/local/go/bin/go /usr/lib/go/bin/go)
  for go in "${candidates[@]}"; do
    [ -x "$go" ] || continue
    minor=$(go_minor "$("$go" env GOVERSION 2>/dev/null || true)")
    if ((minor >= GO_MIN_MINOR)); then
      echo "go: $go ($("$go" env GOVERSION))"
      return
    fi
    if ((minor >= 21)); then
      echo "go: $go is go1.$minor; fetching $GO_TOOLCHAIN through the Go module proxy"
      GOTOOLCHAIN=$GO_TOOLCHAIN "$go" version
      echo "go: export GOTOOLCHAIN=$GO_TOOLCHAIN before running the tests"
      return
    fi
  done
  echo "go: no Go 1.$GO_MIN_MINOR or newer here (set GO=/path/to/go); the Go tests skip" >&2
  status=1
}

want_zig() {
  local pinned have
  if [ ! -x .venv/bin/python ]; then
    echo "zig: no .venv; run scripts/setup.sh first" >&2
    status=1
    return
  fi
  pinned=$(sed -n 's/^ziglang==//p' sdk/zig/requirements.txt)
  have=$(.venv/bin/python -m ziglang version 2>/dev/null || true)
  if [ "$have" != "$pinned" ]; then
    echo "zig: installing ziglang==$pinned into .venv"
    .venv/bin/python -m pip install -q -r sdk/zig/requirements.txt
  fi
  echo "zig: .venv/bin/python -m ziglang ($(.venv/bin/python -m ziglang version))"
}

(($#)) || set -- go zig
for tool in "$@"; do
  case $tool in
    go) want_go ;;
    zig) want_zig ;;
    *)
      echo "usage: $0 [go] [zig]" >&2
      exit 2
      ;;
  esac
done
exit "$status"
