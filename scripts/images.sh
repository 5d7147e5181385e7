#!/usr/bin/env bash
# Builds the two images (Dockerfile.scaler, Dockerfile.job) of a commit (default HEAD; the
# working tree's uncommitted changes are not in them) with podman, without a Docker engine or a
# registry, and checks what was built.
#
#   scripts/images.sh build    base images (below), then klag-scaler:VERSION and klag-job:VERSION
#   scripts/images.sh check    the built images' file systems: see "check" below
#   scripts/images.sh all      build, then check (default)
#   scripts/images.sh sizes    one line per image: name, size in bytes and MB, layers
#
# Base images: nothing is pulled. The Dockerfiles say FROM debian:bookworm and
# debian:bookworm-slim; this script makes both from a local `debootstrap --variant=minbase
# bookworm` (the same cached root file system tests/image/run.sh uses) with `podman import`, and
# the slim one with the path excludes Debian's official slim images carry (debuerreotype's
# --slimify list: documentation, man pages, locales), so packages installed on it leave those
# out too. Images are built with `podman --storage-driver vfs build --isolation chroot` (no
# overlay file system, no user namespace: what works on these machines); the two Dockerfiles'
# librdkafka and build stages are the same up to the last step, so the second image reuses the
# first one's compile and unit-test layers.
#
# check: `podman run` is refused on these machines (setrlimit), so each image's file system is
# mounted (`podman image mount`) and used as the root of a chroot in a private mount and PID
# namespace, read-only, with an empty /tmp, as the image's configured USER:
#   - the image's User is 65532:65532, its Entrypoint the binary the Dockerfile names;
#   - every binary: shared libraries resolve (ldd), `--help` and `--version` work, and
#     `--version` names the version CMakeLists.txt declares and the commit given at build time;
#   - klag-scaler serves gRPC and klag-health (from the same image) reads SERVING; SIGTERM ends
#     the scaler with exit 0; /metrics answers klag_build_info;
#   - nothing in the image is owned by or writable for its user (the sticky temp directories
#     aside).
# Prints "N passed, N failed" and exits non-zero on a failure.
#
# Needs root, podman (apt-get install podman), debootstrap, and the Debian mirror through apt
# (the builds run apt-get inside the containers). Takes about 30 minutes on 2 cores (the tree is
# compiled once inside the build stage). Environment: KLAG_IMAGE_CACHE (as tests/image/run.sh),
# KLAG_DEBIAN_MIRROR, KLAG_PODMAN_ROOT (podman's storage; default podman's own), KLAG_GIT_COMMIT
# (the commit the images were built from; default HEAD).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KLAG_IMAGE_CACHE:-${REPO_ROOT}/.cache/image}"
MIRROR="${KLAG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
VERSION="$(sed -n 's/^project(klag VERSION \([0-9.]*\).*/\1/p' "${REPO_ROOT}/CMakeLists.txt")"
[[ -n "$VERSION" ]] || { echo "images.sh: no project(klag VERSION ...) in CMakeLists.txt" >&2; exit 1; }
COMMIT="${KLAG_GIT_COMMIT:-$(git -C "$REPO_ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}"
PODMAN=(podman --storage-driver vfs)
[[ -n "${KLAG_PODMAN_ROOT:-}" ]] && PODMAN+=(--root "$KLAG_PODMAN_ROOT")
IMAGES=(scaler job)

T0=$SECONDS
log() { printf '[images %4ds] %s\n' $((SECONDS - T0)) "$*"; }
die() {
  echo "images.sh: error: $*" >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || die "needs root (podman with the vfs driver, chroot)"
command -v podman >/dev/null || die "podman is missing: apt-get install podman"

# ------------------------------------------------------------------ base images
base_rootfs_tar() {
  local tar="${CACHE}/bookworm-minbase.tar"
  if [[ ! -s "$tar" ]]; then
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install debootstrap"
    log "debootstrap --variant=minbase bookworm (first run; cached in ${tar})"
    local dir
    dir="$(mktemp -d "${CACHE}/base.XXXXXX")"
    debootstrap --variant=minbase bookworm "$dir" "$MIRROR" >"${dir}.log" 2>&1 ||
      { tail -n 30 "${dir}.log" >&2; die "debootstrap failed"; }
    rm -rf "${dir}/var/cache/apt/archives/"*.deb "${dir}/var/lib/apt/lists/"*
    tar -C "$dir" -cf "${tar}.tmp" .
    mv "${tar}.tmp" "$tar"
    rm -rf --one-file-system "$dir" "${dir}.log"
  fi
  echo "$tar"
}

make_bases() {
  mkdir -p "$CACHE"
  local tar
  tar="$(base_rootfs_tar)"
  if ! "${PODMAN[@]}" image exists docker.io/library/debian:bookworm; then
    log "podman import ${tar} as debian:bookworm"
    "${PODMAN[@]}" import --change 'CMD ["bash"]' "$tar" docker.io/library/debian:bookworm >/dev/null
  fi
  if ! "${PODMAN[@]}" image exists docker.io/library/debian:bookworm-slim; then
    log "debian:bookworm-slim: the same root without documentation, man pages and locales"
    local dir
    dir="$(mktemp -d "${CACHE}/slim.XXXXXX")"
    tar -C "$dir" -xf "$tar"
    # debuerreotype's slimify list, as in Debian's official slim images.
    cat >"${dir}/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Keep images small: no documentation, man pages or translations (as Debian's slim images).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find "${dir}/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
    find "${dir}/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "${dir}/usr/share/groff/"* "${dir}/usr/share/info/"* "${dir}/usr/share/linda/"* \
      "${dir}/usr/share/lintian/overrides/"* "${dir}/usr/share/locale/"* "${dir}/usr/share/man/"*
    tar -C "$dir" -c . | "${PODMAN[@]}" import --change 'CMD ["bash"]' - \
      docker.io/library/debian:bookworm-slim >/dev/null
    rm -rf --one-file-system "$dir"
  fi
}

# The build context: the tree of the commit (git archive), not the working tree, so the images
# are exactly that commit (their --version says so) and the second image reuses the first one's
# layers whatever changes in the working tree meanwhile. Uncommitted changes are not built.
make_context() {
  CONTEXT="${CACHE}/context-${COMMIT}"
  if [[ ! -d "$CONTEXT" ]]; then
    git -C "$REPO_ROOT" rev-parse --verify -q "${COMMIT}^{commit}" >/dev/null ||
      die "commit ${COMMIT} is not in ${REPO_ROOT}: set KLAG_GIT_COMMIT to a commit to build"
    mkdir -p "${CONTEXT}.tmp"
    git -C "$REPO_ROOT" archive "$COMMIT" | tar -x -C "${CONTEXT}.tmp"
    mv "${CONTEXT}.tmp" "$CONTEXT"
  fi
  if [[ -n "$(git -C "$REPO_ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]]; then
    log "note: the working tree has uncommitted changes; the images are built from ${COMMIT}"
  fi
}

build_images() {
  make_bases
  make_context
  local name
  for name in "${IMAGES[@]}"; do
    log "podman build -f Dockerfile.${name} -t klag-${name}:${VERSION} (commit ${COMMIT})"
    local t=$SECONDS
    "${PODMAN[@]}" build --isolation chroot --layers \
      --build-arg "KLAG_GIT_COMMIT=${COMMIT}" \
      -f "${CONTEXT}/Dockerfile.${name}" -t "localhost/klag-${name}:${VERSION}" "$CONTEXT" \
      >"${CACHE}/build-${name}.log" 2>&1 ||
      { tail -n 40 "${CACHE}/build-${name}.log" >&2; die "building klag-${name} failed (log: ${CACHE}/build-${name}.log)"; }
    log "klag-${name}:${VERSION} built in $((SECONDS - t)) s"
  done
  sizes
}

sizes() {
  local name size layers
  for name in "${IMAGES[@]}"; do
    size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "localhost/klag-${name}:${VERSION}")"
    layers="$("${PODMAN[@]}" image inspect --format '{{len .RootFS.Layers}}' "localhost/klag-${name}:${VERSION}")"
    printf 'klag-%s:%s\t%s bytes\t%.1f MB\t%s layers\n' "$name" "$VERSION" "$size" \
      "$(bc -l <<<"${size} / 1000000")" "$layers"
  done
}

# ------------------------------------------------------------------ checks
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
bad() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }

# in_image ROOT CMD...: CMD chrooted in the mounted image ROOT, in a private mount and PID
# namespace, on a read-only bind of it with a fresh /proc, /dev and an empty tmpfs /tmp.
in_image() {
  local root="$1"
  shift
  unshare --mount --pid --fork --kill-child /bin/bash -c '
    set -e
    root="$1"; shift
    mount --make-rprivate /
    mnt="$(mktemp -d)"
    mount --bind "$root" "$mnt"
    mount -t proc proc "$mnt/proc"
    mount --rbind /dev "$mnt/dev"
    mount -t tmpfs -o size=16m,mode=1777 tmpfs "$mnt/tmp"
    mount -o remount,bind,ro "$mnt"
    exec chroot "$mnt" "$@"
  ' in_image "$root" "$@"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

check_image() {
  local name="$1" image="localhost/klag-$1:${VERSION}"
  if ! "${PODMAN[@]}" image exists "$image"; then
    bad "${image} is not built (scripts/images.sh build)"
    return
  fi
  local user entrypoint root
  user="$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$image")"
  entrypoint="$("${PODMAN[@]}" image inspect --format '{{join .Config.Entrypoint " "}}' "$image")"
  [[ "$user" == "65532:65532" ]] && ok "${name}: User ${user}" || bad "${name}: User is '${user}', want 65532:65532"
  [[ "$entrypoint" == "/usr/local/bin/klag-${name}" ]] &&
    ok "${name}: Entrypoint ${entrypoint}" || bad "${name}: Entrypoint is '${entrypoint}'"
  root="$("${PODMAN[@]}" image mount "$image")"
  local bin out rc
  for bin in $(find "${root}/usr/local/bin" -type f -printf '%f\n' | sort); do
    out="$(in_image "$root" /usr/bin/ldd "/usr/local/bin/${bin}" 2>&1 || true)"
    if grep -q "not found" <<<"$out" || ! grep -q "=>" <<<"$out"; then
      bad "${name}: ldd ${bin}: $(grep 'not found' <<<"$out" | awk '{print $1}' | tr '\n' ' ')"
    else
      ok "${name}: ${bin}: every shared library is in the image"
    fi
    rc=0
    out="$(in_image "$root" /usr/sbin/chroot --userspec="$user" / "/usr/local/bin/${bin}" --help 2>&1)" || rc=$?
    ((rc == 0)) && grep -q "$bin" <<<"$out" &&
      ok "${name}: ${bin} --help as ${user} on a read-only root" ||
      bad "${name}: ${bin} --help exited ${rc}: $(head -n 3 <<<"$out")"
    rc=0
    # librdkafka's version too when the binary links it (klag-health does not).
    local links_rdkafka=0
    grep -q "librdkafka" <<<"$(in_image "$root" /usr/bin/ldd "/usr/local/bin/${bin}" 2>&1)" && links_rdkafka=1
    out="$(in_image "$root" /usr/sbin/chroot --userspec="$user" / "/usr/local/bin/${bin}" --version 2>&1)" || rc=$?
    if ((rc == 0)) && grep -qx "${bin} ${VERSION}" <<<"$(head -n 1 <<<"$out")" &&
      grep -qx "commit ${COMMIT}" <<<"$out" && { ((!links_rdkafka)) || grep -q "^librdkafka " <<<"$out"; }; then
      ok "${name}: ${bin} --version: $(tr '\n' ' ' <<<"$out")"
    else
      bad "${name}: ${bin} --version (exit ${rc}) does not name ${VERSION}, commit ${COMMIT}$( ((links_rdkafka)) && echo " and librdkafka"): $(head -n 3 <<<"$out")"
    fi
  done
  # Owned by the image's user, or writable by everyone, outside /proc and /dev: nothing but the
  # sticky temporary directories every Debian image has (/tmp, /var/tmp, /run/lock: mode 1777,
  # and read-only anyway under readOnlyRootFilesystem).
  out="$(in_image "$root" /usr/bin/find / -xdev \( -path /proc -o -path /dev \) -prune -o \
    \( -uid 65532 -o -perm -o+w \) -not -type l -not \( -type d -perm -1000 \) -print 2>/dev/null | head -n 5)"
  [[ -z "$out" ]] && ok "${name}: nothing is owned by or writable for uid 65532 (sticky temp directories aside)" ||
    bad "${name}: writable by uid 65532: ${out}"
  if [[ "$name" == scaler ]]; then
    # The scaler serves until this script sends SIGTERM from outside the namespace, after
    # klag-health (inside) has read SERVING and /metrics (from here) has answered.
    local port mport log="${CACHE}/check-scaler.log" metrics="" pid
    port="$(free_port)"
    mport="$(free_port)"
    in_image "$root" /bin/sh -c "
      /usr/sbin/chroot --userspec=${user} / /usr/local/bin/klag-scaler serve \
          --listen 127.0.0.1:${port} --metrics-listen 127.0.0.1:${mport} --shutdown-grace 2s &
      pid=\$!
      if ! /usr/sbin/chroot --userspec=${user} / /usr/local/bin/klag-health \
          --address 127.0.0.1:${port} --wait 20s; then
        kill -KILL \$pid
        exit 10
      fi
      echo KLAG-HEALTH-SERVING
      wait \$pid
    " >"$log" 2>&1 &
    pid=$!
    # Until klag-health has read SERVING (or given up) and /metrics has answered.
    for _ in $(seq 150); do
      [[ -n "$metrics" ]] || metrics="$(curl -fsS "http://127.0.0.1:${mport}/metrics" 2>/dev/null || true)"
      [[ -n "$metrics" ]] && grep -q "^KLAG-HEALTH-SERVING" "$log" && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if grep -q "^klag_build_info{.*version=\"${VERSION}\"" <<<"$metrics"; then
      ok "scaler: /metrics from the image: $(grep '^klag_build_info' <<<"$metrics")"
    else
      bad "scaler: /metrics did not answer klag_build_info with version ${VERSION}"
    fi
    pkill -TERM -f "klag-scaler serve --listen 127.0.0.1:${port} " || true
    rc=0
    wait "$pid" || rc=$?
    case "$rc" in
      0) ok "scaler: serves on a read-only root as ${user}; klag-health: SERVING; SIGTERM: exit 0" ;;
      10) bad "scaler: klag-health did not read SERVING: $(tail -n 5 "$log")" ;;
      *) bad "scaler: klag-scaler did not exit 0 on SIGTERM (rc ${rc}): $(tail -n 5 "$log")" ;;
    esac
  fi
  "${PODMAN[@]}" image unmount "$image" >/dev/null
}

check_images() {
  local name
  for name in "${IMAGES[@]}"; do check_image "$name"; done
  sizes
  log "checked in $((SECONDS - T0)) s"
  echo "${PASSED} passed, ${FAILED} failed"
  ((FAILED == 0))
}

case "${1:-all}" in
  build) build_images ;;
  check) check_images ;;
  sizes) sizes ;;
  all) build_images && check_images ;;
  -h | --help) sed -n '2,32s/^# \{0,1\}//p' "$0" ;;
  *) die "unknown command $1 (build, check, all, sizes)" ;;
esac
