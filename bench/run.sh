#!/usr/bin/env bash
# klag's benchmarks (issue 5), one command: builds what it needs, starts its own Kafka broker
# (and PostgreSQL), runs every benchmark with klag and its reference side by side, prints the
# tables and rewrites docs/benchmarks.md with them.
#
#   bench/run.sh            full run (under 15 minutes on 2 cores)
#   bench/run.sh --quick    shorter sweep, fewer records (under 3 minutes once built)
#
#   1. build build-bench (Release, -DKLAG_BUILD_BENCH=ON): klag_lag_bench, klag-scaler,
#      klag-job, klag-produce; the Go programs bench/fanout (fanout, kproxy, ksetup) and
#      bench/keda-ref (KEDA v2.20.2's kafka scaler, from the Go module proxy)
#   2. start a fresh single-node broker (scripts/kafka.sh, state .cache/kafka/bench) and a
#      PostgreSQL server (scripts/postgres.sh, state .cache/postgres/bench)
#   3. micro-benchmarks: ParseTriggerSpec / ComputeLag at P = 12, 1,000, 10,000
#   4. fan-out: S = 1,000, 5,000, 10,000 ScaledJobs (P = 12): klag-scaler polled by
#      bench/fanout, then KEDA's scaler code driven by bench/keda-ref, each through its own
#      counting Kafka proxy (bench/fanout/kproxy); then, at S = 1,000, the variants: 10
#      ScaledJobs per group (both sides), 1,000 open StreamIsActive streams, and 1,000 more
#      ScaledJobs on a dead cluster (refused, then blackholed) beside the healthy one
#   5. the Job: drain 1,000,000 records with klag-job (jsonl, postgres), kcat and a Python
#      confluent-kafka consumer (bench/job/jobbench.py)
#   6. bench/report.py: tables on stdout and in docs/benchmarks.md
#
# Raw results stay in .cache/bench/<date>/ (one JSON file per part).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run.sh [options]

  --quick          S sweep with fewer cycles, 200,000 job records, one no-work run each
  --no-build       use the binaries already in the build dir
  --only PARTS     comma-separated subset of: micro,fanout,job (default: all)
  --sizes LIST     fan-out S values (default 1000,5000,10000; --quick 100,1000)
  --variant-s S    S of the variant rows (shared groups, open streams, dead cluster; default
                   1000, --quick 100; 0 skips them)
  --no-doc         print the tables but do not rewrite docs/benchmarks.md
  --keep           leave the broker and PostgreSQL running afterwards
  --perf           profile each klag-scaler fan-out run with `perf record -a` (flat: samples by
                   process, then the scaler's by library and symbol; reports in the results
                   directory as perf-S*.txt). Profiling costs CPU: use it for a separate run,
                   not for the figures in the docs
  -j, --jobs N     build parallelism (default 2; env KLAG_JOBS)
  -h, --help       this text

Environment: KLAG_BENCH_SCALER_ENV (NAME=VALUE words set for klag-scaler only, for A/B runs:
e.g. LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2), KLAG_BENCH_SCALER_LOG_LEVEL (its
--log-level, default warn), KLAG_BENCH_BUILD_DIR (default
build-bench), KLAG_BENCH_KAFKA_STATE (default .cache/kafka/bench), KLAG_BENCH_POSTGRES_STATE
(default .cache/postgres/bench), GOFLAGS and GOPROXY as for any Go build.
EOF
}

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

quick=0 build=1 doc=1 keep=0 perf=0 only="micro,fanout,job" sizes="" variant_s=""
JOBS="${KLAG_JOBS:-2}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) quick=1 ;;
    --no-build) build=0 ;;
    --no-doc) doc=0 ;;
    --keep) keep=1 ;;
    --perf) perf=1 ;;
    --only) [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; only="$2"; shift ;;
    --sizes) [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; sizes="$2"; shift ;;
    --variant-s) [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; variant_s="$2"; shift ;;
    -j | --jobs) [[ $# -ge 2 ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; JOBS="$2"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",${only}," == *",$1,"* ]]; }

BUILD="${KLAG_BENCH_BUILD_DIR:-build-bench}"
KAFKA_STATE="${KLAG_BENCH_KAFKA_STATE:-${REPO_ROOT}/.cache/kafka/bench}"
PG_STATE="${KLAG_BENCH_POSTGRES_STATE:-${REPO_ROOT}/.cache/postgres/bench}"
GOBIN_DIR="${REPO_ROOT}/${BUILD}/bench-go"
RESULTS="${REPO_ROOT}/.cache/bench/$(date -u +%Y%m%dT%H%M%SZ)"
PY=/usr/bin/python3 # Debian's python3: python3-confluent-kafka lives there
export GOFLAGS="${GOFLAGS:--mod=mod -buildvcs=false}"
mkdir -p "$RESULTS" "$GOBIN_DIR"
started=$(date +%s)

log() { echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
# phase NAME: records the load average at the start of each phase (for the report).
phase() { echo "{\"phase\": \"$1\", \"t\": $(( $(date +%s) - started )), \"load\": \"$(loadavg)\"}" >> "$RESULTS/load.jsonl"; log "== $1 (load $(loadavg))"; }

if ((quick)); then
  mode=quick
  job_records=200000 nowork_reps=1 micro_min_time=0.02
  : "${sizes:=100,1000}" "${variant_s:=100}"
  # S:interval:warmup:cycles
  plan_for() { case "$1" in 10) echo 1s:1:3 ;; 100) echo 1s:1:3 ;; 1000) echo 2s:1:2 ;; *) echo 5s:1:1 ;; esac; }
else
  mode=full
  job_records=1000000 nowork_reps=3 micro_min_time=0.3
  : "${sizes:=1000,5000,10000}" "${variant_s:=1000}"
  # Two warm-up cycles from S = 5,000: at 10,000 the first poll of every trigger (a
  # FindCoordinator per group, a cold broker) overran one cycle, and the first lookups of the
  # groups polled late were counted in the window as if the coordinator cache churned.
  plan_for() { case "$1" in 10) echo 1s:1:10 ;; 100) echo 1s:1:10 ;; 1000) echo 2s:1:5 ;; *) echo 5s:2:4 ;; esac; }
fi

# ---- preflight ---------------------------------------------------------------------------
for tool in cmake go java mvn kcat "$PY"; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/install-deps.sh installs what klag needs)"
done
"$PY" -c 'import confluent_kafka' 2>/dev/null || die "python3-confluent-kafka missing (apt-get install python3-confluent-kafka)"
# KEDA's operator holds two connections per trigger; so does the reference (and the proxy, two
# descriptors each).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- 1. build -----------------------------------------------------------------------------
if ((build)); then
  phase build
  cmake -S . -B "$BUILD" -DKLAG_BUILD_BENCH=ON -DKLAG_BUILD_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS="-Wno-error=array-bounds" >"$RESULTS/cmake.log" 2>&1 ||
    { tail -20 "$RESULTS/cmake.log"; die "cmake failed"; }
  targets=(klag_lag_bench klag_rpc_floor klag-scaler)
  [[ -f job/CMakeLists.txt ]] && targets+=(klag-job klag-produce)
  cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >"$RESULTS/build.log" 2>&1 ||
    { tail -30 "$RESULTS/build.log"; die "build failed (log: $RESULTS/build.log)"; }
  (cd bench/fanout && go build -o "$GOBIN_DIR/" . ./kproxy ./ksetup) >"$RESULTS/go-build.log" 2>&1 ||
    { tail -20 "$RESULTS/go-build.log"; die "go build bench/fanout failed"; }
  # The KEDA reference: pkg/scalers pulls every scaler's SDK; the first build takes minutes.
  t0=$(date +%s)
  (cd bench/keda-ref && go build -o "$GOBIN_DIR/keda-ref" .) >>"$RESULTS/go-build.log" 2>&1 ||
    { tail -20 "$RESULTS/go-build.log"; die "go build bench/keda-ref failed"; }
  echo "{\"keda_ref_build_s\": $(( $(date +%s) - t0 ))}" >"$RESULTS/keda-build.json"
fi
SCALER="$BUILD/scaler/klag-scaler" JOB="$BUILD/job/klag-job" PRODUCE="$BUILD/job/klag-produce"
LAGBENCH="$BUILD/bench/klag_lag_bench" FLOOR="$BUILD/bench/klag_rpc_floor"

# ---- 2. broker and PostgreSQL -------------------------------------------------------------
cleanup() {
  local pids
  pids=$(jobs -p) && [[ -n "$pids" ]] && kill $pids 2>/dev/null || true
  if ((!keep)); then
    scripts/kafka.sh --state "$KAFKA_STATE" stop >/dev/null 2>&1 || true
    [[ -x scripts/postgres.sh ]] && scripts/postgres.sh --state "$PG_STATE" stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
if want fanout || want job; then
  phase broker
  KLAG_KAFKA_HEAP_OPTS="-Xmx1g -Xms256m" \
    scripts/kafka.sh --state "$KAFKA_STATE" start --fresh >"$RESULTS/kafka-start.log" 2>&1 ||
    { tail -20 "$RESULTS/kafka-start.log"; die "broker did not start"; }
  BOOTSTRAP="$(scripts/kafka.sh --state "$KAFKA_STATE" bootstrap)"
  log "broker at $BOOTSTRAP"
fi
PG_URI=""
if want job && [[ -x scripts/postgres.sh ]] && command -v psql >/dev/null 2>&1; then
  if PG_URI="$(scripts/postgres.sh --state "$PG_STATE" start --fresh 2>"$RESULTS/postgres-start.log")"; then
    log "PostgreSQL at $PG_URI"
  else
    log "PostgreSQL did not start (see $RESULTS/postgres-start.log): no postgres sink row"
    PG_URI=""
  fi
fi

# Versions and machine, for the report.
kafka_version=unknown
if [[ -f "$KAFKA_STATE/pid" ]]; then
  kafka_version="$(ps -o args= -p "$(cat "$KAFKA_STATE/pid")" | grep -o 'jars/[0-9][0-9.]*' | head -1 | cut -d/ -f2)"
fi
"$PY" - "$RESULTS/env.json" "$mode" "$kafka_version" <<'EOF'
import json, os, platform, subprocess, sys, datetime
out, mode, kafka = sys.argv[1:4]
def sh(cmd):
    try: return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception: return ""
import confluent_kafka
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
env = {
  "mode": mode,
  "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
  "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem / 1024 / 1024, 1),
  "kernel": platform.release(), "os": sh(". /etc/os-release; echo $PRETTY_NAME"),
  "load_start": open("/proc/loadavg").read().split()[:3],
  "klag_rev": sh("git rev-parse --short HEAD") + (" (dirty tree)" if sh("git status --porcelain --untracked-files=no") else ""),
  "kafka": kafka,
  "librdkafka": sh("pkg-config --modversion rdkafka"),
  "keda": "v2.20.2 (github.com/kedacore/keda/v2/pkg/scalers, sarama " + sh("cd bench/keda-ref && go list -m -f '{{.Version}}' github.com/IBM/sarama") + ")",
  "kcat": sh("kcat -V 2>&1 | head -1; dpkg-query -W -f='${Version}' kcat").replace("\n", " "),
  "confluent_kafka": "%s (librdkafka %s)" % (confluent_kafka.version()[0], confluent_kafka.libversion()[0]),
  "go": sh("go version"), "gcc": sh("gcc -dumpfullversion"),
  "postgres": sh("psql --version"),
}
json.dump(env, open(out, "w"), indent=1)
EOF

# ---- 3. micro-benchmarks ------------------------------------------------------------------
if want micro; then
  phase micro
  "$LAGBENCH" --benchmark_min_time="$micro_min_time" --benchmark_format=json \
    --benchmark_out="$RESULTS/lag.json" --benchmark_out_format=json >/dev/null 2>"$RESULTS/lag.err" ||
    { cat "$RESULTS/lag.err"; die "klag_lag_bench failed"; }
fi

# ---- 4. fan-out ---------------------------------------------------------------------------
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# start_proxies N: N kproxy processes in front of the broker; sets PROXY_ADDRS, PROXY_STATS,
# PROXY_PIDS.
start_proxies() {
  PROXY_ADDRS="" PROXY_STATS="" PROXY_PIDS=()
  local i f
  for ((i = 0; i < $1; i++)); do
    f="$RESULTS/kproxy.$i"
    rm -f "$f"
    "$GOBIN_DIR/kproxy" --upstream "$BOOTSTRAP" --addr-file "$f" >/dev/null 2>>"$RESULTS/kproxy.log" &
    PROXY_PIDS+=($!)
    for _ in $(seq 100); do [[ -s "$f" ]] && break; sleep 0.05; done
    [[ -s "$f" ]] || die "kproxy did not start"
    PROXY_ADDRS+="${PROXY_ADDRS:+,}$(cut -d' ' -f1 "$f")"
    PROXY_STATS+="${PROXY_STATS:+,}$(cut -d' ' -f2 "$f")"
  done
}
# thread_cpu PID: the process's CPU seconds (user + system) by thread kind, most first.
thread_cpu() {
  local pid=$1 hz task
  hz=$(getconf CLK_TCK)
  for task in /proc/"$pid"/task/*; do
    # comm may hold spaces: the fields counted are those after its closing parenthesis.
    printf '%s\t%s\n' "$(cat "$task/comm" 2>/dev/null)" "$(sed 's/.*) //' "$task/stat" 2>/dev/null | awk '{print $12 + $13}')"
  done | awk -F'\t' -v hz="$hz" '$2 != "" {k = $1; sub(/[0-9]+$/, "", k); t[k] += $2; n[k]++; all += $2}
    END {for (k in t) printf "%8.2f s %5.1f%%  %3d x %s\n", t[k] / hz, all ? 100 * t[k] / all : 0, n[k], k}' | sort -rn
}
stop_pids() { local p; for p in "$@"; do kill "$p" 2>/dev/null || true; done; for p in "$@"; do wait "$p" 2>/dev/null || true; done; }

if want fanout; then
  phase fanout-setup
  max_s=0
  for s in ${sizes//,/ }; do ((s > max_s)) && max_s=$s; done
  "$GOBIN_DIR/ksetup" --bootstrap "$BOOTSTRAP" --topics 100 --partitions 12 --records 100 \
    --groups "$max_s" >"$RESULTS/ksetup.log" 2>&1 || { cat "$RESULTS/ksetup.log"; die "ksetup failed"; }
  log "$(tail -1 "$RESULTS/ksetup.log")"
  : >"$RESULTS/fanout.jsonl"

  # run_klag S INTERVAL WARMUP CYCLES [fanout args...]: a fresh klag-scaler (peak RSS is a
  # high-water mark) polled by bench/fanout through one counting proxy. Its evaluation window
  # must be shorter than the compressed interval, or polls would share evaluations.
  # scaler_flags (word-split) adds klag-scaler flags for one run.
  scaler_flags=""
  run_klag() {
    local s=$1 interval=$2 warmup=$3 cycles=$4 tag file_tag
    shift 4
    tag="$s${*:+ $*}"
    phase "fanout klag S=$tag"
    start_proxies 1
    local port mport scaler_pid
    port=$(free_port)
    mport=$(free_port)
    # shellcheck disable=SC2086 # scaler_flags and KLAG_BENCH_SCALER_ENV split into words on purpose
    env ${KLAG_BENCH_SCALER_ENV:-} \
      "$SCALER" --listen "127.0.0.1:$port" --evaluation-window 500ms --log-level "${KLAG_BENCH_SCALER_LOG_LEVEL:-warn}" \
      --metrics-listen "127.0.0.1:$mport" $scaler_flags >"$RESULTS/scaler-$s.log" 2>&1 &
    scaler_pid=$!
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    # The run's tag in file names: S, then its flags with anything but [a-z0-9] as "_".
    file_tag="${s}${*:+-$(tr -c 'a-z0-9\n' '_' <<<"$*" | head -c 60)}"
    local perf_pid="" perf_out="$RESULTS/perf-$file_tag"
    if ((perf)); then
      # System-wide: the split between the scaler and the rest (load generator, proxies, broker)
      # sharing the cores, then the scaler's own samples by library and symbol.
      perf record -F 499 -a -o "${perf_out}.data" >/dev/null 2>"${perf_out}.err" &
      perf_pid=$!
    fi
    if ! "$GOBIN_DIR/fanout" --addr "127.0.0.1:$port" --bootstrap "$PROXY_ADDRS" --pid "$scaler_pid" \
      --proxy-stats "$PROXY_STATS" --metrics-url "http://127.0.0.1:$mport/metrics" \
      --S "$s" --interval "$interval" --warmup "$warmup" \
      --cycles "$cycles" --topics 100 --partitions 12 --records 100 "$@" \
      >>"$RESULTS/fanout.jsonl" 2>"$RESULTS/fanout-$s.err"; then
      log "fanout S=$tag failed: $(tail -3 "$RESULTS/fanout-$s.err")"
      kill -0 "$scaler_pid" 2>/dev/null || log "klag-scaler died; its log ends: $(tail -5 "$RESULTS/scaler-$s.log")"
      echo "{\"side\": \"klag\", \"S\": $s, \"variant\": \"$(variant_of "$@")\", \"error\": $("$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()[-600:]))' <"$RESULTS/fanout-$s.err")}" >>"$RESULTS/fanout.jsonl"
    fi
    # CPU by thread over the scaler's life (start-up and warm-up included), threads of one kind
    # (a name less its trailing digits) added up: where the process's CPU goes.
    { echo "# klag-scaler, S=$tag: CPU seconds by thread kind over its life (start-up and warm-up included)"
      thread_cpu "$scaler_pid"; } >"$RESULTS/threads-$file_tag.txt"
    if [[ -n "$perf_pid" ]]; then
      kill -INT "$perf_pid" 2>/dev/null || true
      wait "$perf_pid" 2>/dev/null || true
      {
        echo "# perf record -F 499 -a during fan-out S=$tag: samples by process, then klag-scaler's by library and by symbol"
        # Shares of all samples by process (pid), then of the scaler's samples by library and by
        # symbol (perf script: `perf report --pid` leaves libc and the kernel out of its dso view).
        perf script -i "${perf_out}.data" -F pid,comm 2>/dev/null | awk -f bench/perf_by_process.awk |
          sort -rn | head -n 8 || true
        echo
        perf script -i "${perf_out}.data" --pid "$scaler_pid" -F ip,dso 2>/dev/null |
          awk '{n[$NF]++; t++} END {for (k in n) printf "%6.2f%%  %s\n", 100 * n[k] / t, k}' |
          sort -rn | head -n 15 || true
        echo
        perf script -i "${perf_out}.data" --pid "$scaler_pid" -F ip,sym,dso 2>/dev/null |
          awk '{$1 = ""; n[$0]++; t++} END {for (k in n) printf "%6.2f%% %s\n", 100 * n[k] / t, k}' |
          sort -rn | head -n 40 | cut -c1-150 || true
      } >"${perf_out}.txt"
      log "profile: ${perf_out}.txt"
    fi
    stop_pids "$scaler_pid" "${PROXY_PIDS[@]}"
  }
  # run_keda S INTERVAL WARMUP CYCLES [keda-ref args...]: KEDA's scaler code, one sarama client
  # per trigger; a proxy per 2,000 triggers keeps each proxy under the descriptor limit.
  run_keda() {
    local s=$1 interval=$2 warmup=$3 cycles=$4 tag
    shift 4
    tag="$s${*:+ $*}"
    # Two connections per trigger reach the broker, which holds at most `ulimit -n` descriptors
    # (its log segments need some too): beyond that it fails to accept connections and stays
    # broken for the runs after it, so such a row is skipped, with the reason.
    local limit
    limit=$(ulimit -n)
    if [[ "$limit" != unlimited ]] && ((2 * s + 2000 > limit)); then
      log "keda-ref S=$tag skipped: needs $((2 * s)) broker connections, open-file limit $limit"
      echo "{\"side\": \"keda\", \"S\": $s, \"variant\": \"$(variant_of "$@")\", \"skipped\": \"needs $((2 * s)) connections to the broker; its open-file limit here is $limit (ulimit -n, not raisable without CAP_SYS_RESOURCE)\"}" >>"$RESULTS/fanout.jsonl"
      return
    fi
    phase "fanout keda S=$tag"
    start_proxies $(((s + 1999) / 2000))
    if ! "$GOBIN_DIR/keda-ref" --bootstrap "$PROXY_ADDRS" --proxy-stats "$PROXY_STATS" --S "$s" \
      --interval "$interval" --warmup "$warmup" --cycles "$cycles" --topics 100 --partitions 12 \
      --records 100 "$@" >>"$RESULTS/fanout.jsonl" 2>"$RESULTS/keda-$s.err"; then
      log "keda-ref S=$tag failed: $(tail -3 "$RESULTS/keda-$s.err")"
      echo "{\"side\": \"keda\", \"S\": $s, \"variant\": \"$(variant_of "$@")\", \"error\": $("$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()[-600:]))' <"$RESULTS/keda-$s.err")}" >>"$RESULTS/fanout.jsonl"
    fi
    stop_pids "${PROXY_PIDS[@]}"
  }
  # run_floor NAME S INTERVAL WARMUP CYCLES [klag_rpc_floor args...]: bench/rpc_floor.cc (the
  # same three RPCs per poll answered from the metadata alone: no Kafka, no evaluation) under the
  # same load, as side "floor-NAME". Its CPU per cycle is what the RPCs alone cost with that
  # server setup.
  run_floor() {
    local name=$1 s=$2 interval=$3 warmup=$4 cycles=$5 port floor_pid
    shift 5
    phase "fanout floor-$name S=$s"
    port=$(free_port)
    "$FLOOR" --listen "127.0.0.1:$port" --partitions 12 --records 100 "$@" \
      >"$RESULTS/floor-$name-$s.log" 2>&1 &
    floor_pid=$!
    for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
    if ! "$GOBIN_DIR/fanout" --addr "127.0.0.1:$port" --bootstrap 127.0.0.1:9 --pid "$floor_pid" \
      --side "floor-$name" --S "$s" --interval "$interval" --warmup "$warmup" --cycles "$cycles" \
      --topics 100 --partitions 12 --records 100 >>"$RESULTS/fanout.jsonl" 2>"$RESULTS/floor-$name-$s.err"; then
      log "fanout floor-$name S=$s failed: $(tail -3 "$RESULTS/floor-$name-$s.err")"
      echo "{\"side\": \"floor-$name\", \"S\": $s, \"variant\": \"distinct groups\", \"error\": $("$PY" -c 'import json,sys; print(json.dumps(sys.stdin.read()[-600:]))' <"$RESULTS/floor-$name-$s.err")}" >>"$RESULTS/fanout.jsonl"
    fi
    stop_pids "$floor_pid"
  }
  # The variant label fanout and keda-ref print, for rows of runs that failed.
  variant_of() {
    case "${1:-}" in
      --share) echo "$2 ScaledJobs per group${4:+ ($4)}" ;;
      --streams) echo "+ $2 open StreamIsActive streams" ;;
      --dead) echo "+ $2 ScaledJobs on a ${4:-refused} cluster" ;;
      *) echo "distinct groups" ;;
    esac
  }

  for s in ${sizes//,/ }; do
    IFS=: read -r interval warmup cycles <<<"$(plan_for "$s")"
    run_klag "$s" "$interval" "$warmup" "$cycles"
    run_keda "$s" "$interval" "$warmup" "$cycles"
    # Committed offsets from one reader of __consumer_offsets instead of an OffsetFetch per
    # evaluation (opt-in: kafka/README.md), against KEDA's row above.
    scaler_flags="--committed-offsets-source offsets-topic" run_klag "$s" "$interval" "$warmup" \
      "$cycles" --variant-note "--committed-offsets-source offsets-topic"
    # The RPCs alone: klag-scaler's serving model (callback API, health service on), one
    # completion queue and nothing else, and that queue beside the callback health service.
    run_floor callback "$s" "$interval" "$warmup" "$cycles" --model callback --health on
    run_floor async "$s" "$interval" "$warmup" "$cycles" --model async --threads 1
    run_floor async-health "$s" "$interval" "$warmup" "$cycles" --model async --threads 1 --health on
  done
  # Variants at S = variant_s: ScaledJobs sharing groups (both sides), open streams and a dead
  # cluster beside the healthy one (klag-scaler; KEDA's code has no counterpart to compare).
  if ((variant_s > 0)); then
    IFS=: read -r interval warmup cycles <<<"$(plan_for "$variant_s")"
    run_klag "$variant_s" "$interval" "$warmup" "$cycles" --share 10
    run_keda "$variant_s" "$interval" "$warmup" "$cycles" --share 10
    # The same with committed reads shared across the triggers of a group for up to 1 s (opt-in:
    # scaler/service/README.md); compared with KEDA's row above.
    scaler_flags="--committed-offsets-max-age 1s" run_klag "$variant_s" "$interval" "$warmup" \
      "$cycles" --share 10 --variant-note "--committed-offsets-max-age 1s"
    # And up to one poll interval: what one OffsetFetch per group per poll costs in freshness.
    scaler_flags="--committed-offsets-max-age $interval" run_klag "$variant_s" "$interval" \
      "$warmup" "$cycles" --share 10 --variant-note "--committed-offsets-max-age $interval"
    scaler_flags="--committed-offsets-source offsets-topic" run_klag "$variant_s" "$interval" \
      "$warmup" "$cycles" --share 10 --variant-note "--committed-offsets-source offsets-topic"
    run_klag "$variant_s" "$interval" "$warmup" "$cycles" --streams 1000
    run_klag "$variant_s" "$interval" "$warmup" "$cycles" --dead "$variant_s" --dead-mode refused
    run_klag "$variant_s" "$interval" "$warmup" "$cycles" --dead "$variant_s" --dead-mode blackhole
  fi
fi

# ---- 5. the Job ---------------------------------------------------------------------------
if want job; then
  phase job
  if [[ -x "$JOB" && -x "$PRODUCE" ]]; then
    scripts/kafka.sh --state "$KAFKA_STATE" create-topic job-bench 6 >/dev/null 2>&1 ||
      die "could not create topic job-bench"
    "$PY" bench/job/jobbench.py --bootstrap "$BOOTSTRAP" --topic job-bench --records "$job_records" \
      --klag-job "$JOB" --klag-produce "$PRODUCE" ${PG_URI:+--postgres-uri "$PG_URI"} \
      --nowork-reps "$nowork_reps" --out "$RESULTS/job.json" --log-dir "$RESULTS" >/dev/null ||
      die "job benchmark failed"
  else
    log "klag-job is not built: no job rows"
  fi
fi

# ---- 6. report ----------------------------------------------------------------------------
phase report
echo "{\"total_s\": $(( $(date +%s) - started )), \"load_end\": \"$(loadavg)\"}" >"$RESULTS/done.json"
report_args=("$RESULTS")
((doc)) && report_args+=(--doc docs/benchmarks.md)
"$PY" bench/report.py "${report_args[@]}"
log "raw results in ${RESULTS#"$REPO_ROOT"/}; total $(( $(date +%s) - started )) s"
