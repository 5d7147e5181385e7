#!/usr/bin/env bash
# librdkafka for klag on Debian 12: Debian 13's own source package of librdkafka (2.8.0), plus
# klag's patches (scripts/librdkafka/*.patch), built into .debs once, cached, and installed.
#
#   scripts/librdkafka.sh install     build the .debs unless cached, install them (default)
#   scripts/librdkafka.sh build       only build (or find) the .debs; print their directory
#   scripts/librdkafka.sh check       exit 0 when the wanted version is installed, 1 otherwise
#   scripts/librdkafka.sh version     print the version string the .debs carry
#
# Why this way: Debian 12 ships librdkafka 2.0.2 (SCRAM fails against Kafka 4.x, no admin
# ListOffsets, no OIDC); Debian 13 ships 2.8.0, and every build dependency of its source
# package is in Debian 12. Building Debian's own package keeps to Debian's packaging (same
# configure flags, symbols file, hardening) and gives .debs that dpkg tracks and that the
# images install the same way. The source is fetched with apt from a private deb-src list
# (the host's sources are not touched), pinned to SOURCE_VERSION; apt checks it against the
# signed trixie Release file.
#
# Environment: KLAG_LIBRDKAFKA_CACHE (default <repo>/.cache/librdkafka), KLAG_JOBS (default 2).
set -euo pipefail

readonly SOURCE_VERSION="2.8.0-1"
# Our own revision on top of Debian's: bump it when a patch under scripts/librdkafka changes.
readonly LOCAL_SUFFIX="+klag3"
readonly VERSION="${SOURCE_VERSION}${LOCAL_SUFFIX}"
readonly SUITE="trixie"
readonly PACKAGES=(librdkafka1 librdkafka++1 librdkafka-dev)
# build-essential: dpkg-buildpackage requires it of every source package (a minimal Debian, such as
# the images' build stage, does not have it).
readonly BUILD_DEPS=(build-essential debhelper dpkg-dev fakeroot pkgconf libcurl4-openssl-dev
  liblz4-dev libsasl2-dev libssl-dev libzstd-dev python3 rapidjson-dev zlib1g-dev)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly PATCH_DIR="${REPO_ROOT}/scripts/librdkafka"
CACHE="${KLAG_LIBRDKAFKA_CACHE:-${REPO_ROOT}/.cache/librdkafka}"
readonly DEB_DIR="${CACHE}/${VERSION}"
JOBS="${KLAG_JOBS:-2}"

info() { echo "librdkafka.sh: $*" >&2; }
die() {
  echo "librdkafka.sh: error: $*" >&2
  exit 1
}

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo"
  SUDO=(sudo)
fi

installed_version() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}' "$1" 2>/dev/null | sed -n 's/^ii  *//p'
}

is_installed() {
  local p
  for p in "${PACKAGES[@]}"; do
    [[ "$(installed_version "$p")" == "$VERSION" ]] || return 1
  done
}

have_debs() {
  local p
  for p in "${PACKAGES[@]}"; do
    compgen -G "${DEB_DIR}/${p}_${VERSION}_*.deb" >/dev/null || return 1
  done
}

install_build_deps() {
  local missing=() p
  for p in "${BUILD_DEPS[@]}"; do
    [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)" == "ii " ]] ||
      missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return 0
  info "installing build dependencies: ${missing[*]}"
  "${SUDO[@]}" apt-get update -q >&2
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends "${missing[@]}" >&2
}

build() {
  have_debs && return 0
  install_build_deps
  mkdir -p "$CACHE"
  # One build at a time, even across concurrent users of the cache.
  exec 9>"${CACHE}/.lock"
  flock 9
  have_debs && return 0

  local work
  work="$(mktemp -d "${CACHE}/build.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: work is local
  trap "rm -rf '${work}'" EXIT
  mkdir -p "${work}/apt/lists/partial" "${work}/apt/sources.list.d"
  cat >"${work}/apt/sources.list.d/${SUITE}-src.sources" <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: ${SUITE}
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  local apt_opts=(-o "Dir::Etc::sourcelist=/dev/null"
    -o "Dir::Etc::sourceparts=${work}/apt/sources.list.d"
    -o "Dir::State::Lists=${work}/apt/lists" -o "APT::Sandbox::User=root")
  info "fetching the source of librdkafka ${SOURCE_VERSION} (Debian ${SUITE})"
  apt-get "${apt_opts[@]}" -q update >&2 || die "apt-get update of the ${SUITE} deb-src list failed"
  (cd "$work" && apt-get "${apt_opts[@]}" -q source --download-only \
    "librdkafka=${SOURCE_VERSION}" >&2) ||
    die "could not download librdkafka=${SOURCE_VERSION} from ${SUITE}'s sources"
  (cd "$work" && dpkg-source -x "librdkafka_${SOURCE_VERSION}.dsc" src >&2) ||
    die "dpkg-source could not unpack librdkafka_${SOURCE_VERSION}.dsc"

  # klag's patches go into Debian's quilt series, and the changelog gets our revision.
  local patch
  for patch in "${PATCH_DIR}"/*.patch; do
    [[ -f "$patch" ]] || continue
    cp "$patch" "${work}/src/debian/patches/"
    basename "$patch" >>"${work}/src/debian/patches/series"
    # Fail here, not halfway through the build, when a patch does not apply.
    (cd "${work}/src" && patch -p1 --dry-run -s <"$patch" >/dev/null) ||
      die "$(basename "$patch") does not apply to librdkafka ${SOURCE_VERSION}"
  done
  {
    printf 'librdkafka (%s) UNRELEASED; urgency=medium\n\n' "$VERSION"
    printf '  * klag build for Debian 12: %s\n\n' \
      "$(cd "$PATCH_DIR" && ls -- *.patch 2>/dev/null | tr '\n' ' ')"
    printf ' -- klag <klag@users.noreply.invalid>  %s\n\n' "$(date -R)"
    cat "${work}/src/debian/changelog"
  } >"${work}/src/debian/changelog.new"
  mv "${work}/src/debian/changelog.new" "${work}/src/debian/changelog"

  info "building librdkafka ${VERSION} (dpkg-buildpackage, nocheck, -j${JOBS}; about a minute)"
  (cd "${work}/src" &&
    DEB_BUILD_OPTIONS="nocheck parallel=${JOBS}" dpkg-buildpackage -b -uc -us \
      >"${work}/build.log" 2>&1) || {
    tail -n 40 "${work}/build.log" >&2
    die "dpkg-buildpackage failed (log above)"
  }
  mkdir -p "${DEB_DIR}.tmp"
  cp "${work}"/*.deb "${DEB_DIR}.tmp/"
  rm -rf "$DEB_DIR"
  mv "${DEB_DIR}.tmp" "$DEB_DIR"
  rm -rf "$work"
  trap - EXIT
  have_debs || die "the build left no ${PACKAGES[*]} .debs in ${DEB_DIR}"
  info "built $(cd "$DEB_DIR" && ls -- *.deb | tr '\n' ' ')"
}

install() {
  if is_installed; then
    info "librdkafka ${VERSION} is installed"
    return 0
  fi
  build
  local debs=() p
  for p in "${PACKAGES[@]}"; do
    debs+=("$(compgen -G "${DEB_DIR}/${p}_${VERSION}_*.deb" | head -n 1)")
  done
  info "installing ${debs[*]##*/}"
  # apt resolves the runtime dependencies (libcurl4, libzstd1, liblz4-1) from Debian 12.
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends --allow-downgrades "${debs[@]}" >&2
  is_installed || die "librdkafka ${VERSION} is still not installed"
}

case "${1:-install}" in
  install) install ;;
  build) build && echo "$DEB_DIR" ;;
  check) is_installed ;;
  version) echo "$VERSION" ;;
  -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0" ;;
  *) die "unknown command '$1' (see --help)" ;;
esac
