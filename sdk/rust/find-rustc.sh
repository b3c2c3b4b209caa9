#!/bin/sh
# Prints a rustc that can build for wasm32-unknown-unknown, or fails with a hint.
# Debian's rustc (/usr/bin/rustc with libstd-rust-dev-wasm32) comes first: a rustup rustc found
# earlier on PATH often lacks the wasm32 target.
for rustc in ${RUSTC:-} /usr/bin/rustc "$(command -v rustc 2>/dev/null)"; do
  [ -n "$rustc" ] && [ -x "$rustc" ] || continue
  sysroot=$("$rustc" --print sysroot 2>/dev/null) || continue
  if ls "$sysroot"/lib/rustlib/wasm32-unknown-unknown/lib/libcore-*.rlib >/dev/null 2>&1; then
    echo "$rustc"
    exit 0
  fi
done
echo "no rustc with the wasm32-unknown-unknown target: install Debian's rustc and" \
  "libstd-rust-dev-wasm32, or run 'rustup target add wasm32-unknown-unknown'" >&2
exit 1
