#!/usr/bin/env bash
# klag-health against a real klag-scaler, the way deploy/ uses it:
#   - plaintext, as the image test does;
#   - mutual TLS exactly as the exec probe of deploy/components/scaler-tls runs it (the scaler's
#     own certificate as client certificate, one CA, --tls-server-name = the headless Service's
#     DNS name), with certificates made here by openssl;
#   - and that it fails when it should: no TLS against a TLS port, a wrong server name, a server
#     that is not there.
#
#   tests/local/health_probe_test.sh BUILD_DIR
# Prints "N passed, N failed".
set -euo pipefail

BUILD="$(cd "${1:?usage: health_probe_test.sh BUILD_DIR}" && pwd)"
SCALER="${BUILD}/scaler/klag-scaler"
HEALTH="${BUILD}/tools/local/klag-health"
NAME=klag-scaler-headless.klag.svc.cluster.local
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

PASSED=0 FAILED=0
expect() {  # expect CODE DESCRIPTION CMD...   CODE 1 stands for any failure
  local want="$1" what="$2" rc=0
  shift 2
  "$@" >"${WORK}/out" 2>&1 || rc=$?
  if ((rc == want)) || { ((want == 1)) && ((rc != 0)); }; then
    PASSED=$((PASSED + 1)); echo "PASS: ${what}"
  else
    FAILED=$((FAILED + 1)); echo "FAIL: ${what} (exit ${rc}): $(head -n 3 "${WORK}/out")" >&2
  fi
}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# One CA; the scaler's certificate for the headless Service name with server and client usage.
cd "$WORK"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=klag test CA" \
  >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout tls.key -out tls.csr -subj "/CN=${NAME}" >/dev/null 2>&1
printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$NAME" >ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out tls.crt -days 2 \
  -extfile ext.cnf >/dev/null 2>&1

PLAIN="$(free_port)"
"$SCALER" serve --listen "127.0.0.1:${PLAIN}" --log-level warn >"${WORK}/plain.log" 2>&1 &
PIDS+=($!)
TLS="$(free_port)"
"$SCALER" serve --listen "127.0.0.1:${TLS}" --tls-cert tls.crt --tls-key tls.key \
  --tls-client-ca ca.crt --log-level warn >"${WORK}/tls.log" 2>&1 &
PIDS+=($!)

expect 0 "plaintext: SERVING" "$HEALTH" --address "127.0.0.1:${PLAIN}" --wait 20s
expect 0 "mutual TLS, the exec probe's flags: SERVING" \
  "$HEALTH" --address "127.0.0.1:${TLS}" --tls-ca ca.crt --tls-cert tls.crt --tls-key tls.key \
  --tls-server-name "$NAME" --wait 20s
expect 1 "plaintext against the TLS port fails" "$HEALTH" --address "127.0.0.1:${TLS}"
expect 1 "TLS without a client certificate fails (the scaler requires one)" \
  "$HEALTH" --address "127.0.0.1:${TLS}" --tls-ca ca.crt --tls-server-name "$NAME"
expect 1 "a server name the certificate does not hold fails" \
  "$HEALTH" --address "127.0.0.1:${TLS}" --tls-ca ca.crt --tls-cert tls.crt --tls-key tls.key \
  --tls-server-name klag-scaler.other.svc.cluster.local
expect 1 "no server: fails within the timeout" "$HEALTH" --address "127.0.0.1:1" --timeout 1s
expect 2 "a --tls-* file that does not exist is a usage error" \
  "$HEALTH" --address "127.0.0.1:${TLS}" --tls-ca /nonexistent/ca.crt

echo "${PASSED} passed, ${FAILED} failed"
((FAILED == 0))
