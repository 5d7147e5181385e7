#!/usr/bin/env bash
# Runs a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) on 127.0.0.1
# for klag's tests, from the official jars on Maven Central (Kafka 3.x or 4.x). See --help.
set -euo pipefail

readonly DEFAULT_VERSION=3.9.1
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly KAFKA_DIR="${REPO_ROOT}/scripts/kafka"

usage() {
  cat <<EOF
Usage: scripts/kafka.sh [options] COMMAND [args]

Runs a single-node Apache Kafka broker in KRaft mode on 127.0.0.1 from the
org.apache.kafka:kafka_2.13 jars on Maven Central (fetched with mvn, cached).

Commands:
  fetch                      download the jars if missing (idempotent)
  start [--port P] [--controller-port C] [--fresh] [--security]
                             fetch if needed, format storage on first use, start the broker in
                             the background, wait until it serves metadata and group
                             coordination, print 127.0.0.1:PORT and write it to <state>/bootstrap.
                             Without --port, free ports are picked. Data in the state dir is
                             kept unless --fresh. Already running: prints its address.
                             --security (env KLAG_KAFKA_SECURITY=1) adds SASL_PLAINTEXT (PLAIN,
                             SCRAM-SHA-256/512, unsecured-JWT OAUTHBEARER), SSL, MTLS (client
                             certificate required) and SASL_SSL listeners, test users, a CA and
                             certificates, and ACL authorization (StandardAuthorizer); writes
                             their addresses and credentials to <state>/listeners (key=value).
                             PLAINTEXT stays the admin port (ANONYMOUS is a super user). A state
                             dir formatted this way stays secured until --fresh. See
                             scripts/kafka/security.sh.
  restart                    stop, then start again on the same ports with the same data
  stop                       SIGTERM, wait (KLAG_KAFKA_STOP_TIMEOUT, 30 s), then SIGKILL;
                             keeps the data; no-op when not running
  wait                       wait until the broker answers a metadata request
  status                     print state; exit 0 when running, 3 when not
  bootstrap                  print the broker address (exit 3 when not running)
  create-topic NAME PARTITIONS [key=value ...]
                             create a topic (replication factor 1, optional topic configs) and
                             wait until all its partitions have a leader
  run-class CLASS [ARGS...]  run a Java class (e.g. a Kafka tool such as
                             org.apache.kafka.tools.consumer.ConsoleConsumer) on this Kafka
                             version's classpath with the tools' log config (warnings to
                             stderr); fetches the jars if needed; exits with the class's status.
                             Everything after CLASS goes to the class unchanged.
  clean                      stop and delete the state dir

Options (anywhere on the command line):
  --version V     Kafka version, 3.x.y or 4.x.y (env KLAG_KAFKA_VERSION). Without it: the
                  version that last ran from the state dir (<state>/version), except for
                  start --fresh; else ${DEFAULT_VERSION}
  --state DIR     state dir (env KLAG_KAFKA_STATE; default <repo>/.cache/kafka/run); use one
                  per concurrent broker
  --timeout S     wait/start readiness timeout in seconds (env KLAG_KAFKA_WAIT_TIMEOUT; 90)
  -h, --help      this text

Environment: KLAG_KAFKA_CACHE (jar cache, default <repo>/.cache/kafka/jars),
KLAG_KAFKA_HEAP_OPTS (default "-Xmx512m -Xms128m"), KLAG_KAFKA_JVM_OPTS (extra JVM flags).

Needs java (17), mvn, and kcat or kafkacat (scripts/install-deps.sh installs them).
Broker log: <state>/logs/server.log; JVM output: <state>/logs/console.log.
Kafka 3.x logs through reload4j (scripts/kafka/log4j.properties), 4.x through log4j2
(scripts/kafka/log4j2.xml); jars are cached per version in <cache>/<version>/libs.
EOF
}

die() {
  echo "kafka.sh: error: $*" >&2
  exit 1
}
info() { echo "kafka.sh: $*" >&2; }

# ---------------------------------------------------------------- options

VERSION="${KLAG_KAFKA_VERSION:-}"
STATE="${KLAG_KAFKA_STATE:-${REPO_ROOT}/.cache/kafka/run}"
CACHE="${KLAG_KAFKA_CACHE:-${REPO_ROOT}/.cache/kafka/jars}"
WAIT_TIMEOUT="${KLAG_KAFKA_WAIT_TIMEOUT:-90}"
STOP_TIMEOUT="${KLAG_KAFKA_STOP_TIMEOUT:-30}"
HEAP_OPTS="${KLAG_KAFKA_HEAP_OPTS:--Xmx512m -Xms128m}"
JVM_OPTS="${KLAG_KAFKA_JVM_OPTS:-}"
OPT_PORT=""
OPT_CONTROLLER_PORT=""
OPT_FRESH=0
SECURITY="${KLAG_KAFKA_SECURITY:-0}"
ARGS=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
  # run-class: everything after the class name belongs to the class.
  if [[ ${#ARGS[@]} -ge 2 && "${ARGS[0]}" == run-class ]]; then
    ARGS+=("$@")
    break
  fi
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --version) need_value "$@"; VERSION="$2"; shift 2 ;;
    --version=*) VERSION="${1#*=}"; shift ;;
    --state) need_value "$@"; STATE="$2"; shift 2 ;;
    --state=*) STATE="${1#*=}"; shift ;;
    --timeout) need_value "$@"; WAIT_TIMEOUT="$2"; shift 2 ;;
    --timeout=*) WAIT_TIMEOUT="${1#*=}"; shift ;;
    --port) need_value "$@"; OPT_PORT="$2"; shift 2 ;;
    --port=*) OPT_PORT="${1#*=}"; shift ;;
    --controller-port) need_value "$@"; OPT_CONTROLLER_PORT="$2"; shift 2 ;;
    --controller-port=*) OPT_CONTROLLER_PORT="${1#*=}"; shift ;;
    --fresh) OPT_FRESH=1; shift ;;
    --security) SECURITY=1; shift ;;
    --) shift; ARGS+=("$@"); break ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

[[ -z "$VERSION" || "$VERSION" =~ ^[34]\.[0-9]+\.[0-9]+$ ]] ||
  die "Kafka version '$VERSION' is not supported: use 3.x.y or 4.x.y"
[[ "$WAIT_TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout '$WAIT_TIMEOUT' is not a number of seconds"
[[ "$STOP_TIMEOUT" =~ ^[0-9]+$ ]] || die "KLAG_KAFKA_STOP_TIMEOUT '$STOP_TIMEOUT' is not a number of seconds"
for p in "$OPT_PORT" "$OPT_CONTROLLER_PORT"; do
  [[ -z "$p" ]] || { [[ "$p" =~ ^[0-9]+$ ]] && ((p > 0 && p < 65536)); } || die "bad port '$p'"
done
mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
# No version given: the one that last ran from this state dir (its data was formatted by it), so
# create-topic, run-class and a restart use the running broker's jars; `start --fresh` begins
# anew with the default.
if [[ -z "$VERSION" ]]; then
  if [[ -f "${STATE}/version" && ! ("${ARGS[0]:-}" == start && $OPT_FRESH == 1) ]]; then
    VERSION="$(<"${STATE}/version")"
    [[ "$VERSION" =~ ^[34]\.[0-9]+\.[0-9]+$ ]] || die "${STATE}/version holds no Kafka version"
  else
    VERSION="$DEFAULT_VERSION"
  fi
fi
readonly VERSION STATE CACHE WAIT_TIMEOUT STOP_TIMEOUT
# Kafka 3.x logs through slf4j -> reload4j (log4j 1.2 properties), 4.x through log4j2: the Maven
# profile of scripts/kafka/pom.xml that adds the backend, and the JVM flags that configure it.
if [[ "$VERSION" == 3.* ]]; then
  readonly MVN_PROFILE=kafka3
  readonly SERVER_LOG_OPT="-Dlog4j.configuration=file:${KAFKA_DIR}/log4j.properties"
  readonly TOOLS_LOG_OPT="-Dlog4j.configuration=file:${KAFKA_DIR}/tools-log4j.properties"
else
  readonly MVN_PROFILE=kafka4
  readonly SERVER_LOG_OPT="-Dlog4j2.configurationFile=${KAFKA_DIR}/log4j2.xml"
  readonly TOOLS_LOG_OPT="-Dlog4j2.configurationFile=${KAFKA_DIR}/tools-log4j2.xml"
fi

readonly LIBS="${CACHE}/${VERSION}/libs"
readonly PROPS="${STATE}/server.properties"
readonly DATA="${STATE}/data"
readonly LOGS="${STATE}/logs"
readonly PIDFILE="${STATE}/pid"
# shellcheck source=kafka/security.sh
source "${KAFKA_DIR}/security.sh"

# ---------------------------------------------------------------- helpers

kcat_bin() {
  if command -v kcat >/dev/null 2>&1; then
    echo kcat
  elif command -v kafkacat >/dev/null 2>&1; then
    echo kafkacat
  else
    die "neither kcat nor kafkacat found: run scripts/install-deps.sh (Debian package kafkacat)"
  fi
}

require_java() {
  command -v java >/dev/null 2>&1 ||
    die "java not found: run scripts/install-deps.sh (Debian package openjdk-17-jre-headless)"
}

# Runs a Kafka command-line class on the cached classpath, logging warnings to stderr.
run_tool() {
  require_java
  # shellcheck disable=SC2086 # HEAP_OPTS is a list of JVM flags.
  java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "$TOOLS_LOG_OPT" \
    -cp "${LIBS}/*" "$@"
}

# The first class of the arguments that some jar on the classpath contains (zip directories keep
# entry names uncompressed, so grep finds them without unzip).
find_class() {
  local cls path
  for cls in "$@"; do
    path="${cls//.//}.class"
    if grep -lqaF "$path" "$LIBS"/*.jar 2>/dev/null; then
      echo "$cls"
      return 0
    fi
  done
  return 1
}

fetch() {
  if [[ -f "${LIBS}/.complete" ]]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 ||
    die "mvn not found: run scripts/install-deps.sh (Debian package maven)"
  mkdir -p "${CACHE}/${VERSION}"
  # One fetch per version at a time, even across concurrent users of the cache.
  exec 8>"${CACHE}/${VERSION}/.lock"
  flock 8
  if [[ -f "${LIBS}/.complete" ]]; then
    exec 8>&-
    return 0
  fi
  info "fetching Apache Kafka ${VERSION} jars from Maven Central into ${LIBS}"
  local tmp="${CACHE}/${VERSION}/libs.tmp"
  rm -rf "$tmp"
  if ! mvn -B -q -Dstyle.color=never -f "${KAFKA_DIR}/pom.xml" -Dkafka.version="$VERSION" \
    -P "$MVN_PROFILE" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "mvn could not fetch org.apache.kafka:kafka_2.13:${VERSION} (does that version exist on Maven Central?)"
  fi
  [[ -f "${tmp}/kafka_2.13-${VERSION}.jar" ]] ||
    die "mvn finished but ${tmp}/kafka_2.13-${VERSION}.jar is missing"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  touch "${LIBS}/.complete"
  exec 8>&-
}

# The pid of this state dir's broker when it is running, else nothing (and exit status 1).
# The command line must name this state's server.properties, so a recycled pid is never ours.
broker_pid() {
  [[ -f "$PIDFILE" ]] || return 1
  local pid
  pid="$(<"$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/${pid}/cmdline" ]] || return 1
  local cmdline
  cmdline="$(tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *kafka.Kafka*"$PROPS"* ]] || return 1
  echo "$pid"
}

# True when a TCP socket other than a TIME-WAIT one uses local port $1 (with --listening-only:
# a listening socket; the JVM's server sockets use SO_REUSEADDR, so the old broker's closed
# connections do not block a restart on the same port, but a listener does).
port_in_use() {
  local port="$1" opts=-Htan
  [[ "${2:-}" != --listening-only ]] || opts=-Htln
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss "$opts" "sport = :${port}" 2>/dev/null | awk '$1 != "TIME-WAIT"')" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null
  fi
}

# A port that nothing uses now, below the kernel's ephemeral range so that an outgoing
# connection does not take it later (a test restarts the broker on the same port).
pick_port() {
  local low=20000 high=32000 eph_low _ i port
  read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range || eph_low=32768
  ((high <= eph_low)) || high=$eph_low
  for ((i = 0; i < 200; i++)); do
    port=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    if ! port_in_use "$port" && [[ "$port" != "${1:-}" ]]; then
      echo "$port"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1 between ${low} and ${high}"
}

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters), not
# starting with '-' (Kafka's Uuid.randomUuid avoids that too, for command lines).
new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" == -* ]] || break
  done
  echo "$id"
}

log_tail() {
  local f
  for f in "${LOGS}/console.log" "${LOGS}/server.log"; do
    if [[ -s "$f" ]]; then
      echo "----- last lines of $f -----" >&2
      tail -n 25 "$f" >&2
    fi
  done
}

# True when the broker at $1 answers a metadata request and lists itself.
answers_metadata() {
  local out
  out="$("$(kcat_bin)" -L -b "$1" -m 3 2>/dev/null)" || return 1
  grep -q "broker 1 at $1" <<<"$out"
}

# Waits until the broker at $1 answers metadata; fails early if the process (pid $2) died.
wait_ready() {
  local bootstrap="$1" pid="${2:-}" deadline=$((SECONDS + WAIT_TIMEOUT))
  kcat_bin >/dev/null
  while ! answers_metadata "$bootstrap"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      log_tail
      die "the broker process (pid ${pid}) exited while starting; logs in ${LOGS}"
    fi
    if ((SECONDS >= deadline)); then
      log_tail
      die "the broker at ${bootstrap} did not answer metadata within ${WAIT_TIMEOUT} s; logs in ${LOGS}"
    fi
    sleep 0.5
  done
}

# The first group operation on a new broker creates __consumer_offsets; until that is done the
# broker answers COORDINATOR_NOT_AVAILABLE. Doing it here makes the first test's group calls
# deterministic. Describing a group that does not exist needs its coordinator, and nothing else.
warm_group_coordinator() {
  local bootstrap="$1" cls out
  cls="$(find_class org.apache.kafka.tools.consumer.group.ConsumerGroupCommand \
    kafka.admin.ConsumerGroupCommand)" || die "no ConsumerGroupCommand class in ${LIBS}"
  if ! out="$(timeout "$WAIT_TIMEOUT" java -Xmx256m -XX:TieredStopAtLevel=1 "$TOOLS_LOG_OPT" \
    -cp "${LIBS}/*" "$cls" --bootstrap-server "$bootstrap" --describe --group klag-kafka-sh-warmup \
    --timeout $((WAIT_TIMEOUT * 1000)) 2>&1)"; then
    # "does not exist" is the expected answer once the coordinator works.
    if ! grep -q "does not exist" <<<"$out"; then
      echo "$out" >&2
      log_tail
      die "the group coordinator of ${bootstrap} did not become available"
    fi
  fi
}

render_props() {
  local port="$1" cport="$2"
  sed -e "s|@PORT@|${port}|g" -e "s|@CONTROLLER_PORT@|${cport}|g" \
    -e "s|@DATA_DIR@|${DATA//|/\\|}|g" "${KAFKA_DIR}/server.properties.in" >"${PROPS}.tmp"
  mv "${PROPS}.tmp" "$PROPS"
}

format_storage() {
  if [[ -f "${DATA}/meta.properties" ]]; then
    return 0
  fi
  local id
  id="$(new_cluster_id)"
  mkdir -p "$DATA"
  local extra=()
  if security_enabled; then mapfile -t extra < <(security_format_args); fi
  if ! run_tool kafka.tools.StorageTool format -t "$id" -c "$PROPS" --ignore-formatted \
    "${extra[@]}" >"${LOGS}/format.log" 2>&1; then
    cat "${LOGS}/format.log" >&2
    die "formatting the broker storage in ${DATA} failed"
  fi
  echo "$id" >"${STATE}/cluster_id"
}

# Starts the JVM on the given ports; prints its pid. Does not wait for readiness.
launch() {
  local port="$1" cport="$2"
  render_props "$port" "$cport"
  if security_enabled; then security_configure "$port" "$cport"; fi
  format_storage
  echo "$port" >"${STATE}/port"
  echo "$cport" >"${STATE}/controller_port"
  if [[ -f "${STATE}/version" && "$(<"${STATE}/version")" != "$VERSION" && -f "${DATA}/meta.properties" ]]; then
    info "the data in ${DATA} was last run by Kafka $(<"${STATE}/version"); starting Kafka ${VERSION} on it"
  fi
  echo "$VERSION" >"${STATE}/version"
  rm -f "${STATE}/bootstrap"
  {
    echo "===== $(date -u +%FT%TZ) starting Kafka ${VERSION} on 127.0.0.1:${port} (controller ${cport})"
  } >>"${LOGS}/console.log"
  # setsid: the broker must outlive the caller's process group (Ctrl-C in a test run is the
  # test's business; the EXIT trap of scripts/test.sh stops the broker).
  # Every inherited descriptor above 2 is closed first: a caller's pipe (ctest's output, a
  # popen) or lock held open by the long-lived JVM would make that caller wait for it.
  (
    for fd in /proc/self/fd/*; do
      fd="${fd##*/}"
      if ((fd > 2)); then eval "exec ${fd}>&-" 2>/dev/null || true; fi
    done
    # shellcheck disable=SC2086 # HEAP_OPTS and JVM_OPTS are lists of JVM flags.
    exec setsid java $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
      -Dkafka.logs.dir="$LOGS" "$SERVER_LOG_OPT" \
      $JVM_OPTS -cp "${LIBS}/*" kafka.Kafka "$PROPS" </dev/null >>"${LOGS}/console.log" 2>&1
  ) &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  echo "$pid"
}

lock_state() {
  exec 9>"${STATE}/.lock"
  flock 9
}

# ---------------------------------------------------------------- commands

cmd_start() {
  lock_state
  local pid
  if pid="$(broker_pid)"; then
    [[ -f "${STATE}/bootstrap" ]] || die "a broker (pid ${pid}) runs from ${STATE} but is not ready"
    local running
    running="$(<"${STATE}/bootstrap")"
    if [[ -n "$OPT_PORT" && "$running" != "127.0.0.1:${OPT_PORT}" ]]; then
      die "a broker already runs from ${STATE} at ${running}, not on port ${OPT_PORT}"
    fi
    ((OPT_FRESH == 0)) || die "--fresh: a broker already runs from ${STATE} (pid ${pid}); stop it first"
    info "already running (pid ${pid})"
    echo "$running"
    return 0
  fi
  if ((OPT_FRESH)); then
    rm -rf "$DATA" "$LOGS" "${STATE}/bootstrap" "${STATE}/port" "${STATE}/controller_port" \
      "${STATE}/cluster_id" "${STATE}/version" "$PIDFILE"
    security_fresh
  fi
  fetch
  require_java
  kcat_bin >/dev/null
  mkdir -p "$LOGS" "$DATA"

  local attempt port cport
  for attempt in 1 2 3; do
    port="${OPT_PORT:-$(pick_port)}"
    cport="${OPT_CONTROLLER_PORT:-$(pick_port "$port")}"
    [[ "$port" != "$cport" ]] || die "--port and --controller-port must differ"
    if [[ -n "$OPT_PORT" ]] && port_in_use "$port" --listening-only; then
      die "port ${port} on 127.0.0.1 is in use: cannot start the broker there"
    fi
    if [[ -n "$OPT_CONTROLLER_PORT" ]] && port_in_use "$cport" --listening-only; then
      die "controller port ${cport} on 127.0.0.1 is in use"
    fi
    pid="$(launch "$port" "$cport")"
    # A port taken between the check and the bind makes the JVM exit quickly: try other ports
    # (unless the caller chose them).
    local t0=$SECONDS died=0
    while ((SECONDS - t0 < 5)); do
      if ! kill -0 "$pid" 2>/dev/null; then
        died=1
        break
      fi
      if answers_metadata "127.0.0.1:${port}"; then break; fi
      sleep 0.5
    done
    if ((died)) && [[ -z "$OPT_PORT" && -z "$OPT_CONTROLLER_PORT" && $attempt -lt 3 ]] &&
      grep -q "Address already in use" "${LOGS}/console.log" "${LOGS}/server.log" 2>/dev/null; then
      info "port clash on attempt ${attempt}; retrying with other ports"
      rm -f "$PIDFILE"
      continue
    fi
    break
  done
  local bootstrap="127.0.0.1:${port}"
  if ! wait_ready "$bootstrap" "$pid"; then
    exit 1
  fi
  warm_group_coordinator "$bootstrap"
  echo "$bootstrap" >"${STATE}/bootstrap.tmp"
  mv "${STATE}/bootstrap.tmp" "${STATE}/bootstrap"
  info "Kafka ${VERSION} ready at ${bootstrap} (pid ${pid}, state ${STATE})"
  if security_enabled; then info "secured listeners: $(grep -E '^(sasl_plaintext|ssl|mtls|sasl_ssl)=' "$SEC_LISTENERS" | tr '\n' ' ')(all in ${SEC_LISTENERS})"; fi
  echo "$bootstrap"
}

cmd_stop() {
  lock_state
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$PIDFILE" "${STATE}/bootstrap"
    info "not running (state ${STATE})"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      info "broker (pid ${pid}) still running ${STOP_TIMEOUT} s after SIGTERM: sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local i
      for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -0 "$pid" 2>/dev/null && die "broker (pid ${pid}) survived SIGKILL"
      break
    fi
    sleep 0.2
  done
  rm -f "$PIDFILE" "${STATE}/bootstrap"
  info "stopped (pid ${pid}); data kept in ${DATA}"
}

cmd_restart() {
  [[ -f "${STATE}/port" && -f "${STATE}/controller_port" ]] ||
    die "no previous broker in ${STATE} to restart: use start"
  OPT_PORT="$(<"${STATE}/port")"
  OPT_CONTROLLER_PORT="$(<"${STATE}/controller_port")"
  ((OPT_FRESH == 0)) || die "restart keeps the data: --fresh makes no sense here"
  (cmd_stop)
  # The stopped broker's sockets may linger in TIME_WAIT (harmless: Java sets SO_REUSEADDR on
  # server sockets), but a connected client socket on the port would block the bind.
  cmd_start
}

cmd_wait() {
  local pid bootstrap
  pid="$(broker_pid)" || die "no broker running from ${STATE} (start it with scripts/kafka.sh start)"
  if [[ -f "${STATE}/bootstrap" ]]; then
    bootstrap="$(<"${STATE}/bootstrap")"
  else
    bootstrap="127.0.0.1:$(<"${STATE}/port")"
  fi
  wait_ready "$bootstrap" "$pid"
  info "ready at ${bootstrap}"
}

cmd_status() {
  local pid
  if pid="$(broker_pid)"; then
    local bootstrap="(starting)"
    [[ -f "${STATE}/bootstrap" ]] && bootstrap="$(<"${STATE}/bootstrap")"
    echo "running: pid ${pid}, bootstrap ${bootstrap}, Kafka ${VERSION}, state ${STATE}, log ${LOGS}/server.log"
    return 0
  fi
  echo "stopped: state ${STATE}"
  return 3
}

cmd_bootstrap() {
  if broker_pid >/dev/null && [[ -f "${STATE}/bootstrap" ]]; then
    cat "${STATE}/bootstrap"
    return 0
  fi
  echo "kafka.sh: no broker running from ${STATE}" >&2
  return 3
}

cmd_create_topic() {
  [[ $# -ge 2 ]] || die "usage: create-topic NAME PARTITIONS [key=value ...]"
  local name="$1" partitions="$2"
  shift 2
  [[ "$name" =~ ^[a-zA-Z0-9._-]+$ && ${#name} -le 249 ]] ||
    die "bad topic name '${name}' (letters, digits, '.', '_', '-'; at most 249)"
  if ! [[ "$partitions" =~ ^[1-9][0-9]*$ ]]; then
    die "PARTITIONS must be a positive integer, not '${partitions}'"
  fi
  local bootstrap
  bootstrap="$(cmd_bootstrap)" || die "no broker running from ${STATE} (start it first)"
  local cls
  cls="$(find_class org.apache.kafka.tools.TopicCommand kafka.admin.TopicCommand)" ||
    die "no TopicCommand class in ${LIBS}"
  local configs=() kv
  for kv in "$@"; do
    [[ "$kv" == *=* ]] || die "topic config '${kv}' is not key=value"
    configs+=(--config "$kv")
  done
  run_tool "$cls" --bootstrap-server "$bootstrap" --create --topic "$name" \
    --partitions "$partitions" --replication-factor 1 "${configs[@]}" >&2 ||
    die "creating topic '${name}' failed"
  # The controller has the topic; wait until the broker's metadata shows every partition with
  # a leader, so producing right after this returns works.
  local deadline=$((SECONDS + WAIT_TIMEOUT)) out count
  while :; do
    out="$("$(kcat_bin)" -L -b "$bootstrap" -t "$name" -m 3 2>/dev/null || true)"
    count="$(grep -cE "partition [0-9]+, leader 1," <<<"$out" || true)"
    ((count == partitions)) && break
    ((SECONDS < deadline)) || die "topic '${name}' has ${count}/${partitions} partitions with a leader after ${WAIT_TIMEOUT} s"
    sleep 0.2
  done
  info "created topic '${name}' with ${partitions} partitions"
}

cmd_run_class() {
  [[ $# -ge 1 ]] || die "usage: run-class CLASS [ARGS...]"
  fetch
  require_java
  # shellcheck disable=SC2086 # JVM_OPTS is a list of JVM flags.
  exec java -Xmx256m -XX:TieredStopAtLevel=1 -Djava.awt.headless=true "$TOOLS_LOG_OPT" $JVM_OPTS \
    -cp "${LIBS}/*" "$@"
}

cmd_clean() {
  (cmd_stop)
  rm -rf "$STATE"
  info "removed ${STATE}"
}

[[ ${#ARGS[@]} -gt 0 ]] || {
  usage >&2
  exit 2
}
COMMAND="${ARGS[0]}"
ARGS=("${ARGS[@]:1}")
case "$COMMAND" in
  fetch) fetch; info "Kafka ${VERSION} jars in ${LIBS}" ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_restart ;;
  wait) cmd_wait ;;
  status) cmd_status ;;
  bootstrap) cmd_bootstrap ;;
  create-topic) cmd_create_topic "${ARGS[@]}" ;;
  run-class) cmd_run_class "${ARGS[@]}" ;;
  clean) cmd_clean ;;
  help) usage ;;
  *) die "unknown command '${COMMAND}' (see --help)" ;;
esac
