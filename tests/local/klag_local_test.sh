#!/usr/bin/env bash
# klag-local as a process: with minReplicaCount 1 it starts a Job at the first poll even though
# the scaler is unreachable (KEDA fills up to min first); SIGTERM then stops it cleanly: the
# pod gets SIGTERM, and klag-local exits 0 after it. Also: bad manifests are usage errors.
#
#   tests/local/klag_local_test.sh BUILD_DIR
# Prints "N passed, N failed".
set -euo pipefail

LOCAL="$(cd "${1:?usage: klag_local_test.sh BUILD_DIR}" && pwd)/tools/local/klag-local"
WORK="$(mktemp -d)"
PID=""
cleanup() {
  [[ -z "$PID" ]] || kill -KILL "$PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*" >&2; }

cat >"${WORK}/sj.yaml" <<YAML
apiVersion: keda.sh/v1alpha1
kind: ScaledJob
metadata: {name: sleeper}
spec:
  minReplicaCount: 1
  maxReplicaCount: 2
  pollingInterval: 1
  jobTargetRef:
    template:
      spec:
        restartPolicy: Never
        terminationGracePeriodSeconds: 5
        containers:
          - name: main
            command: [/bin/sh, -c]
            args: ["echo started > \$DIR/started; trap 'echo term > \$DIR/term; exit 0' TERM; while :; do sleep 0.1; done"]
            env:
              - {name: DIR, value: "${WORK}"}
  triggers:
    - type: external
      metadata: {scalerAddress: "127.0.0.1:1", topic: t}
YAML

"$LOCAL" --scaledjob "${WORK}/sj.yaml" --rpc-timeout 200ms --events "${WORK}/events.jsonl" \
  >"${WORK}/log" 2>&1 &
PID=$!
for _ in $(seq 100); do [[ -e "${WORK}/started" ]] && break; sleep 0.1; done
if [[ -e "${WORK}/started" ]]; then
  pass "minReplicaCount 1 starts a Job with the scaler unreachable"
else
  fail "no Job started: $(tail -n 5 "${WORK}/log")"
fi
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=""
if ((rc == 0)) && grep -q "klag-local stopped" "${WORK}/log"; then
  pass "SIGTERM: klag-local exits 0"
else
  fail "SIGTERM: exit ${rc}: $(tail -n 3 "${WORK}/log")"
fi
if [[ "$(cat "${WORK}/term" 2>/dev/null)" == term ]]; then
  pass "SIGTERM reached the running pod before klag-local exited"
else
  fail "the pod did not get SIGTERM"
fi
if grep -q '"event":"poll".*"create":1' "${WORK}/events.jsonl"; then
  pass "the events file records the poll that created the Job"
else
  fail "events: $(head -n 3 "${WORK}/events.jsonl")"
fi

rc=0
"$LOCAL" --scaledjob /nonexistent.yaml >/dev/null 2>&1 || rc=$?
((rc == 2)) && pass "a missing manifest is a usage error (exit 2)" || fail "missing manifest: exit ${rc}"
sed 's/minReplicaCount: 1/minReplicaCount: one/' "${WORK}/sj.yaml" >"${WORK}/bad.yaml"
rc=0
out="$("$LOCAL" --scaledjob "${WORK}/bad.yaml" 2>&1)" || rc=$?
if ((rc == 2)) && grep -q "spec.minReplicaCount" <<<"$out"; then
  pass "a bad field is a usage error naming the field"
else
  fail "bad field: exit ${rc}: ${out}"
fi

echo "${PASSED} passed, ${FAILED} failed"
((FAILED == 0))
