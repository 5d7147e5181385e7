#!/usr/bin/env bash
# The Kubernetes tools the deploy tests run (tests/deploy), built from their Go modules through the
# Go module proxy, pinned, once per version, into a git-ignored cache.
#
#   scripts/tools.sh [build [NAME...]]  build what is missing (default: every tool); quiet when
#                                 all is there
#   scripts/tools.sh path NAME    print NAME's binary (helm, kustomize, kubecheck); exit 1 with a
#                                 message when it has not been built
#   scripts/tools.sh versions     print NAME VERSION for every tool
#
# helm      helm.sh/helm/v3/cmd/helm             `helm template` and `helm lint` of deploy/helm/klag
# kustomize sigs.k8s.io/kustomize/kustomize/v5   `kustomize build` of every deploy/ entry point
# kubecheck tests/deploy/kubecheck (ours)        validates rendered objects against the
#                                                Kubernetes schema (client-go's) and the
#                                                ServiceMonitor type (prometheus-operator's)
#
# Where: ${KLAG_TOOLS_CACHE:-<repo>/.cache/tools}/<name>-<version>/<name>. A directory is only
# created complete (built into a temporary directory, then renamed), so a binary that is there is
# whole; building a version removes the tool's other versions. kubecheck's version is a digest of
# its sources, so editing them rebuilds it.
# Builds use Go's own caches (GOMODCACHE ~/go/pkg/mod, GOCACHE ~/.cache/go-build): a second build
# on the same machine compiles nothing that did not change. Cold, on 2 cores: see deploy/README.md.
#
# Environment: GO (default: go in PATH, else /usr/local/go/bin/go), KLAG_TOOLS_CACHE.
set -euo pipefail

readonly HELM_VERSION="v3.22.0"
readonly KUSTOMIZE_VERSION="v5.8.2"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${KLAG_TOOLS_CACHE:-${REPO_ROOT}/.cache/tools}"
readonly KUBECHECK_SRC="${REPO_ROOT}/tests/deploy/kubecheck"

info() { echo "tools.sh: $*" >&2; }
die() {
  echo "tools.sh: error: $*" >&2
  exit 1
}

find_go() {
  if [[ -n "${GO:-}" ]]; then
    echo "$GO"
  elif command -v go >/dev/null; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    die "no go command (set GO=/path/to/go)"
  fi
}

kubecheck_version() {
  # Digest of the sources (file names and contents), so a change rebuilds.
  (cd "$KUBECHECK_SRC" && sha256sum go.mod go.sum ./*.go | sha256sum | cut -c1-12)
}

version_of() {
  case "$1" in
    helm) echo "$HELM_VERSION" ;;
    kustomize) echo "$KUSTOMIZE_VERSION" ;;
    kubecheck) kubecheck_version ;;
    *) die "unknown tool $1 (helm, kustomize, kubecheck)" ;;
  esac
}

binary_of() {
  echo "${CACHE}/$1-$(version_of "$1")/$1"
}

# build NAME: builds NAME into its cache directory unless the binary is there.
build() {
  local name="$1" version dir tmp go start
  version="$(version_of "$name")"
  dir="${CACHE}/${name}-${version}"
  [[ -x "${dir}/${name}" ]] && return 0
  go="$(find_go)"
  mkdir -p "$CACHE"
  tmp="$(mktemp -d "${CACHE}/.${name}-${version}.XXXXXX")"
  start=$SECONDS
  info "building ${name} ${version} into ${dir}"
  # GOTOOLCHAIN=local: the machine's Go, never a toolchain download. GOFLAGS cleared so that a
  # developer's settings (-mod=vendor, ...) do not change the build.
  local -a env=(env GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=0 GOBIN="$tmp")
  local -a flags=(-trimpath)
  case "$name" in
    helm)
      "${env[@]}" "$go" install "${flags[@]}" \
        -ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}" \
        "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
      ;;
    kustomize)
      "${env[@]}" "$go" install "${flags[@]}" -ldflags="-s -w" \
        "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}"
      ;;
    kubecheck)
      (cd "$KUBECHECK_SRC" &&
        "${env[@]}" "$go" build "${flags[@]}" -ldflags="-s -w" -o "${tmp}/kubecheck" .)
      ;;
  esac
  [[ -x "${tmp}/${name}" ]] || die "${name}: the build left no binary in ${tmp}"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  # Older versions of the same tool (a kubecheck whose sources changed, a bumped pin) go.
  local old
  for old in "${CACHE}/${name}"-*; do
    [[ "$old" == "$dir" || ! -d "$old" ]] || rm -rf "$old"
  done
  info "built ${name} ${version} in $((SECONDS - start)) s"
}

main() {
  local cmd="${1:-build}"
  case "$cmd" in
    build)
      shift || true
      local name
      for name in "${@:-helm kustomize kubecheck}"; do
        # shellcheck disable=SC2086
        for n in $name; do build "$n"; done
      done
      ;;
    path)
      [[ $# -eq 2 ]] || die "usage: scripts/tools.sh path NAME"
      local bin
      bin="$(binary_of "$2")"
      [[ -x "$bin" ]] || die "$2 $(version_of "$2") is not built (${bin}): run scripts/tools.sh"
      echo "$bin"
      ;;
    versions)
      local name
      for name in helm kustomize kubecheck; do echo "${name} $(version_of "$name")"; done
      ;;
    *) die "unknown command ${cmd} (build, path NAME, versions)" ;;
  esac
}

main "$@"
