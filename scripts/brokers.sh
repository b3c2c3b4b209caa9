#!/usr/bin/env bash
# Build the MQTT 5 brokers other than mosquitto that the tests run (tests/brokers/<name>/), once
# per machine: each into a cache outside the clone, in a folder named after the broker and a hash
# of its sources, so that a fresh clone on the same machine (CI) reuses the build, and a change to
# the sources builds anew.
#
#   scripts/brokers.sh            build those not built yet (mochi, hivemq)
#   scripts/brokers.sh mochi      only that one
#
# mochi   Mochi MQTT v2 (Go): needs Go 1.21 or newer.
# hivemq  HiveMQ Community Edition, embedded (Java): needs Java 11 or newer and Maven.
#
# What is missing is installed with apt-get (sudo when not root). A broker whose toolchain cannot
# be had is not built: the script says why, leaves the reason where the tests read it, and goes
# on; the tests of that broker are then skipped with that reason. EDGED_NO_OTHER_BROKERS=1 skips
# them all, and this script then builds nothing. The cache is
# ${EDGED_BROKERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edged/brokers}; tests/helpers/otherbrokers.py
# computes the same folder names.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${EDGED_NO_OTHER_BROKERS:-}" ]; then
  echo "EDGED_NO_OTHER_BROKERS is set: the other brokers are not built, their tests are skipped."
  exit 0
fi

CACHE=${EDGED_BROKERS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edged/brokers}
SOURCES=tests/brokers
mkdir -p "$CACHE"
WORK=""
trap 'rm -rf "$WORK"' EXIT

# The hash of a broker's sources: sha256sum of each file (sorted by path, build outputs left
# out), hashed again; the first 16 hex digits.
source_hash() {
  (cd "$SOURCES/$1" && find . -type f ! -path './target/*' -print0 | LC_ALL=C sort -z |
    xargs -0 sha256sum) | sha256sum | cut -c1-16
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""
# apt_install PACKAGE...: install with apt-get; false when that cannot be done here.
apt_install() {
  command -v apt-get >/dev/null || return 1
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    return 1
  fi
  echo "Installing: $* (to build the test brokers)"
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" \
    >/dev/null
}

# The go command to use: on PATH, /usr/local/go (the upstream tarball's place) or one of
# Debian's versioned golang-1.NN packages (bookworm-backports), the first that is 1.21 or newer.
GO_MIN=21
go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }
find_go() {
  local candidate minor
  for candidate in "$(command -v go || true)" /usr/local/go/bin/go /usr/lib/go-1.*/bin/go; do
    if [ -z "$candidate" ] || [ ! -x "$candidate" ]; then
      continue
    fi
    minor=$(go_minor "$candidate")
    if [ -n "$minor" ] && [ "$minor" -ge "$GO_MIN" ]; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

java_major() {
  java -version 2>&1 | sed -n '1s/.*version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p'
}

# unavailable NAME HASH REASON: say why NAME is not built, and leave the reason for the tests.
unavailable() {
  echo "scripts/brokers.sh: $1 is not built, its tests will be skipped: $3" >&2
  printf '%s\n' "$3" >"$CACHE/$1-$2.unavailable"
}

build_mochi() {
  local hash=$1 out=$2 work=$3 go
  if ! go=$(find_go); then
    command -v go >/dev/null || apt_install golang-go || true
    if ! go=$(find_go); then
      unavailable mochi "$hash" "Mochi MQTT v2 needs Go 1.21 or newer (log/slog), and this \
machine has $(command -v go >/dev/null && go version || echo 'no Go'). Debian bookworm's golang \
is 1.19: install golang-1.22 from bookworm-backports (apt-get install -t bookworm-backports \
golang-1.22), or Go from the upstream tarball in /usr/local/go; then run scripts/brokers.sh again."
      return 0
    fi
  fi
  # GOTOOLCHAIN=local: build with this Go, never fetch another one.
  (cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$go" build -trimpath -o "$out/mochi-broker" .)
}

build_hivemq() {
  local hash=$1 out=$2 work=$3 major
  major=$(java_major || true)
  if ! command -v mvn >/dev/null || [ -z "$major" ] || [ "$major" -lt 11 ]; then
    apt_install default-jdk-headless maven || true
    major=$(java_major || true)
  fi
  if ! command -v mvn >/dev/null || [ -z "$major" ] || [ "$major" -lt 11 ]; then
    unavailable hivemq "$hash" "HiveMQ CE needs Java 11 or newer and Maven to build, and this \
machine has Java ${major:-none}$(command -v mvn >/dev/null || echo ', no Maven') (Debian: \
apt-get install default-jdk-headless maven); then run scripts/brokers.sh again."
    return 0
  fi
  (cd "$work" && mvn -q -B -Dstyle.color=never package)
  mv "$work/target/hivemq-broker.jar" "$work/target/lib" "$out/"
}

build() {
  local name=$1 hash final started
  hash=$(source_hash "$name")
  final="$CACHE/$name-$hash"
  if [ -d "$final" ]; then
    return 0
  fi
  rm -f "$CACHE/$name-$hash.unavailable"
  echo "Building the $name test broker (once per machine, in $final)"
  started=$(date +%s)
  # Built in a copy of the sources beside the cache, then moved in place whole: a build that
  # fails or is interrupted leaves no half-made folder behind, and the clone stays clean.
  WORK=$(mktemp -d "$CACHE/.build-$name-XXXXXX")
  cp -R "$SOURCES/$name/." "$WORK/src"
  mkdir "$WORK/out"
  "build_$name" "$hash" "$WORK/out" "$WORK/src"
  if [ ! -e "$CACHE/$name-$hash.unavailable" ]; then
    mv "$WORK/out" "$final"
    echo "Built $name in $(($(date +%s) - started)) s"
  fi
  rm -rf "$WORK"
  WORK=""
}

names=("$@")
((${#names[@]})) || names=(mochi hivemq)
for name in "${names[@]}"; do
  if [ ! -d "$SOURCES/$name" ]; then
    echo "scripts/brokers.sh: no broker '$name' in $SOURCES" >&2
    exit 2
  fi
  build "$name"
done
