#!/usr/bin/env bash
# klag's whole test run, as CI does it (.ci/run) and as a developer can on a fresh machine:
#
#   1. install the Debian packages (scripts/install-deps.sh; skipped when all are there)
#   2. clang-format check of every C++ source (no diff allowed)
#   3. configure + build `build` (RelWithDebInfo, Ninja)
#   4. start a real Kafka broker (scripts/kafka.sh, own state dir), export KLAG_TEST_BOOTSTRAP
#      and KLAG_KAFKA_STATE; start PostgreSQL when scripts/postgres.sh exists, export
#      KLAG_TEST_POSTGRES; run ctest (every label; unit, service, e2e must have tests)
#   5. the wire test: KEDA's own Go client against build/scaler/klag-scaler (tests/wire/run.sh)
#   6. configure + build `build-asan` (-DKLAG_SANITIZE=address,undefined) and run its unit and
#      service labels
#   7. stop the broker and PostgreSQL (always, on exit)
#
# Exits non-zero on any failure; with CI=true also when any test was skipped. The last line is
# "N passed, N failed" (", N skipped" outside CI): ctest tests over all ctest runs.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/test.sh [options]

  --no-deps        do not run scripts/install-deps.sh
  --no-format      skip the clang-format check
  --no-wire        skip the wire test (tests/wire/run.sh)
  --no-asan        skip the sanitizer build and its tests
  -L, --label RE   run only ctest labels matching RE in the main tree (e.g. -L unit); the
                   label-presence check is then skipped
  -j, --jobs N     build parallelism (default 2; env KLAG_JOBS)
  -h, --help       this text

Environment: KLAG_BUILD_DIR (default build), KLAG_ASAN_BUILD_DIR (default build-asan),
KLAG_TEST_TIMEOUT (seconds per test without its own TIMEOUT; default 300), CI=true (skipped tests fail the run). The broker's logs are kept in
.cache/kafka/test-logs/ when the run fails.
EOF
}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

opt_deps=1 opt_format=1 opt_wire=1 opt_asan=1 opt_label=""
JOBS="${KLAG_JOBS:-2}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-deps) opt_deps=0 ;;
    --no-format) opt_format=0 ;;
    --no-wire) opt_wire=0 ;;
    --no-asan) opt_asan=0 ;;
    -L | --label) [[ $# -ge 2 ]] || { echo "test.sh: error: $1 needs a value" >&2; exit 2; }
      opt_label="$2"; shift ;;
    -j | --jobs) [[ $# -ge 2 ]] || { echo "test.sh: error: $1 needs a value" >&2; exit 2; }
      JOBS="$2"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: error: bad job count '$JOBS'" >&2; exit 2; }

BUILD="${KLAG_BUILD_DIR:-build}"
ASAN_BUILD="${KLAG_ASAN_BUILD_DIR:-build-asan}"
IN_CI=0
[[ "${CI:-}" == "true" ]] && IN_CI=1

# A Go installed outside apt (the machine's /usr/local/go) may be missing from PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:${PATH}"
fi

T0=$SECONDS
PASSED=0
FAILED=0
SKIPPED=0
FAILURES=()
LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/klag-test.XXXXXX")"
KAFKA_STATE=""
PG_STATE=""

step() { printf '\n===== [%4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() {
  echo "test.sh: FAILED: $*" >&2
  FAILURES+=("$*")
}

cleanup() {
  local rc=$?
  if [[ -n "$KAFKA_STATE" ]]; then
    if [[ ${#FAILURES[@]} -gt 0 || $rc -ne 0 ]] && [[ -d "${KAFKA_STATE}/logs" ]]; then
      mkdir -p .cache/kafka/test-logs
      cp -r "${KAFKA_STATE}/logs" ".cache/kafka/test-logs/$(basename "$KAFKA_STATE")" || true
      echo "test.sh: broker logs kept in .cache/kafka/test-logs/$(basename "$KAFKA_STATE")" >&2
    fi
    scripts/kafka.sh --state "$KAFKA_STATE" clean >/dev/null 2>&1 ||
      echo "test.sh: warning: could not stop the broker of ${KAFKA_STATE}" >&2
  fi
  if [[ -n "$PG_STATE" ]]; then
    scripts/postgres.sh --state "$PG_STATE" clean >/dev/null 2>&1 ||
      echo "test.sh: warning: could not stop PostgreSQL of ${PG_STATE}" >&2
  fi
  rm -rf "$LOGDIR"
  exit "$rc"
}
# Long steps run in their own process group (in_step), in the background, so that INT/TERM
# reach these traps at once (bash runs a trap only after a foreground command ends) and the
# whole step can be ended before the broker is stopped.
STEP_PID=""
in_step() {
  setsid "$@" &
  STEP_PID=$!
  local rc=0
  wait "$STEP_PID" || rc=$?
  STEP_PID=""
  return "$rc"
}
on_signal() {
  if [[ -n "$STEP_PID" ]]; then
    kill -TERM -- "-${STEP_PID}" 2>/dev/null || true
    wait "$STEP_PID" 2>/dev/null || true
  fi
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM

configure_and_build() {
  local dir="$1"
  shift
  local gen=()
  # -G only for a new tree: an existing one keeps its generator.
  [[ -f "${dir}/CMakeCache.txt" ]] || gen=(-G Ninja)
  in_step cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
    in_step cmake --build "$dir" -j "$JOBS"
}

# Number of tests ctest knows in tree $1 for label regex $2.
count_tests() {
  ctest --test-dir "$1" -N -L "$2" 2>/dev/null | awk '/^Total Tests:/ {print $3}'
}

# Runs ctest in tree $1 with extra args; adds its counts to PASSED/FAILED; checks skips.
run_ctest() {
  local dir="$1" name="$2"
  shift 2
  local log="${LOGDIR}/ctest-${name}.log" rc=0
  # shellcheck disable=SC2016 # expanded by the inner bash
  LOG="$log" in_step bash -c 'set -o pipefail; "$@" 2>&1 | tee "$LOG"' ctest \
    ctest --test-dir "$dir" --output-on-failure --timeout "${KLAG_TEST_TIMEOUT:-300}" "$@" ||
    rc=$?
  local summary total failed
  summary="$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
  if [[ -z "$summary" ]]; then
    fail "ctest (${name}) printed no summary (exit ${rc}): no test ran"
    return 0
  fi
  failed="$(sed -E 's/^[0-9]+% tests passed, ([0-9]+) tests? failed.*/\1/' <<<"$summary")"
  total="$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")"
  # ctest counts skipped tests as passed: they are counted apart below.
  local skipped
  skipped="$(grep -cE '^[[:space:]]*[0-9]+ - .* \(Skipped\)$' "$log" || true)"
  PASSED=$((PASSED + total - failed - skipped))
  FAILED=$((FAILED + failed))
  ((rc == 0)) || fail "ctest (${name}): ${failed} of ${total} tests failed (exit ${rc})"
  # A test registered without gtest_discover_tests can skip inside a passing ctest test.
  local gtest_skips=0
  if ((skipped == 0)) && [[ -f "${dir}/Testing/Temporary/LastTest.log" ]]; then
    gtest_skips="$(grep -c '^\[  SKIPPED \] [^ ]*\.[^ ]*' "${dir}/Testing/Temporary/LastTest.log" || true)"
  fi
  if ((skipped > 0 || gtest_skips > 0)); then
    local what="${skipped} tests skipped"
    ((skipped > 0)) || what="gtest reported SKIPPED inside tests that ctest counted as passed"
    if ((IN_CI)); then
      FAILED=$((FAILED + skipped))
      fail "ctest (${name}): ${what}; CI=true allows none"
    else
      SKIPPED=$((SKIPPED + skipped))
      echo "test.sh: warning: ctest (${name}): ${what}" >&2
    fi
  fi
}

# ---------------------------------------------------------------- 1. deps
if ((opt_deps)); then
  step "install dependencies"
  scripts/install-deps.sh
fi

# ---------------------------------------------------------------- 2. format
if ((opt_format)); then
  step "clang-format check"
  mapfile -t sources < <(git ls-files --cached --others --exclude-standard -- \
    '*.cc' '*.h' '*.cpp' '*.hpp' | while read -r f; do [[ -f "$f" ]] && echo "$f"; done)
  if [[ ${#sources[@]} -eq 0 ]]; then
    fail "clang-format: found no C++ sources"
  elif ! clang-format --dry-run --Werror "${sources[@]}"; then
    fail "clang-format: the files above differ from .clang-format (fix: clang-format -i FILE)"
  else
    echo "clang-format: ${#sources[@]} files clean"
  fi
fi

# ---------------------------------------------------------------- 3. build
step "configure and build ${BUILD}"
built=1
configure_and_build "$BUILD" || { fail "build of ${BUILD}"; built=0; }

# ---------------------------------------------------------------- 4. broker + ctest
if ((built)); then
  step "start the Kafka broker"
  mkdir -p .cache/kafka
  KAFKA_STATE="$(mktemp -d "${REPO_ROOT}/.cache/kafka/test.XXXXXX")"
  export KLAG_KAFKA_STATE="$KAFKA_STATE"
  if KLAG_TEST_BOOTSTRAP="$(scripts/kafka.sh start --fresh)"; then
    export KLAG_TEST_BOOTSTRAP
    echo "KLAG_TEST_BOOTSTRAP=${KLAG_TEST_BOOTSTRAP} KLAG_KAFKA_STATE=${KLAG_KAFKA_STATE}"
  else
    fail "could not start the Kafka broker (scripts/kafka.sh start)"
    unset KLAG_TEST_BOOTSTRAP
  fi

  # The PostgreSQL sink tests need a real server (scripts/postgres.sh, when the tree has it).
  if [[ -x scripts/postgres.sh ]]; then
    step "start PostgreSQL"
    PG_STATE="${REPO_ROOT}/.cache/postgres/test.$$"
    if KLAG_TEST_POSTGRES="$(scripts/postgres.sh --state "$PG_STATE" start --fresh)"; then
      export KLAG_TEST_POSTGRES
      echo "KLAG_TEST_POSTGRES=${KLAG_TEST_POSTGRES}"
    else
      fail "could not start PostgreSQL (scripts/postgres.sh start)"
    fi
  fi

  label_args=()
  if [[ -n "$opt_label" ]]; then
    label_args=(-L "$opt_label")
  else
    for label in unit service e2e; do
      n="$(count_tests "$BUILD" "^${label}\$")"
      if [[ "${n:-0}" -eq 0 ]]; then
        fail "ctest found no tests labelled '${label}' in ${BUILD}"
      else
        echo "label ${label}: ${n} tests"
      fi
    done
  fi
  step "ctest ${BUILD} ${label_args[*]}"
  run_ctest "$BUILD" main "${label_args[@]}"

  # -------------------------------------------------------------- 5. wire test
  if ((opt_wire)); then
    step "wire test (KEDA's Go client against ${BUILD}/scaler/klag-scaler)"
    if [[ -z "${KLAG_TEST_BOOTSTRAP:-}" ]]; then
      fail "wire test: no broker"
    elif ! KLAG_SCALER="${BUILD}/scaler/klag-scaler" in_step tests/wire/run.sh; then
      fail "wire test (tests/wire/run.sh)"
    fi
  fi
fi

# ---------------------------------------------------------------- 6. sanitizers
if ((opt_asan)); then
  step "configure and build ${ASAN_BUILD} (address,undefined)"
  if configure_and_build "$ASAN_BUILD" -DKLAG_SANITIZE=address,undefined; then
    for label in unit service; do
      n="$(count_tests "$ASAN_BUILD" "^${label}\$")"
      [[ "${n:-0}" -gt 0 ]] || fail "ctest found no tests labelled '${label}' in ${ASAN_BUILD}"
    done
    step "ctest ${ASAN_BUILD} -L 'unit|service'"
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}" \
      UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
      run_ctest "$ASAN_BUILD" asan -L '^(unit|service)$'
  else
    fail "build of ${ASAN_BUILD}"
  fi
fi

# ---------------------------------------------------------------- summary
step "done in $((SECONDS - T0)) s"
if [[ ${#FAILURES[@]} -gt 0 ]]; then
  echo "FAILED steps:"
  printf '  - %s\n' "${FAILURES[@]}"
else
  echo "all steps passed"
fi
if ((SKIPPED > 0)); then
  echo "${PASSED} passed, ${FAILED} failed, ${SKIPPED} skipped"
else
  echo "${PASSED} passed, ${FAILED} failed"
fi
[[ ${#FAILURES[@]} -eq 0 ]]
