#!/usr/bin/env bash
# Runs a throwaway PostgreSQL server (Debian's postgresql-15 binaries) on 127.0.0.1 for klag's
# tests: the postgres sink of klag-job. See --help.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT

usage() {
  cat <<EOF
Usage: scripts/postgres.sh [options] COMMAND

Runs a throwaway PostgreSQL server on 127.0.0.1 from the installed server binaries
(postgresql-15 on Debian 12), with its data, socket and log in a state directory.

Commands:
  start [--port P] [--fresh]
              initialise the data directory on first use (trust authentication, user and
              database "klag"), start the server in the background on a free port (or P),
              wait until it accepts connections, print its URI
              (postgresql://klag@127.0.0.1:PORT/klag) and write it to <state>/uri.
              Already running: prints its URI.
  stop        fast shutdown; keeps the data; no-op when not running
  status      print state; exit 0 when running, 3 when not
  uri         print the URI (exit 3 when not running)
  clean       stop and delete the state directory

Options (anywhere on the command line):
  --state DIR   state directory (env KLAG_POSTGRES_STATE; default <repo>/.cache/postgres/run);
                one per concurrent server
  --timeout S   start/stop timeout in seconds (env KLAG_POSTGRES_WAIT_TIMEOUT; 60)
  -h, --help    this text

PostgreSQL refuses to run as root: when run by root, the server runs as the "postgres" user
(created by the server package), which then owns the state directory. The server listens on
127.0.0.1 only and trusts local connections: for tests, never for data that matters.
Server log: <state>/postgres.log.

Typical test use:
  export KLAG_TEST_POSTGRES="\$(scripts/postgres.sh start)"
  ctest --test-dir build -L e2e
  scripts/postgres.sh stop
EOF
}

die() {
  echo "postgres.sh: error: $*" >&2
  exit 1
}
info() { echo "postgres.sh: $*" >&2; }

STATE="${KLAG_POSTGRES_STATE:-${REPO_ROOT}/.cache/postgres/run}"
WAIT_TIMEOUT="${KLAG_POSTGRES_WAIT_TIMEOUT:-60}"
OPT_PORT=""
OPT_FRESH=0
ARGS=()

need_value() { [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --state) need_value "$@"; STATE="$2"; shift 2 ;;
    --state=*) STATE="${1#*=}"; shift ;;
    --timeout) need_value "$@"; WAIT_TIMEOUT="$2"; shift 2 ;;
    --timeout=*) WAIT_TIMEOUT="${1#*=}"; shift ;;
    --port) need_value "$@"; OPT_PORT="$2"; shift 2 ;;
    --port=*) OPT_PORT="${1#*=}"; shift ;;
    --fresh) OPT_FRESH=1; shift ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
[[ ${#ARGS[@]} -ge 1 ]] || { usage >&2; exit 2; }
[[ "$WAIT_TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a whole number of seconds"
[[ -z "$OPT_PORT" || "$OPT_PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"

mkdir -p "$STATE"
STATE="$(cd "$STATE" && pwd)"
readonly STATE
readonly DATA="${STATE}/data"
readonly LOG="${STATE}/postgres.log"
readonly URI_FILE="${STATE}/uri"
readonly PORT_FILE="${STATE}/port"
readonly DB_USER=klag
readonly DB_NAME=klag

# The server binaries: pg_config's bindir (libpq-dev) or the newest /usr/lib/postgresql/*/bin.
pg_bindir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "${dir}/pg_ctl" && -x "${dir}/initdb" ]] && echo "$dir"
  done | sort -V | tail -n 1 | grep . ||
    die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)"
}
PGBIN="$(pg_bindir)"
readonly PGBIN

# Runs a server binary as the server's user: ourselves, or "postgres" when we are root.
as_server_user() {
  if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the \"postgres\" user (postgresql package)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# True when a listening TCP socket uses local port $1.
port_in_use() {
  if command -v ss >/dev/null 2>&1; then
    [[ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

# A free port below the kernel's ephemeral range.
pick_port() {
  local low=20000 high=32000 eph_low _ i port
  read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range || eph_low=32768
  ((high <= eph_low)) || high=$eph_low
  for ((i = 0; i < 200; i++)); do
    port=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    if ! port_in_use "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "found no free port on 127.0.0.1 between ${low} and ${high}"
}

running() {
  [[ -f "${DATA}/postmaster.pid" ]] && as_server_user "${PGBIN}/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

lock_state() {
  exec 9>"${STATE}/.lock"
  flock 9
}

init_data() {
  [[ -f "${DATA}/PG_VERSION" ]] && return 0
  info "initialising ${DATA}"
  mkdir -p "$DATA"
  chmod 700 "$DATA"
  if [[ "$(id -u)" == 0 ]]; then chown -R postgres: "$STATE"; fi
  as_server_user "${PGBIN}/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --encoding=UTF8 \
    --no-locale --no-sync >"${STATE}/initdb.log" 2>&1 ||
    { cat "${STATE}/initdb.log" >&2; die "initdb failed"; }
}

cmd_start() {
  lock_state
  if running; then
    [[ -f "$URI_FILE" ]] || die "a server runs from ${STATE} but has no URI file"
    if [[ -n "$OPT_PORT" && "$(<"$PORT_FILE")" != "$OPT_PORT" ]]; then
      die "a server already runs from ${STATE} on port $(<"$PORT_FILE"), not ${OPT_PORT}"
    fi
    ((OPT_FRESH == 0)) || die "--fresh: a server already runs from ${STATE}; stop it first"
    info "already running"
    cat "$URI_FILE"
    return 0
  fi
  ((OPT_FRESH == 0)) || rm -rf "$DATA" "$URI_FILE" "$PORT_FILE" "$LOG"
  init_data
  if [[ "$(id -u)" == 0 ]]; then
    touch "$LOG"
    chown postgres: "$STATE" "$LOG"
  fi

  local attempt port started=0
  for attempt in 1 2 3; do
    port="${OPT_PORT:-$(pick_port)}"
    if [[ -n "$OPT_PORT" ]] && port_in_use "$port"; then
      die "port ${port} on 127.0.0.1 is in use"
    fi
    # The server must not inherit the state lock (fd 9): it would hold it for its lifetime.
    # The socket goes into the state dir (not /var/run/postgresql, which may not exist or be
    # writable); fsync off: a throwaway server.
    if as_server_user "${PGBIN}/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$WAIT_TIMEOUT" \
      -o "-p ${port} -k ${STATE} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=100" \
      start >/dev/null 9>&-; then
      started=1
      break
    fi
    [[ -z "$OPT_PORT" ]] || break
    info "start on port ${port} failed (attempt ${attempt}); trying another port"
  done
  if ((started == 0)); then
    tail -n 20 "$LOG" >&2 || true
    die "the server did not start (log: ${LOG})"
  fi
  echo "$port" >"$PORT_FILE"
  if ! as_server_user "${PGBIN}/psql" -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -Atqc \
    "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'" | grep -q 1; then
    as_server_user "${PGBIN}/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" ||
      die "createdb ${DB_NAME} failed"
  fi
  local uri="postgresql://${DB_USER}@127.0.0.1:${port}/${DB_NAME}"
  echo "$uri" >"$URI_FILE"
  info "PostgreSQL $("${PGBIN}/postgres" --version | awk '{print $3}') ready at ${uri} (state ${STATE})"
  echo "$uri"
}

cmd_stop() {
  lock_state
  if ! running; then
    info "not running"
    return 0
  fi
  as_server_user "${PGBIN}/pg_ctl" -D "$DATA" -m fast -w -t "$WAIT_TIMEOUT" stop >/dev/null ||
    die "pg_ctl stop failed (log: ${LOG})"
  rm -f "$URI_FILE"
  info "stopped"
}

cmd_status() {
  if running; then
    echo "running: $(cat "$URI_FILE" 2>/dev/null || echo '?') (state ${STATE})"
    return 0
  fi
  echo "not running (state ${STATE})"
  return 3
}

cmd_uri() {
  running && [[ -f "$URI_FILE" ]] || { info "not running"; exit 3; }
  cat "$URI_FILE"
}

cmd_clean() {
  cmd_stop
  rm -rf "$STATE"
  info "removed ${STATE}"
}

case "${ARGS[0]}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  uri) cmd_uri ;;
  clean) cmd_clean ;;
  *) die "unknown command ${ARGS[0]} (see --help)" ;;
esac
