#!/usr/bin/env bash
# The wire test: KEDA's own Go client (tests/wire/main.go) against a real klag-scaler and the
# real broker. Used by scripts/test.sh; can run alone:
#
#   export KLAG_TEST_BOOTSTRAP="$(scripts/kafka.sh start)"
#   tests/wire/run.sh                 # KLAG_SCALER=build/scaler/klag-scaler by default
#
# Creates a topic with 3 partitions (scripts/kafka.sh create-topic, so KLAG_KAFKA_STATE must
# name the broker's state dir when it is not the default), produces 5 records to each partition,
# starts `klag-scaler --listen 127.0.0.1:PORT`, and checks one KEDA poll with a fresh group
# (no commits) and offsetResetPolicy=earliest: metric kafka-<topic>, target 10, value 15,
# active; then INVALID_ARGUMENT for a bad lagThreshold and NOT_FOUND for an unknown topic.
# Prints a final PASS or FAIL line; exits non-zero on any mismatch.
set -euo pipefail

WIRE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${WIRE_DIR}/../.." && pwd)"
KAFKA_SH="${REPO_ROOT}/scripts/kafka.sh"
SCALER="${KLAG_SCALER:-${REPO_ROOT}/build/scaler/klag-scaler}"
[[ "$SCALER" == /* ]] || SCALER="${REPO_ROOT}/${SCALER}"

fail() {
  echo "wire: FAIL: $*"
  exit 1
}

[[ "${1:-}" != "-h" && "${1:-}" != "--help" ]] || { sed -n '2,13s/^# \{0,1\}//p' "$0"; exit 0; }
[[ -n "${KLAG_TEST_BOOTSTRAP:-}" ]] ||
  fail "KLAG_TEST_BOOTSTRAP is unset (start a broker: export KLAG_TEST_BOOTSTRAP=\$(scripts/kafka.sh start))"
[[ -x "$SCALER" ]] || fail "no scaler binary at ${SCALER} (build it, or set KLAG_SCALER)"
command -v go >/dev/null 2>&1 || fail "go not found (the wire test's client is a Go program)"
KCAT="$(command -v kcat || command -v kafkacat || true)"
[[ -n "$KCAT" ]] || fail "neither kcat nor kafkacat found (scripts/install-deps.sh)"
bootstrap="$KLAG_TEST_BOOTSTRAP"

# create-topic talks to the broker of KLAG_KAFKA_STATE: make sure that is this one.
state_bootstrap="$("$KAFKA_SH" bootstrap 2>/dev/null || true)"
[[ "$state_bootstrap" == "$bootstrap" ]] ||
  fail "KLAG_TEST_BOOTSTRAP=${bootstrap} but scripts/kafka.sh (state ${KLAG_KAFKA_STATE:-default}) reports '${state_bootstrap}': set KLAG_KAFKA_STATE to that broker's state dir"
# The Kafka version (scripts/test.sh runs this against each version of its matrix and exports
# KLAG_KAFKA_VERSION): the broker of the state dir must run it.
broker_status="$("$KAFKA_SH" status 2>/dev/null || true)"
if [[ -n "${KLAG_KAFKA_VERSION:-}" && "$broker_status" != *"Kafka ${KLAG_KAFKA_VERSION},"* ]]; then
  fail "KLAG_KAFKA_VERSION=${KLAG_KAFKA_VERSION} but the broker reports: ${broker_status}"
fi
kafka_version="$(sed -nE 's/.*, Kafka ([0-9.]+),.*/\1/p' <<<"$broker_status")"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/klag-wire.XXXXXX")"
scaler_pid=""
cleanup() {
  if [[ -n "$scaler_pid" ]] && kill -0 "$scaler_pid" 2>/dev/null; then
    kill -KILL "$scaler_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "wire: building the Go client (KEDA's externalscaler package)"
(cd "$WIRE_DIR" && go vet ./... && go build -buildvcs=false -o "${tmp}/wire" .) ||
  fail "go vet / go build of tests/wire failed"

suffix="$$-${RANDOM}${RANDOM}"
# The '.' checks KEDA's metric-name rule ('.' becomes '-').
topic="klag.wire-${suffix}"
group="klag-wire-group-${suffix}"
metric="kafka-klag-wire-${suffix}"

echo "wire: topic ${topic} (3 partitions) on ${bootstrap} (Kafka ${kafka_version:-?}), 5 records per partition"
"$KAFKA_SH" create-topic "$topic" 3 || fail "could not create topic ${topic}"
for p in 0 1 2; do
  printf 'r%s\n' 1 2 3 4 5 | "$KCAT" -P -b "$bootstrap" -t "$topic" -p "$p" ||
    fail "kcat could not produce to ${topic} partition ${p}"
done
n="$("$KCAT" -C -b "$bootstrap" -t "$topic" -e -q -f '%p\n' | wc -l)"
[[ "$n" -eq 15 ]] || fail "expected 15 records in ${topic}, kcat read ${n}"

scaler_log="${tmp}/scaler.log"
port_busy() { [[ -n "$(ss -Htan "sport = :$1" 2>/dev/null | awk '$1 != "TIME-WAIT"')" ]]; }
started=0
for attempt in 1 2 3; do
  port=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
  port_busy "$port" && continue
  echo "wire: starting ${SCALER} --listen 127.0.0.1:${port} (attempt ${attempt})"
  "$SCALER" --listen "127.0.0.1:${port}" </dev/null >"$scaler_log" 2>&1 &
  scaler_pid=$!
  for _ in $(seq 1 100); do
    kill -0 "$scaler_pid" 2>/dev/null || break
    if [[ -n "$(ss -Htln "sport = :${port}" 2>/dev/null)" ]]; then
      started=1
      break
    fi
    sleep 0.1
  done
  ((started)) && break
  if kill -0 "$scaler_pid" 2>/dev/null; then
    tail -n 30 "$scaler_log" >&2
    fail "the scaler (pid ${scaler_pid}) did not listen on 127.0.0.1:${port} within 10 s"
  fi
  wait "$scaler_pid" || true
  scaler_pid=""
  grep -qi "address already in use" "$scaler_log" || {
    tail -n 30 "$scaler_log" >&2
    fail "the scaler exited at start-up"
  }
done
((started)) || fail "could not start the scaler on a free port"

rc=0
"${tmp}/wire" --addr "127.0.0.1:${port}" --wait 20s \
  --meta "bootstrapServers=${bootstrap}" --meta "consumerGroup=${group}" \
  --meta "topic=${topic}" --meta offsetResetPolicy=earliest --meta lagThreshold=10 \
  --meta scalerAddress=klag:6000 \
  --expect-metric-name "$metric" --expect-target 10 --expect-value 15 --expect-active true ||
  rc=$?

# The scaler must stop on SIGTERM (Kubernetes' way), quickly.
kill -TERM "$scaler_pid" 2>/dev/null || true
stopped=0
for _ in $(seq 1 100); do
  if ! kill -0 "$scaler_pid" 2>/dev/null; then
    stopped=1
    break
  fi
  sleep 0.1
done
scaler_rc=0
if ((stopped)); then
  wait "$scaler_pid" || scaler_rc=$?
  scaler_pid=""
  echo "wire: scaler stopped on SIGTERM (exit status ${scaler_rc})"
fi

if ((rc != 0)) || ((!stopped)); then
  echo "----- last lines of the scaler's log -----"
  tail -n 40 "$scaler_log"
fi
((stopped)) || fail "the scaler did not exit within 10 s of SIGTERM"
((rc == 0)) || fail "KEDA's client saw mismatches (see above)"
echo "wire: PASS"
