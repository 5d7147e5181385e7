#!/usr/bin/env bash
# Installs every Debian 12 package klag needs to build, test and run its test broker, and
# librdkafka 2.8 (Debian 13's source package built for Debian 12 by scripts/librdkafka.sh,
# cached under .cache/librdkafka). Idempotent: when everything is installed already, apt is not
# touched (takes well under a second). Needs root (or sudo) only when something is missing.
#
#   scripts/install-deps.sh            # install what is missing
#   scripts/install-deps.sh --check    # only list what is missing; exit 1 if anything is
set -euo pipefail

PACKAGES=(
  # toolchain and build
  build-essential cmake ninja-build pkg-config clang-format libclang-rt-14-dev
  # the libFuzzer harnesses (tests/fuzz) build with clang
  clang-14
  # libraries
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libspdlog-dev libfmt-dev libssl-dev libsasl2-dev libpq-dev
  nlohmann-json3-dev libbenchmark-dev libyaml-cpp-dev libcurl4-openssl-dev
  # klag-scaler's /metrics (prometheus-cpp's pull Exposer, civetweb inside)
  prometheus-cpp-dev
  # tests (tests/deploy runs pytest with Debian's python3)
  libgtest-dev libgmock-dev googletest python3-pytest python3-yaml python3-jsonschema
  # the real test broker (scripts/kafka.sh) and the tools that talk to it
  openjdk-17-jre-headless maven kcat kafkacat python3-confluent-kafka
  # PostgreSQL sink tests (scripts/postgres.sh); the images' runtime test (tests/image)
  postgresql debootstrap
  # used by the scripts: ss (iproute2), flock/setsid (util-linux), HTTPS to the registries
  iproute2 util-linux ca-certificates
)

usage() {
  sed -n '2,7s/^# \{0,1\}//p' "$0"
}

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h | --help) usage; exit 0 ;;
  *) echo "install-deps.sh: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

# Go: the wire test (tests/wire) needs a recent Go. A newer Go than Debian's (1.19) may be
# installed outside apt (for example /usr/local/go); never replace it with Debian's.
if ! command -v go >/dev/null 2>&1 && [[ ! -x /usr/local/go/bin/go ]]; then
  PACKAGES+=(golang-go)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  # "ii " = wanted install, currently installed, no error.
  if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)" != "ii " ]]; then
    missing+=("$p")
  fi
done

# librdkafka is not in PACKAGES: Debian 12's (2.0.2) is too old (see scripts/librdkafka.sh).
rdkafka_ok=1
scripts_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"${scripts_dir}/librdkafka.sh" check || rdkafka_ok=0

if [[ ${#missing[@]} -eq 0 ]] && ((rdkafka_ok)); then
  echo "install-deps.sh: all ${#PACKAGES[@]} packages and librdkafka $("${scripts_dir}/librdkafka.sh" version) are installed"
  exit 0
fi
if ((check_only)); then
  [[ ${#missing[@]} -eq 0 ]] || echo "install-deps.sh: missing: ${missing[*]}"
  ((rdkafka_ok)) || echo "install-deps.sh: missing: librdkafka $("${scripts_dir}/librdkafka.sh" version)"
  exit 1
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  "${scripts_dir}/librdkafka.sh" install
  exit 0
fi
echo "install-deps.sh: missing: ${missing[*]}"

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 ||
    { echo "install-deps.sh: error: not root and no sudo: install ${missing[*]} as root" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
  "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  if [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)" != "ii " ]]; then
    still+=("$p")
  fi
done
if [[ ${#still[@]} -gt 0 ]]; then
  echo "install-deps.sh: error: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
echo "install-deps.sh: installed ${missing[*]}"
# After the packages: kcat and python3-confluent-kafka pull in Debian 12's librdkafka1, which
# this replaces by the 2.8 build (same soname, so they run on it).
"${scripts_dir}/librdkafka.sh" install
