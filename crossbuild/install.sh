#!/usr/bin/env bash
# Install edged @VERSION@ (linux-@ARCH@) from this bundle, with no network: a venv built from
# wheels/ only, then the systemd service (`edged install-service --source <this directory>`).
#
#   sudo ./install.sh                 # venv in /opt/edged/venv, unit, /etc/edged
#   ./install.sh --help               # options
#
# It refuses, saying why, on a system the bundle cannot run on: not Linux, a 32-bit system
# (wasmtime is 64-bit only), another architecture than @ARCH@, a Python other than CPython
# @PYTHONS@, or a glibc older than @GLIBC@.
set -euo pipefail

VERSION="@VERSION@"
BUNDLE_ARCH="@ARCH@"
PYTHONS="@PYTHONS@"
GLIBC="@GLIBC@"
PIP_WHEEL="@PIP_WHEEL@"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prefix=""
root=""
python=python3
service=1

usage() {
  cat <<EOF
Usage: sudo ./install.sh [--prefix DIR] [--python PYTHON] [--no-service] [--root DIR]

Installs edged $VERSION for linux-$BUNDLE_ARCH from this bundle, without a network.

  --prefix DIR     the venv goes in DIR/venv (default: /opt/edged, or ROOT/opt/edged)
  --python PYTHON  the Python to build the venv with (default: python3; CPython $PYTHONS)
  --no-service     only the venv: skip \`edged install-service\` (no root needed then,
                   given a --prefix you can write to)
  --root DIR       install the service's files under DIR instead of / (a test, an image
                   being inspected): nothing is run on this machine, no root needed
  -h, --help       this text

Run again to reinstall; an existing /etc/edged/edged.yaml is never overwritten.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

while (($#)); do
  case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --python) python=${2:?--python needs a command}; shift 2 ;;
    --root) root=${2:?--root needs a directory}; shift 2 ;;
    --no-service) service=0; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
if [ -n "$root" ]; then
  mkdir -p "$root"
  root=$(cd "$root" && pwd)
fi
prefix=${prefix:-$root/opt/edged}
case $prefix in
  /*) ;;
  *) prefix="$PWD/$prefix" ;;
esac
venv="$prefix/venv"

# EDGED_INSTALL_OS and EDGED_INSTALL_ARCH stand in for `uname -s` and `uname -m` (tests), and
# EDGED_INSTALL_RUNNER is put in front of every Python command (the arm64 proof runs them under
# qemu-user); none is needed on a gateway.
os=${EDGED_INSTALL_OS:-$(uname -s)}
machine=${EDGED_INSTALL_ARCH:-$(uname -m)}
read -r -a runner <<<"${EDGED_INSTALL_RUNNER:-}"

only_64_bit() {
  die "this is a 32-bit system ($1). edged runs its filters on wasmtime, which is 64-bit only
(aarch64 or x86_64), so edged cannot run here.
On a Raspberry Pi 3, 4, 5, 400 or Zero 2 W: install Raspberry Pi OS (64-bit) or Raspberry Pi
OS Lite (64-bit), bookworm (Raspberry Pi Imager lists them; https://www.raspberrypi.com/software/),
then use edged-$VERSION-linux-aarch64.tar.gz. A Pi 1, Zero or Zero W has a 32-bit CPU and
cannot run edged at all."
}

[ "$os" = Linux ] ||
  die "this bundle is for Linux; this system is $os. edged runs on 64-bit Linux (aarch64, x86_64)."
case $machine in
  aarch64 | arm64) arch=aarch64 ;;
  x86_64 | amd64) arch=x86_64 ;;
  arm* | i?86 | x86) only_64_bit "$machine" ;;
  *) die "unsupported machine type $machine: edged's bundles are for aarch64 and x86_64 Linux" ;;
esac
[ "$arch" = "$BUNDLE_ARCH" ] ||
  die "this is the $BUNDLE_ARCH bundle and this machine is $arch: use edged-$VERSION-linux-$arch.tar.gz"

# The Python: its version, whether it is 64-bit, its venv module, its C library. The probe is
# written so that any Python, even 2.7, can answer it.
command -v "$python" >/dev/null 2>&1 || [ -x "$python" ] ||
  die "no $python: edged needs Python 3.11 (python3 on Debian and Raspberry Pi OS bookworm)"
probe=$("${runner[@]}" "$python" -c '
import os, struct, sys
try:
    import venv
    has_venv = "venv"
except ImportError:
    has_venv = "no-venv"
try:
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    libc = ""
glibc = libc.split()[1] if libc.startswith("glibc ") else "none"
impl = getattr(sys, "implementation", None)
print("%d.%d %d %s %s %s" % (sys.version_info[0], sys.version_info[1],
      struct.calcsize("P") * 8, has_venv, glibc, impl.name if impl else "cpython"))
') || die "$python did not run"
read -r pyver bits has_venv libc_version impl <<<"$probe"

version_lt() { # true when $1 < $2 (dotted numbers)
  [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$1" ]
}

[ "$bits" = 64 ] || only_64_bit "$machine kernel, $bits-bit userland and Python"
[ "$impl" = cpython ] || die "$python is $impl; the bundle's wheels are for CPython"
if version_lt "$pyver" 3.11; then
  die "edged needs Python 3.11 or newer; $python is $pyver. Debian and Raspberry Pi OS bookworm have 3.11 (python3)."
fi
case " $PYTHONS " in
  *" $pyver "*) ;;
  *) die "this bundle carries wheels for CPython $PYTHONS and $python is $pyver: pass --python with one of those, or build a bundle for $pyver (crossbuild/build-bundle --python $pyver)" ;;
esac
[ "$has_venv" = venv ] ||
  die "$python has no venv module; on Debian: apt-get install python3-venv (a .deb can be copied over)"
[ "$libc_version" != none ] ||
  die "this system's C library is not glibc; the bundle's wheels are manylinux (glibc $GLIBC or newer)"
if version_lt "$libc_version" "$GLIBC"; then
  die "the bundle's wheels need glibc $GLIBC or newer; this system has $libc_version"
fi

if ((service)) && [ -z "$root" ] && [ "$(id -u)" -ne 0 ]; then
  die "installing the service creates /etc/edged, a system user and a unit: run it with sudo (or pass --no-service)"
fi

wheels="$here/wheels"
[ -f "$wheels/$PIP_WHEEL" ] || die "the bundle is incomplete: no wheels/$PIP_WHEEL"
compgen -G "$wheels/edged-$VERSION-*.whl" >/dev/null || die "the bundle is incomplete: no edged wheel"

# Only this bundle's wheels: no index, and no pip configuration or PIP_* variables that could add
# a find-links location or an index.
while read -r name; do unset "$name"; done < <(compgen -e | grep '^PIP_' || true)
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ]; then
  die "$venv exists and is not a venv: move it away or pass another --prefix"
fi
if [ ! -f "$venv/pyvenv.cfg" ]; then
  say "creating the venv $venv (Python $pyver, linux-$arch)"
  mkdir -p "$prefix" || die "cannot create $prefix"
  # Without pip: Debian's python3-venv (ensurepip) is not needed, pip comes from wheels/.
  "${runner[@]}" "$python" -m venv --without-pip "$venv" || die "could not create the venv $venv"
else
  say "reinstalling into the existing venv $venv"
fi
say "installing edged $VERSION and its dependencies from $wheels (no index)"
"${runner[@]}" "$venv/bin/python" "$wheels/$PIP_WHEEL/pip" install --quiet --no-index \
  --find-links "$wheels" --force-reinstall --no-warn-script-location pip "edged==$VERSION" ||
  die "pip could not install the bundle's wheels (see above)"

# The native pieces load on this machine: wasmtime compiles and runs a module.
"${runner[@]}" "$venv/bin/python" -c '
import platform
from importlib.metadata import version
import cryptography.hazmat.primitives.asymmetric.ed25519, yaml, wasmtime, edged
engine = wasmtime.Engine()
store = wasmtime.Store(engine)
module = wasmtime.Module(engine, "(module (func (export \"f\") (result i32) i32.const 42))")
assert wasmtime.Instance(store, module, []).exports(store)["f"](store) == 42
print("installed edged", edged.__version__, "with wasmtime", version("wasmtime"), "on", platform.machine())
' || die "edged is installed but wasmtime does not run here (see above)"

if ((service)); then
  args=(install-service --source "$here")
  [ -z "$root" ] || args+=(--root "$root")
  "${runner[@]}" "$venv/bin/python" -m edged "${args[@]}"
else
  say ""
  say "Next (the service was not installed, --no-service):"
  say "  sudo $venv/bin/edged install-service --source $here"
  say "  sudo systemctl enable --now edged"
fi
say ""
say "More: $here/README.md, and the demo (needs mosquitto): cd $here && $venv/bin/edged demo"
