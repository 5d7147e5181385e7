#!/usr/bin/env bash
# The runtime stage of Dockerfile.scaler and Dockerfile.job, without a Docker engine: for each,
# a minimal Debian bookworm root filesystem (debootstrap --variant=minbase, cached), exactly the
# runtime packages the Dockerfile's last stage installs (parsed from it, so the two cannot
# drift), the binaries that stage copies, and then, inside a chroot, as the image's non-root
# user, on a read-only root:
#   - ldd of every binary: a library no listed package provides fails the test;
#   - `--help` of every binary;
#   - scaler: klag-scaler serving, klag-health (from the same root) answering SERVING, SIGTERM
#     ends it cleanly;
#   - a self-check that the ldd check bites: klag-scaler in the job's root (no gRPC) must fail.
#
#   tests/image/run.sh [--build-dir build] [--cache DIR] [--keep]
#
# Needs root (debootstrap, chroot, mounts in a private mount namespace), debootstrap, the
# Debian mirror through apt (deb.debian.org), and librdkafka's .debs (scripts/librdkafka.sh
# build, which install-deps.sh has already run: cached). Environment: KLAG_IMAGE_CACHE (default
# <repo>/.cache/image: the base root filesystem tarball, apt lists and .deb archives),
# KLAG_DEBIAN_MIRROR (default http://deb.debian.org/debian). Prints "N passed, N failed".
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${REPO_ROOT}/build"
CACHE="${KLAG_IMAGE_CACHE:-${REPO_ROOT}/.cache/image}"
MIRROR="${KLAG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(cd "$2" && pwd)"; shift ;;
    --cache) CACHE="$2"; shift ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "image test: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

PASSED=0
FAILED=0
T0=$SECONDS
ok() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }
log() { printf '[image %4ds] %s\n' $((SECONDS - T0)) "$*"; }

[[ $(id -u) -eq 0 ]] || { echo "image test: needs root (debootstrap, chroot)" >&2; exit 1; }
for tool in debootstrap chroot unshare mount tar python3; do
  command -v "$tool" >/dev/null || { echo "image test: $tool is missing" >&2; exit 1; }
done

mkdir -p "$CACHE"
WORK="$(mktemp -d "${CACHE}/work.XXXXXX")"
cleanup() {
  if ((KEEP)); then echo "kept ${WORK}"; else rm -rf --one-file-system "$WORK"; fi
}
trap cleanup EXIT

# ------------------------------------------------------------------ what the Dockerfiles say
# Prints, for a Dockerfile's last stage: line 1 the runtime packages, line 2 the uid:gid of
# USER, line 3 its groupadd/useradd commands, then one "source destination-dir" line per COPY
# --from.
dockerfile_facts() {
  /usr/bin/python3 - "$1" <<'EOF'
import re, shlex, sys
text = open(sys.argv[1]).read()
lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
logical = re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()
last = max(i for i, l in enumerate(logical) if l.startswith("FROM "))
stage = logical[last:]
packages = []
for l in stage:
    if l.startswith("RUN "):
        for cmd in l[4:].split("&&"):
            w = shlex.split(cmd)
            if "apt-get" in w and "install" in w:
                packages += [x for x in w[w.index("install") + 1:] if not x.startswith("-")]
print(" ".join(packages))
(user,) = [l.split()[1] for l in stage if l.startswith("USER ")]
print(user)
# The image's user, created by the stage's own groupadd/useradd commands.
accounts = [c.strip() for l in stage if l.startswith("RUN ") for c in l[4:].split("&&")
            if c.strip().startswith(("groupadd ", "useradd "))]
print(" && ".join(accounts))
for l in stage:
    if l.startswith("COPY --from="):
        words = l.split()[2:]
        for src in words[:-1]:
            print(src, words[-1])
EOF
}

# ------------------------------------------------------------------ the base root filesystem
BASE_TAR="${CACHE}/bookworm-minbase.tar"
if [[ ! -s "$BASE_TAR" ]]; then
  log "debootstrap --variant=minbase bookworm (first run; cached in ${BASE_TAR})"
  base="${WORK}/base"
  if ! debootstrap --variant=minbase bookworm "$base" "$MIRROR" >"${WORK}/debootstrap.log" 2>&1; then
    tail -n 30 "${WORK}/debootstrap.log" >&2
    echo "image test: debootstrap failed" >&2
    exit 1
  fi
  rm -rf "${base}/var/cache/apt/archives/"*.deb "${base}/var/lib/apt/lists/"*
  tar -C "$base" -cf "${BASE_TAR}.tmp" .
  mv "${BASE_TAR}.tmp" "$BASE_TAR"
  rm -rf --one-file-system "$base"
else
  log "base root filesystem from cache (${BASE_TAR})"
fi
mkdir -p "${CACHE}/apt-archives/partial" "${CACHE}/apt-lists/partial"

# Runs "$@" chrooted in $root inside a private mount and PID namespace: /proc, /dev and the apt
# cache are mounted there only, and every process started inside ends with it.
# in_root ROOT MODE CMD...   MODE: rw (installing) or ro (the image: read-only root)
in_root() {
  local root="$1" mode="$2"
  shift 2
  unshare --mount --pid --fork --kill-child /bin/bash -c '
    set -e
    root="$1" mode="$2" cache="$3"; shift 3
    mount --make-rprivate /
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    if [[ "$mode" == rw ]]; then
      mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
      mount --bind "$cache/apt-lists" "$root/var/lib/apt/lists"
    else
      mount -t tmpfs -o size=16m tmpfs "$root/tmp"
      mount -o remount,bind,ro "$root"
    fi
    exec chroot "$root" "$@"
  ' in_root "$root" "$mode" "$CACHE" "$@"
}

# ------------------------------------------------------------------ one image
# build_root NAME DOCKERFILE: a root with the Dockerfile's runtime packages, user and binaries.
build_root() {
  local name="$1" dockerfile="$2" root="${WORK}/$1"
  local facts packages user
  facts="$(dockerfile_facts "${REPO_ROOT}/${dockerfile}")"
  packages="$(sed -n 1p <<<"$facts")"
  user="$(sed -n 2p <<<"$facts")"
  log "${name}: runtime packages from ${dockerfile}: ${packages}"
  mkdir -p "$root"
  tar -C "$root" -xf "$BASE_TAR"
  cp /etc/resolv.conf "${root}/etc/resolv.conf"
  # .deb files the stage copies from the image's `librdkafka` stage (which runs
  # scripts/librdkafka.sh build): the same .debs, from this machine's cache, before apt runs.
  local src dest deb_dir=""
  while read -r src dest; do
    [[ "$src" == *.deb ]] || continue
    [[ -n "$deb_dir" ]] || deb_dir="$("${REPO_ROOT}/scripts/librdkafka.sh" build)" || {
      bad "${name}: scripts/librdkafka.sh build failed"
      return 1
    }
    mkdir -p "${root}${dest}"
    # shellcheck disable=SC2086 # src is a glob on purpose
    cp ${deb_dir}/$(basename "$src") "${root}${dest}" || {
      bad "${name}: no $(basename "$src") in ${deb_dir}"
      return 1
    }
  done < <(sed -n '4,$p' <<<"$facts")
  # shellcheck disable=SC2086 # the package list splits on purpose
  if ! in_root "$root" rw /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c \
    "apt-get update -q >/tmp/apt.log 2>&1 && apt-get install -y -q --no-install-recommends $packages >>/tmp/apt.log 2>&1 || { tail -n 40 /tmp/apt.log; exit 1; }"; then
    bad "${name}: apt-get install of the runtime packages"
    return 1
  fi
  ok "${name}: runtime packages install on bookworm minbase"
  # The image's user, created by the Dockerfile's own commands.
  local accounts
  accounts="$(sed -n 3p <<<"$facts")"
  [[ -n "$accounts" ]] || { bad "${name}: ${dockerfile} creates no user"; return 1; }
  in_root "$root" rw /bin/sh -c "$accounts"
  local uid="${user%%:*}"
  if [[ "$(in_root "$root" rw /usr/bin/id -u klag 2>/dev/null)" != "$uid" ]]; then
    bad "${name}: the Dockerfile's USER ${user} is not the user its commands create"
  fi
  # The binaries the last stage copies, from this build tree.
  while read -r src dest; do
    [[ -n "$src" && "$src" != *.deb ]] || continue
    local bin
    bin="$(basename "$src")"
    local built
    built="$(find "$BUILD" -type f -name "$bin" -perm -u+x -not -path '*/CMakeFiles/*' | head -n 1)"
    if [[ -z "$built" ]]; then
      bad "${name}: ${bin} is not built in ${BUILD}"
      continue
    fi
    mkdir -p "${root}${dest}"
    install -m 0755 "$built" "${root}${dest%/}/${bin}"
  done < <(sed -n '4,$p' <<<"$facts")
  echo "$user" >"${root}.user"
}

binaries_of() { find "${WORK}/$1/usr/local/bin" -type f -printf '%f\n' | sort; }

# check_ldd NAME BIN: every shared library resolves inside the root.
check_ldd() {
  local name="$1" bin="$2" out
  out="$(in_root "${WORK}/${name}" ro /usr/bin/ldd "/usr/local/bin/${bin}" 2>&1 || true)"
  if grep -q "not found" <<<"$out"; then
    bad "${name}: ${bin} needs libraries no runtime package provides: $(grep 'not found' <<<"$out" | awk '{print $1}' | tr '\n' ' ')"
  elif ! grep -q "=>" <<<"$out"; then
    bad "${name}: ldd ${bin}: ${out}"
  else
    ok "${name}: ldd ${bin}: every library found"
  fi
}

check_help() {
  local name="$1" bin="$2" user out rc=0
  user="$(cat "${WORK}/${name}.user")"
  out="$(in_root "${WORK}/${name}" ro /usr/sbin/chroot --userspec="$user" / "/usr/local/bin/${bin}" --help 2>&1)" || rc=$?
  if ((rc == 0)) && grep -qi "usage\|--help\|flags\|options" <<<"$out"; then
    ok "${name}: ${bin} --help as uid ${user%%:*} on a read-only root"
  else
    bad "${name}: ${bin} --help exited ${rc}: $(head -n 5 <<<"$out")"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The scaler serving inside its root, checked by klag-health from the same root.
check_scaler_serves() {
  local root="${WORK}/scaler" user port
  user="$(cat "${root}.user")"
  port="$(free_port)"
  in_root "$root" ro /bin/sh -c "
    /usr/sbin/chroot --userspec=${user} / /usr/local/bin/klag-scaler serve --listen 127.0.0.1:${port} \
        --shutdown-grace 2s >/tmp/scaler.log 2>&1 &
    pid=\$!
    rc=0
    /usr/sbin/chroot --userspec=${user} / /usr/local/bin/klag-health --address 127.0.0.1:${port} \
        --wait 20s || rc=1
    kill -TERM \$pid
    wait \$pid || rc=2
    cat /tmp/scaler.log
    exit \$rc
  " >"${WORK}/scaler-serve.log" 2>&1 && rc=0 || rc=$?
  case "$rc" in
    0) ok "scaler: klag-scaler serves on a read-only root as uid ${user%%:*}; klag-health: SERVING; SIGTERM: exit 0" ;;
    1) bad "scaler: health check did not answer SERVING: $(tail -n 5 "${WORK}/scaler-serve.log")" ;;
    *) bad "scaler: klag-scaler did not exit 0 on SIGTERM (rc ${rc}): $(tail -n 5 "${WORK}/scaler-serve.log")" ;;
  esac
}

# ------------------------------------------------------------------ run
build_root scaler Dockerfile.scaler || true
build_root job Dockerfile.job || true
for name in scaler job; do
  [[ -d "${WORK}/${name}/usr/local/bin" ]] || continue
  for bin in $(binaries_of "$name"); do
    check_ldd "$name" "$bin"
    check_help "$name" "$bin"
  done
done
[[ -x "${WORK}/scaler/usr/local/bin/klag-scaler" ]] && check_scaler_serves

# The ldd check must bite: klag-scaler in the job's root has no gRPC or protobuf.
if [[ -d "${WORK}/job/usr/local/bin" && -x "${WORK}/scaler/usr/local/bin/klag-scaler" ]]; then
  install -m 0755 "${WORK}/scaler/usr/local/bin/klag-scaler" "${WORK}/job/usr/local/bin/klag-scaler"
  out="$(in_root "${WORK}/job" ro /usr/bin/ldd /usr/local/bin/klag-scaler 2>&1 || true)"
  if grep -q "libgrpc++.*not found" <<<"$out"; then
    ok "self-check: a library missing from the packages is detected (klag-scaler in the job root)"
  else
    bad "self-check: ldd did not report the missing gRPC library: ${out}"
  fi
fi

log "done in $((SECONDS - T0)) s"
echo "${PASSED} passed, ${FAILED} failed"
((FAILED == 0))
