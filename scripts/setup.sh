#!/usr/bin/env bash
# Install what edged's demo and tests need and is missing, then the Python environment in .venv.
# Safe to run again: it only installs what is not there yet.
set -euo pipefail
cd "$(dirname "$0")/.."

# command that must exist -> Debian package that provides it
declare -A NEEDED=(
  [mosquitto]=mosquitto
  [mosquitto_pub]=mosquitto-clients
  [clang]=clang
  [wasm-ld]=lld
  [wat2wasm]=wabt
  [make]=make
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

missing=()
for cmd in "${!NEEDED[@]}"; do
  have "$cmd" || missing+=("${NEEDED[$cmd]}")
done

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "edged needs Python 3.11 or newer; '$PYTHON' is $("$PYTHON" --version 2>&1)." >&2
  echo "On Debian bookworm or Raspberry Pi OS bookworm, python3 is 3.11." >&2
  exit 1
fi
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# The filter SDKs' compilers: Debian's rustc with the wasm32 standard library (a rustup rustc
# often lacks that target), and Node.js for AssemblyScript.
sdk/rust/find-rustc.sh >/dev/null 2>&1 || missing+=(rustc libstd-rust-dev-wasm32)
have node || missing+=(nodejs)
# C filters with a libc (WASI): wasi-libc, and clang's wasm32 runtime that its printf needs.
[ -e /usr/include/wasm32-wasi/stdio.h ] || missing+=(wasi-libc)
compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null ||
  missing+=(libclang-rt-14-dev-wasm32)
have npm || missing+=(npm)

if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "Please install: ${missing[*]} (no apt-get here to do it)." >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The AssemblyScript compiler, from the lock file, again only when it changes.
as_stamp=sdk/assemblyscript/node_modules/.installed-from
as_want=$(sha256sum sdk/assemblyscript/package-lock.json | cut -d' ' -f1)
if [ "$(cat "$as_stamp" 2>/dev/null)" != "$as_want" ]; then
  (cd sdk/assemblyscript && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$as_want" > "$as_stamp"
fi

# The venv is rebuilt only when the dependency list changes.
stamp=.venv/.installed-from
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  # The Sparkplug B tests' oracle. Its metadata pins paho-mqtt<2 for its MQTT client, which the
  # tests do not use (only its payload classes), and edged needs paho-mqtt 2: so no dependencies.
  .venv/bin/python -m pip install -q --no-deps "pysparkplug==0.6.1"
  echo "$want" > "$stamp"
fi
