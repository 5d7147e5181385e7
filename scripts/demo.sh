#!/usr/bin/env bash
# The seed's cycle on this machine, in about a minute: lag builds up on ListedStockPrice, the
# ScaledJob's trigger turns active, klag-local starts a Job (klag-job), which drains, commits and
# exits, lag returns to 0; again, for each burst klag-produce publishes.
#
#   scripts/demo.sh                 # from a fresh Debian 12 machine (root or sudo)
#
# Steps: scripts/install-deps.sh (what is missing), build klag-scaler, klag-job, klag-produce,
# klag-local and klag-health, start a Kafka broker (scripts/kafka.sh, own state dir), create the
# topic, start klag-scaler and, once it serves, klag-local with deploy/jobs/scaledjob.yaml
# (pollingInterval shortened), run bursts of klag-produce, stop everything, and write
# out/demo/demo.svg (lag and running Jobs over time) and out/demo/events.jsonl. Exits non-zero
# unless at least two full cycles (lag up, Job started, Job succeeded, lag back at 0) were seen.
#
# Options: --no-deps, --duration SECONDS (default 60), --bursts N (default 3), --records N per
# burst (default 3000), --rate N records/s (default 1000), --polling-interval D (default 2s).
# Environment: KLAG_BUILD_DIR (default build), KLAG_JOBS (build parallelism, default 2).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

opt_deps=1 DURATION=60 BURSTS=3 RECORDS=3000 RATE=1000 POLL=2s
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-deps) opt_deps=0 ;;
    --duration) DURATION="$2"; shift ;;
    --bursts) BURSTS="$2"; shift ;;
    --records) RECORDS="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --polling-interval) POLL="$2"; shift ;;
    -h | --help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD="${KLAG_BUILD_DIR:-build}"
JOBS="${KLAG_JOBS:-2}"
OUT="${REPO_ROOT}/out/demo"
STATE="${REPO_ROOT}/.cache/kafka/demo"
TOPIC=ListedStockPrice
GROUP=python_data_load

say() { printf '\n\033[1m[demo %3ds] %s\033[0m\n' $((SECONDS - T0)) "$*"; }
T0=$SECONDS

PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # Newest first: klag-local stops its Jobs before the scaler and the broker go.
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  if [[ -d "$STATE" ]]; then scripts/kafka.sh --state "$STATE" clean >/dev/null 2>&1 || true; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ 1. packages, build
if ((opt_deps)); then
  say "installing what is missing (scripts/install-deps.sh)"
  scripts/install-deps.sh
fi
say "building klag-scaler, klag-job, klag-produce, klag-local, klag-health in ${BUILD}"
gen=()
[[ -f "${BUILD}/CMakeCache.txt" ]] || gen=(-G Ninja)
cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j "$JOBS" --target klag-scaler klag-job klag-produce klag-local \
  klag-health

# ------------------------------------------------------------------ 2. broker, topic
rm -rf "$OUT"
mkdir -p "$OUT" .cache/kafka
say "starting a Kafka broker (scripts/kafka.sh, state ${STATE#"$REPO_ROOT"/})"
BOOTSTRAP="$(scripts/kafka.sh --state "$STATE" start --fresh)"
echo "broker at ${BOOTSTRAP}"
scripts/kafka.sh --state "$STATE" create-topic "$TOPIC" 3

# ------------------------------------------------------------------ 3. scaler, local loop
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
say "starting klag-scaler on 127.0.0.1:${PORT} (log: out/demo/scaler.log)"
"${BUILD}/scaler/klag-scaler" serve --listen "127.0.0.1:${PORT}" --evaluation-window 500ms \
  >"${OUT}/scaler.log" 2>&1 &
PIDS+=($!)

# What the cluster would provide (the Secrets the Job template references) and the local
# overrides: this broker instead of kafka.kafka.svc, a jsonl file instead of PostgreSQL, and
# `earliest` for trigger and Job alike: the demo's group starts without commits on a fresh
# topic, so everything produced is the work (the seed's group has commits already). And
# allowIdleConsumers, so the metric is the whole lag rather than KEDA's cap of partitions x
# lagThreshold (3 here): the chart shows lag building up; with maxReplicaCount 1 the Jobs started
# are the same either way.
cat >"${OUT}/local-values.yaml" <<EOF
secrets:
  klag-kafka-credentials: {sasl: none, tls: disable}
  klag-job-postgres: {uri: "postgresql://unused"}
env:
  KLAG_BOOTSTRAP_SERVERS: "${BOOTSTRAP}"
  KLAG_OFFSET_RESET: earliest
  KLAG_SINK: jsonl
  KLAG_JSONL_PATH: "${OUT}/records.jsonl"
  KLAG_LOG_FORMAT: text
  KLAG_PROGRESS_INTERVAL: 1s
metadata:
  bootstrapServers: "${BOOTSTRAP}"
  offsetResetPolicy: earliest
  allowIdleConsumers: "true"
EOF
"${BUILD}/tools/local/klag-health" --address "127.0.0.1:${PORT}" --wait 60s

say "starting klag-local with deploy/jobs/scaledjob.yaml, pollingInterval ${POLL} (manifest: 30s)"
# Its output (and its Jobs') through a fifo to a prefixing sed, so that $! is klag-local itself:
# stopping it must reach it (it then stops its Jobs), not the sed.
mkfifo "${OUT}/klag-local.fifo"
sed -u 's/^/  [klag-local] /' <"${OUT}/klag-local.fifo" &
SED_PID=$!
"${BUILD}/tools/local/klag-local" --scaledjob deploy/jobs/scaledjob.yaml \
  --namespace data-load --values "${OUT}/local-values.yaml" --scaler-address "127.0.0.1:${PORT}" \
  --bin-dir "${BUILD}/job" --polling-interval "$POLL" --events "${OUT}/events.jsonl" \
  --stop-grace 5s >"${OUT}/klag-local.fifo" 2>&1 &
PIDS+=($!)

# ------------------------------------------------------------------ 4. bursts
BURST_EVERY=$(( (DURATION - 5) / BURSTS ))
DEMO_START=$SECONDS
for ((i = 1; i <= BURSTS; i++)); do
  sleep 2
  say "burst ${i}/${BURSTS}: klag-produce publishes ${RECORDS} stock prices at ${RATE}/s"
  "${BUILD}/job/klag-produce" --bootstrap-servers "$BOOTSTRAP" --topic "$TOPIC" \
    --count "$RECORDS" --rate "$RATE" --seed "$i" --log-level warn 2>&1 |
    sed -u 's/^/  [klag-produce] /'
  next=$((DEMO_START + i * BURST_EVERY))
  while ((SECONDS < next)); do sleep 1; done
done
while ((SECONDS < DEMO_START + DURATION)); do sleep 1; done

say "stopping klag-local, klag-scaler and the broker"
# klag-local first: it stops its Jobs (SIGTERM, grace) before the scaler and broker go.
NAMES=(klag-scaler klag-local)
for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
  kill -TERM "${PIDS[i]}" 2>/dev/null || true
  rc=0
  wait "${PIDS[i]}" 2>/dev/null || rc=$?
  ((rc == 0)) || echo "demo.sh: warning: ${NAMES[i]} exited ${rc} on SIGTERM (see out/demo/)" >&2
done
wait "$SED_PID" 2>/dev/null || true
rm -f "${OUT}/klag-local.fifo"
PIDS=()
scripts/kafka.sh --state "$STATE" clean >/dev/null 2>&1 || true

# ------------------------------------------------------------------ 5. chart and verdict
RECORDS_OUT=0
[[ -f "${OUT}/records.jsonl" ]] && RECORDS_OUT=$(wc -l <"${OUT}/records.jsonl")
VERDICT="$(python3 - "${OUT}/events.jsonl" "${OUT}/demo.svg" "$((BURSTS * RECORDS))" "$RECORDS_OUT" <<'EOF'
import json, sys

events_path, svg_path, produced, delivered = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
events = [json.loads(l) for l in open(events_path) if l.strip()]
polls = [e for e in events if e["event"] == "poll"]
jobs = [e for e in events if e["event"] == "job"]

# Running Jobs over time, from Job transitions (exact) rather than poll samples.
timeline, running = [(0.0, 0)], 0
for e in jobs:
    running += 1 if e["phase"] == "running" else -1
    timeline.append((e["t"], max(running, 0)))
end_t = max([e["t"] for e in events] + [1.0])

# Full cycles: lag > 0 and active, then a Job succeeds, then a poll with lag 0.
cycles, state = 0, "idle"
for e in events:
    if state == "idle" and e["event"] == "poll" and e["queueLength"] > 0 and e["active"]:
        state = "lag"
    elif state == "lag" and e["event"] == "job" and e["phase"] == "succeeded":
        state = "drained"
    elif state == "drained" and e["event"] == "poll":
        if e["queueLength"] == 0:
            cycles += 1
            state = "idle"
        elif e["active"]:
            state = "lag"
started = sum(1 for e in jobs if e["phase"] == "running")
succeeded = sum(1 for e in jobs if e["phase"] == "succeeded")
failed = sum(1 for e in jobs if e["phase"] == "failed")

W, H, L, R, T, B = 900, 420, 60, 60, 40, 50
pw, ph = W - L - R, H - T - B
max_lag = max([p["queueLength"] for p in polls] + [1])
max_jobs = max([r for _, r in timeline] + [1])
x = lambda t: L + pw * t / end_t
yl = lambda v: T + ph - ph * v / max_lag
yj = lambda v: T + ph - ph * v / (max_jobs * 1.25)
lag_pts = " ".join(f"{x(p['t']):.1f},{yl(p['queueLength']):.1f}" for p in polls)
job_pts = []
for i, (t, r) in enumerate(timeline):
    if i:
        job_pts.append(f"{x(t):.1f},{yj(timeline[i-1][1]):.1f}")
    job_pts.append(f"{x(t):.1f},{yj(r):.1f}")
job_pts.append(f"{x(end_t):.1f},{yj(timeline[-1][1]):.1f}")
ticks = "".join(
    f'<line x1="{x(t):.1f}" y1="{T+ph}" x2="{x(t):.1f}" y2="{T+ph+5}" stroke="#333"/>'
    f'<text x="{x(t):.1f}" y="{T+ph+20}" font-size="12" text-anchor="middle">{t:.0f}s</text>'
    for t in range(0, int(end_t) + 1, 10))
lag_ticks = "".join(
    f'<text x="{L-8}" y="{yl(v)+4:.1f}" font-size="12" text-anchor="end">{v:.0f}</text>'
    f'<line x1="{L}" y1="{yl(v):.1f}" x2="{L+pw}" y2="{yl(v):.1f}" stroke="#eee"/>'
    for v in [max_lag * k / 4 for k in range(5)])
job_ticks = "".join(
    f'<text x="{L+pw+8}" y="{yj(v)+4:.1f}" font-size="12" fill="#c0392b">{v}</text>'
    for v in range(0, max_jobs + 1))
svg = f'''<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{L}" y="24" font-size="16" font-weight="bold">klag demo: consumer-group lag and running Jobs (ScaledJob listed-stock-price)</text>
{lag_ticks}
<polyline points="{lag_pts}" fill="none" stroke="#2471a3" stroke-width="2"/>
<polyline points="{' '.join(job_pts)}" fill="none" stroke="#c0392b" stroke-width="2"/>
<line x1="{L}" y1="{T+ph}" x2="{L+pw}" y2="{T+ph}" stroke="#333"/>
<line x1="{L}" y1="{T}" x2="{L}" y2="{T+ph}" stroke="#333"/>
<line x1="{L+pw}" y1="{T}" x2="{L+pw}" y2="{T+ph}" stroke="#333"/>
{ticks}{job_ticks}
<text x="14" y="{T+ph/2}" font-size="12" fill="#2471a3" transform="rotate(-90 14 {T+ph/2})" text-anchor="middle">lag (records, per poll)</text>
<text x="{W-14}" y="{T+ph/2}" font-size="12" fill="#c0392b" transform="rotate(90 {W-14} {T+ph/2})" text-anchor="middle">running Jobs</text>
<text x="{L}" y="{H-8}" font-size="12">{cycles} full cycles; Jobs started {started}, succeeded {succeeded}, failed {failed}; records produced {produced}, delivered {delivered}</text>
</svg>
'''
open(svg_path, "w").write(svg)
print(f"cycles={cycles} started={started} succeeded={succeeded} failed={failed} "
      f"polls={len(polls)} final_lag={polls[-1]['queueLength'] if polls else 'n/a'}")
EOF
)"
say "summary"
echo "$VERDICT"
echo "records produced: $((BURSTS * RECORDS)); records the Jobs delivered (out/demo/records.jsonl): ${RECORDS_OUT}"
echo "chart: out/demo/demo.svg; events: out/demo/events.jsonl; scaler log: out/demo/scaler.log"
cycles="$(sed -E 's/^cycles=([0-9]+).*/\1/' <<<"$VERDICT")"
if ((cycles < 2)); then
  echo "demo.sh: only ${cycles} full cycle(s) with lag back at 0; expected at least 2" >&2
  exit 1
fi
echo "demo.sh: ${cycles} full cycles, lag back at 0 each time"
