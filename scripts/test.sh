#!/usr/bin/env bash
# klag's whole test run, as CI does it (.ci/run) and as a developer can on a fresh machine:
#
#   1. install the Debian packages (scripts/install-deps.sh; skipped when all are there) and build
#      the deploy tests' tools (scripts/tools.sh: helm, kustomize, kubecheck)
#   2. clang-format check of every C++ source (no diff allowed)
#   3. configure + build `build` (RelWithDebInfo, Ninja)
#   4. start a real Kafka broker of the first version of the Kafka matrix (default 3.9.1;
#      scripts/kafka.sh, own state dir), export KLAG_TEST_BOOTSTRAP, KLAG_KAFKA_STATE and
#      KLAG_KAFKA_VERSION (suites that start brokers of their own start that version); start
#      PostgreSQL when scripts/postgres.sh exists, export KLAG_TEST_POSTGRES; run ctest (every
#      label but kafka4 on a 3.x broker; unit, service, e2e must have tests)
#   5. the wire test: KEDA's own Go client against build/scaler/klag-scaler (tests/wire/run.sh)
#   6. every further version of the matrix (default 4.4.0), one at a time: stop the previous
#      broker, start one of this version, run the real-broker core (ctest labels e2e and, on
#      4.x, kafka4, which must then have tests) and the wire test against it
#   7. configure + build `build-asan` (-DKLAG_SANITIZE=address,undefined, -O1, only the target
#      klag_unit_service_tests) and run its unit and service labels
#   8. configure + build `build-fuzz` (clang, -DKLAG_FUZZ=ON: libFuzzer + ASan/UBSan, only the
#      target klag_fuzzers) and run each harness of tests/fuzz for KLAG_FUZZ_SECONDS (label fuzz)
#   9. stop the broker and PostgreSQL (always, on exit)
#
# Exits non-zero on any failure; with CI=true also when any test was skipped. The last line is
# "N passed, N failed" (", N skipped" outside CI): ctest tests over all ctest runs, every Kafka
# version included; the lines above it give each version's counts.
set -euo pipefail

usage() {
  cat <<EOF
Usage: scripts/test.sh [options]

  --no-deps        do not run scripts/install-deps.sh
  --no-format      skip the clang-format check
  --no-wire        skip the wire test (tests/wire/run.sh)
  --no-asan        skip the sanitizer build and its tests
  --no-fuzz        skip the fuzz build and its harnesses
  --no-build       do not configure or build the main tree (KLAG_BUILD_DIR): test it as it
                   is, e.g. when a build queue built it
  -L, --label RE   run only ctest labels matching RE in the main tree (e.g. -L unit); the
                   label-presence checks are then skipped, and a later Kafka version runs only
                   the tests of its core that RE also selects (none: no broker, no wire test)
  -j, --jobs N     build parallelism (default 2; env KLAG_JOBS)
  --kafka-matrix "V1 V2 ..."
                   Kafka versions (3.x.y or 4.x.y, spaces or commas; env KLAG_KAFKA_MATRIX;
                   default "${DEFAULT_MATRIX}"). V1's broker runs the whole suite (every label;
                   on 3.x without kafka4) and the wire test; every later version's broker, one
                   after the other, runs the real-broker core: ctest labels e2e (scaler, job,
                   auth, reader) and, on 4.x, kafka4 (Kafka >= 4.0 only: KIP-848 groups), plus
                   the wire test. A 4.x leg needs kafka4 tests (unless -L). Jars are fetched once
                   per version into .cache/kafka/jars.
  --no-matrix      only V1 (the first version of the matrix)
  -h, --help       this text

Environment: KLAG_BUILD_DIR (default build), KLAG_ASAN_BUILD_DIR (default build-asan),
KLAG_FUZZ_BUILD_DIR (default build-fuzz), KLAG_FUZZ_SECONDS (per harness; default 20),
KLAG_TEST_TIMEOUT (seconds per test without its own TIMEOUT; default 300), CI=true (skipped
tests fail the run). The brokers' logs are kept in .cache/kafka/test-logs/ when the run fails.
EOF
}

# The Kafka versions: the first runs everything, the others the real-broker core (see --help).
readonly DEFAULT_MATRIX="3.9.1 4.4.0"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

opt_deps=1 opt_format=1 opt_wire=1 opt_asan=1 opt_fuzz=1 opt_build=1 opt_label="" opt_matrix=1
KAFKA_MATRIX="${KLAG_KAFKA_MATRIX:-$DEFAULT_MATRIX}"
JOBS="${KLAG_JOBS:-2}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-deps) opt_deps=0 ;;
    --no-format) opt_format=0 ;;
    --no-wire) opt_wire=0 ;;
    --no-asan) opt_asan=0 ;;
    --no-fuzz) opt_fuzz=0 ;;
    --no-build) opt_build=0 ;;
    -L | --label) [[ $# -ge 2 ]] || { echo "test.sh: error: $1 needs a value" >&2; exit 2; }
      opt_label="$2"; shift ;;
    -j | --jobs) [[ $# -ge 2 ]] || { echo "test.sh: error: $1 needs a value" >&2; exit 2; }
      JOBS="$2"; shift ;;
    --kafka-matrix) [[ $# -ge 2 ]] || { echo "test.sh: error: $1 needs a value" >&2; exit 2; }
      KAFKA_MATRIX="$2"; shift ;;
    --kafka-matrix=*) KAFKA_MATRIX="${1#*=}" ;;
    --no-matrix) opt_matrix=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: error: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: error: bad job count '$JOBS'" >&2; exit 2; }
read -r -a KAFKA_VERSIONS <<<"${KAFKA_MATRIX//,/ }"
[[ ${#KAFKA_VERSIONS[@]} -gt 0 ]] || { echo "test.sh: error: the Kafka matrix is empty" >&2; exit 2; }
for v in "${KAFKA_VERSIONS[@]}"; do
  [[ "$v" =~ ^[34]\.[0-9]+\.[0-9]+$ ]] ||
    { echo "test.sh: error: Kafka version '$v' in the matrix is not 3.x.y or 4.x.y" >&2; exit 2; }
done
((opt_matrix)) || KAFKA_VERSIONS=("${KAFKA_VERSIONS[0]}")

BUILD="${KLAG_BUILD_DIR:-build}"
ASAN_BUILD="${KLAG_ASAN_BUILD_DIR:-build-asan}"
FUZZ_BUILD="${KLAG_FUZZ_BUILD_DIR:-build-fuzz}"
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
KAFKA_STATES=()
PG_STATE=""
LEG_RESULTS=()

step() { printf '\n===== [%4ds] %s\n' $((SECONDS - T0)) "$*"; }
fail() {
  echo "test.sh: FAILED: $*" >&2
  FAILURES+=("$*")
}

# Stops the broker of state dir $1 and deletes its state (its logs are kept when the run failed
# so far, or $2 is a non-zero exit status).
stop_broker() {
  local state="$1" rc="${2:-0}"
  [[ -d "$state" ]] || return 0
  if [[ ${#FAILURES[@]} -gt 0 || $rc -ne 0 ]] && [[ -d "${state}/logs" ]]; then
    local keep
    keep=".cache/kafka/test-logs/$(basename "$state")-kafka-$(cat "${state}/version" 2>/dev/null || echo unknown)"
    mkdir -p .cache/kafka/test-logs
    cp -r "${state}/logs" "$keep" || true
    echo "test.sh: broker logs kept in ${keep}" >&2
  fi
  scripts/kafka.sh --state "$state" clean >/dev/null 2>&1 ||
    echo "test.sh: warning: could not stop the broker of ${state}" >&2
}

cleanup() {
  local rc=$?
  local state
  for state in "${KAFKA_STATES[@]}"; do stop_broker "$state" "$rc"; done
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

# configure_and_build DIR [CMAKE_ARG...] [--target T]: configures tree DIR (RelWithDebInfo unless an
# argument says otherwise) and builds it, or only target T.
configure_and_build() {
  local dir="$1"
  shift
  local gen=() conf=() build=()
  while (($#)); do
    if [[ "$1" == --target ]]; then
      build+=(--target "$2")
      shift 2
    else
      conf+=("$1")
      shift
    fi
  done
  # -G only for a new tree: an existing one keeps its generator.
  [[ -f "${dir}/CMakeCache.txt" ]] || gen=(-G Ninja)
  in_step cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${conf[@]}" &&
    in_step cmake --build "$dir" -j "$JOBS" "${build[@]}"
}

# Number of tests ctest knows in tree $1 for the selection arguments that follow (-L RE, -LE RE;
# several -L must all match).
count_tests() {
  local dir="$1"
  shift
  ctest --test-dir "$dir" -N "$@" 2>/dev/null | awk '/^Total Tests:/ {print $3}'
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

# helm, kustomize and kubecheck for tests/deploy, built from their Go modules into .cache/tools
# (nothing to do when they are there; about 10 s with Go's caches warm, minutes cold).
step "build the deploy tools (scripts/tools.sh)"
scripts/tools.sh build || fail "scripts/tools.sh: the deploy tests need helm, kustomize, kubecheck"

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
built=1
if ((opt_build)); then
  step "configure and build ${BUILD}"
  configure_and_build "$BUILD" || { fail "build of ${BUILD}"; built=0; }
elif [[ ! -f "${BUILD}/CMakeCache.txt" ]]; then
  fail "--no-build: ${BUILD} is not a configured build tree"
  built=0
fi

# ---------------------------------------------------------------- 4.-6. Kafka legs
# Starts a fresh broker of Kafka $1 in a new state dir; exports KLAG_KAFKA_VERSION,
# KLAG_KAFKA_STATE and KLAG_TEST_BOOTSTRAP (unset when the start failed: returns 1).
start_broker() {
  local version="$1"
  step "start the Kafka ${version} broker"
  mkdir -p .cache/kafka
  KAFKA_STATE="$(mktemp -d "${REPO_ROOT}/.cache/kafka/test.XXXXXX")"
  KAFKA_STATES+=("$KAFKA_STATE")
  export KLAG_KAFKA_VERSION="$version" KLAG_KAFKA_STATE="$KAFKA_STATE"
  local t0=$SECONDS
  if KLAG_TEST_BOOTSTRAP="$(scripts/kafka.sh start --fresh)"; then
    export KLAG_TEST_BOOTSTRAP
    echo "KLAG_TEST_BOOTSTRAP=${KLAG_TEST_BOOTSTRAP} KLAG_KAFKA_STATE=${KLAG_KAFKA_STATE} KLAG_KAFKA_VERSION=${version} (fetch and start: $((SECONDS - t0)) s)"
  else
    fail "could not start the Kafka ${version} broker (scripts/kafka.sh start)"
    unset KLAG_TEST_BOOTSTRAP
    return 1
  fi
}

# Fails the run when tree $1 has no test with label $2 (exact name); $3 says who needs them.
require_label() {
  local n
  n="$(count_tests "$1" -L "^${2}\$")"
  if [[ "${n:-0}" -eq 0 ]]; then
    fail "ctest found no tests labelled '${2}' in ${1}${3:+ (needed by ${3})}"
  else
    echo "label ${2}: ${n} tests"
  fi
}

# The wire test against the current broker, named after Kafka $1.
run_wire() {
  ((opt_wire)) || return 0
  step "wire test, Kafka $1 (KEDA's Go client against ${BUILD}/scaler/klag-scaler)"
  if [[ -z "${KLAG_TEST_BOOTSTRAP:-}" ]]; then
    fail "wire test (Kafka $1): no broker"
  elif ! KLAG_SCALER="${BUILD}/scaler/klag-scaler" in_step tests/wire/run.sh; then
    fail "wire test (Kafka $1, tests/wire/run.sh)"
  fi
}

# Runs ctest for one leg and records "<what>: N passed, N failed, T s" for the summary.
run_leg_ctest() {
  local name="$1" what="$2"
  shift 2
  local p0=$PASSED f0=$FAILED t0=$SECONDS
  run_ctest "$BUILD" "$name" "$@"
  LEG_RESULTS+=("${what}: $((PASSED - p0)) passed, $((FAILED - f0)) failed, $((SECONDS - t0)) s of ctest")
}

if ((built)); then
  # ---- 4. the first version: the whole suite
  v="${KAFKA_VERSIONS[0]}"
  start_broker "$v" || true

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
  what="Kafka ${v}, every label"
  if [[ -n "$opt_label" ]]; then
    label_args=(-L "$opt_label")
    what="Kafka ${v}, -L ${opt_label}"
  else
    for label in unit service e2e; do require_label "$BUILD" "$label"; done
    [[ "$v" == 3.* ]] || require_label "$BUILD" kafka4 "Kafka ${v}"
  fi
  # kafka4 tests need Kafka >= 4.0.
  if [[ "$v" == 3.* ]]; then
    label_args+=(-LE '^kafka4$')
    what+=", not kafka4"
  fi
  # The ten-broker-restart soak (about 4 minutes per version) runs once, against the newest
  # broker of the matrix, when a later version follows (its leg runs every e2e test).
  if ((${#KAFKA_VERSIONS[@]} > 1)); then
    label_args+=(-E '^ScalerRestartUnderLoadTest\.')
    what+=", restart soak on Kafka ${KAFKA_VERSIONS[-1]} only"
  fi
  step "ctest ${BUILD} (${what})"
  run_leg_ctest "kafka-${v}" "$what" "${label_args[@]}"

  # ---- 5. the wire test
  run_wire "$v"

  # ---- 6. every later version: the real-broker core
  for v in "${KAFKA_VERSIONS[@]:1}"; do
    core='^e2e$'
    [[ "$v" == 3.* ]] || core='^(e2e|kafka4)$'
    core_args=(-L "$core")
    [[ "$v" == 3.* ]] && core_args+=(-LE '^kafka4$')
    [[ -z "$opt_label" ]] || core_args+=(-L "$opt_label")
    n="$(count_tests "$BUILD" "${core_args[@]}")"
    if [[ -n "$opt_label" && "${n:-0}" -eq 0 ]]; then
      echo "test.sh: Kafka ${v}: -L '${opt_label}' selects none of its core (${core}): skipped"
      continue
    fi
    # One broker at a time: the previous leg's is done.
    [[ -z "$KAFKA_STATE" ]] || stop_broker "$KAFKA_STATE"
    start_broker "$v" || continue
    if [[ -z "$opt_label" ]]; then
      require_label "$BUILD" e2e "Kafka ${v}"
      [[ "$v" == 3.* ]] || require_label "$BUILD" kafka4 "Kafka ${v}"
    fi
    what="Kafka ${v}, labels e2e"
    [[ "$v" == 3.* ]] || what+=", kafka4"
    what+="${opt_label:+ (and -L ${opt_label})}"
    step "ctest ${BUILD} (${what})"
    run_leg_ctest "kafka-${v}" "$what" "${core_args[@]}"
    run_wire "$v"
  done
fi

# ---------------------------------------------------------------- 7. sanitizers
if ((opt_asan)); then
  # Only what the unit and service labels run (target klag_unit_service_tests), at -O1 with line
  # tables and assertions on (Debug): the sanitizers need no more, and it builds in less than
  # half the time of RelWithDebInfo (-O2 -g) with every target.
  step "configure and build ${ASAN_BUILD} (address,undefined; target klag_unit_service_tests)"
  if configure_and_build "$ASAN_BUILD" -DKLAG_SANITIZE=address,undefined \
    -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" "-DCMAKE_C_FLAGS_DEBUG=-O1 -g1" \
    --target klag_unit_service_tests; then
    for label in unit service; do
      n="$(count_tests "$ASAN_BUILD" -L "^${label}\$")"
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

# ---------------------------------------------------------------- 8. fuzzing
if ((opt_fuzz)) && [[ -z "$opt_label" ]]; then
  # The parsers of untrusted input under libFuzzer (clang only), each for KLAG_FUZZ_SECONDS from
  # its seeds; a crash, a sanitizer report or a broken invariant fails the harness.
  step "configure and build ${FUZZ_BUILD} (clang, libFuzzer + address,undefined; target klag_fuzzers)"
  if configure_and_build "$FUZZ_BUILD" -DKLAG_FUZZ=ON -DKLAG_BUILD_TESTS=OFF \
    -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
    "-DKLAG_FUZZ_SECONDS=${KLAG_FUZZ_SECONDS:-20}" --target klag_fuzzers; then
    n="$(count_tests "$FUZZ_BUILD" -L '^fuzz$')"
    [[ "${n:-0}" -gt 0 ]] || fail "ctest found no tests labelled 'fuzz' in ${FUZZ_BUILD}"
    step "ctest ${FUZZ_BUILD} -L fuzz (${KLAG_FUZZ_SECONDS:-20} s each)"
    run_ctest "$FUZZ_BUILD" fuzz -L '^fuzz$'
  else
    fail "build of ${FUZZ_BUILD}"
  fi
fi

# ---------------------------------------------------------------- summary
step "done in $((SECONDS - T0)) s"
((${#LEG_RESULTS[@]} == 0)) || printf '  %s\n' "${LEG_RESULTS[@]}"
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
