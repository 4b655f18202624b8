# shellcheck shell=bash
# shellcheck disable=SC2034  # PG_PORT, DB_PREFIX, ...: for the scripts that source this file
# Shared by the local-stack scripts: where things live and which ports an instance uses.
# An instance is a complete private stack (PostgreSQL, Kafka, services) with its own
# ports and data directory: `dev` for `make up`, `test` for `make test`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INSTANCE=${DIBAO_INSTANCE:-dev}
STATE=${DIBAO_STATE_DIR:-$ROOT/.local/$INSTANCE}
SERVICES=(intake assessment publicity payments audit)

case "$INSTANCE" in
  dev)  PG_PORT=${DIBAO_PG_PORT:-54320}; KAFKA_PORT=${DIBAO_KAFKA_PORT:-9092}; SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:-8000}; DB_PREFIX=dibao ;;
  test) PG_PORT=${DIBAO_PG_PORT:-15430}; KAFKA_PORT=${DIBAO_KAFKA_PORT:-9192}; SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:-8100}; DB_PREFIX=dibao_test ;;
  *)    PG_PORT=${DIBAO_PG_PORT:?set DIBAO_PG_PORT for instance $INSTANCE}
        KAFKA_PORT=${DIBAO_KAFKA_PORT:?set DIBAO_KAFKA_PORT for instance $INSTANCE}
        SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:?set DIBAO_SVC_PORT_BASE for instance $INSTANCE}
        DB_PREFIX=dibao_${INSTANCE//-/_} ;;
esac
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))

# The pinned uv first on PATH (UV_VERSION, UV_TOOL_DIR), uv's settings.
# shellcheck source=deploy/uv-path.sh
source "$ROOT/deploy/uv-path.sh"

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$INSTANCE" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# The instance's audit witness (stack.sh) listens 15 above the base: 8015 for `dev`.
WITNESS_PORT_OFFSET=15

service_port() {  # service_port <name>: one of SERVICES, or `witness`
  local i
  if [[ $1 == witness ]]; then echo $((SVC_PORT_BASE + WITNESS_PORT_OFFSET)); return; fi
  for i in "${!SERVICES[@]}"; do
    if [[ ${SERVICES[$i]} == "$1" ]]; then echo $((SVC_PORT_BASE + i + 1)); return; fi
  done
  die "unknown service $1"
}

# Phase timing: `phase NAME` starts a phase, `phase_end` prints how long it took.
_PHASE_NAME=""; _PHASE_T0=0
phase() { phase_end; _PHASE_NAME=$1; _PHASE_T0=$(date +%s.%N); log "== $1"; }
phase_end() {
  if [[ -n $_PHASE_NAME ]]; then
    log "== $_PHASE_NAME took $(awk -v a="$_PHASE_T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
    _PHASE_NAME=""
  fi
}

# A process is alive; one that has exited but is not yet reaped (a zombie: a container's
# init may reap late or never) counts as dead.
proc_alive() {  # proc_alive <pid>
  [[ $1 =~ ^[0-9]+$ ]] && kill -0 "$1" 2>/dev/null || return 1
  [[ $(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) != Z ]]
}

# The process a pid file names is alive.
pid_alive() {  # pid_alive <pidfile>
  local pid
  [[ -s $1 ]] && pid=$(<"$1") && proc_alive "$pid"
}

# A process's command line, one line (for messages).
proc_cmdline() {  # proc_cmdline <pid>
  local args
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || { echo "?"; return; }
  echo "${args[*]:-?}"
}

# Probes of servers the operator names (DIBAO_PG_URL, DIBAO_KAFKA_BOOTSTRAP) give up after
# PROBE_TIMEOUT seconds: a bare connect to a host that drops packets waits out the SYN
# retries (about two minutes), and libpq waits for a silent server forever.
PROBE_TIMEOUT=${DIBAO_PROBE_TIMEOUT:-5}

# A server an operator names is used, or the command fails naming it and what failed:
# never a silent fallback to the instance's own server, which would put the data where
# nobody looks for it. Messages name a server without its user, password or options.
server_name() {  # server_name <url>: scheme://host:port/path of a URL, credentials left out
  local url=${1%%\?*} scheme=
  if [[ $url == *://* ]]; then scheme=${url%%://*}://; url=${url#*://}; fi
  local authority=${url%%/*} path=
  [[ $url == */* ]] && path=/${url#*/}
  printf '%s%s%s\n' "$scheme" "${authority##*@}" "$path"
}

# The servers of a test or benchmark instance (deploy/test.sh, bench/run.sh): its own
# PostgreSQL and Kafka. DIBAO_PG_URL and DIBAO_KAFKA_BOOTSTRAP (and the audit runtime
# login DIBAO_AUDIT_RUNTIME_DATABASE_URL) name an operator's servers for `make up`, and the
# suite drops and recreates databases: they are set aside, said once. Another server is
# used for tests only when named for tests, DIBAO_TEST_PG_DSN (a postgresql:// URL) and
# DIBAO_TEST_KAFKA_BOOTSTRAP (host:port,...), each on its own; it is checked as make up
# checks an operator's (stack.sh, pg.sh: it answers, or the run fails naming it).
test_servers() {
  local pg=${DIBAO_TEST_PG_DSN:-} kafka=${DIBAO_TEST_KAFKA_BOOTSTRAP:-}
  if [[ -n ${DIBAO_PG_URL:-} && -z $pg ]]; then
    log "DIBAO_PG_URL ($(server_name "$DIBAO_PG_URL")) is left alone: tests use the instance's own PostgreSQL (DIBAO_TEST_PG_DSN names a server for tests)"
  fi
  if [[ -n ${DIBAO_KAFKA_BOOTSTRAP:-} && -z $kafka ]]; then
    log "DIBAO_KAFKA_BOOTSTRAP ($DIBAO_KAFKA_BOOTSTRAP) is left alone: tests use the instance's own Kafka (DIBAO_TEST_KAFKA_BOOTSTRAP names a broker for tests)"
  fi
  unset DIBAO_PG_URL DIBAO_KAFKA_BOOTSTRAP DIBAO_AUDIT_RUNTIME_DATABASE_URL
  if [[ -n $pg ]]; then
    export DIBAO_PG_URL=$pg
    log "tests use the PostgreSQL server at $(server_name "$pg") (DIBAO_TEST_PG_DSN)"
  fi
  if [[ -n $kafka ]]; then
    export DIBAO_KAFKA_BOOTSTRAP=$kafka
    log "tests use the Kafka broker at $kafka (DIBAO_TEST_KAFKA_BOOTSTRAP)"
  fi
}

# The ports a test run listens on that lie in the kernel's ephemeral range
# (net.ipv4.ip_local_port_range), one per line: any outgoing connection may hold one, and a
# server then cannot start on it (ADR 0001). The instance's own servers and those the
# tests start at fixed offsets from them: PostgreSQL +1,000 (tests/chaos), +1,100 (the kit's
# socket test), +10,020 (tests/e2e/test_script_test_servers.py, as for Kafka and the
# services); Kafka's own brokers +10,000 to +10,050 and their controllers 50 above
# (kafka_fixtures.own_broker); the services 1 to 5 and 50 above their base, and the audit
# witness an instance started with its services runs 15 above it (stack.sh).
ephemeral_test_ports() {
  local low high port range=/proc/sys/net/ipv4/ip_local_port_range
  [[ -r $range ]] || return 0
  read -r low high <"$range"
  for port in "$PG_PORT" $((PG_PORT + 1000)) $((PG_PORT + 1100)) $((PG_PORT + 10020)) \
    "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" $((KAFKA_PORT + 10000)) $((KAFKA_PORT + 10100)) \
    $((SVC_PORT_BASE + 1)) $((SVC_PORT_BASE + WITNESS_PORT_OFFSET)) $((SVC_PORT_BASE + 50)) \
    $((SVC_PORT_BASE + 10025)); do
    if ((port >= low && port <= high)); then echo "$port"; fi
  done
}

# The Kafka broker at <host>:<port> answers an ApiVersions request (v0, which every broker
# answers, if only with an error) within PROBE_TIMEOUT seconds: a connection alone is not
# an answer (a broker may accept and hang). On failure, prints what failed and returns 1.
kafka_answers() {  # kafka_answers <host:port>
  local broker=$1 host port out rc=0
  if [[ $broker =~ ^\[(.+)\]:([0-9]+)$ || $broker =~ ^([^:]+):([0-9]+)$ ]]; then
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[2]}
  else
    echo "not host:port"; return 1
  fi
  # Size 21, api key 18 (ApiVersions), version 0, correlation id 2018, client id
  # 'dibao-probe'; the answer starts with its size and the same correlation id.
  # Not --foreground: the timeout must end the reader (head) too.
  # shellcheck disable=SC2016  # $0 and $1 are the inner shell's
  out=$(timeout "$PROBE_TIMEOUT" bash -c '
      exec 3<>"/dev/tcp/$0/$1" || exit 3
      echo connected
      printf "\x00\x00\x00\x15\x00\x12\x00\x00\x00\x00\x07\xe2\x00\x0bdibao-probe" >&3
      echo "answer $(head -c 8 <&3 | od -An -tx1 | tr -d " \n")"' "$host" "$port" 2>&1) || rc=$?
  if [[ $out == *$'answer '????????000007e2* ]]; then return 0; fi
  if [[ $out == *$'\nanswer ' ]]; then
    echo "accepted a connection, then closed it without an answer"
  elif [[ $out == *$'\nanswer '* ]]; then
    echo "accepted a connection but did not answer as a Kafka broker"
  elif [[ $out == *connected* ]]; then
    echo "accepted a connection but did not answer within $PROBE_TIMEOUT s"
  elif ((rc == 124)); then
    echo "no connection within $PROBE_TIMEOUT s"
  else
    out=$(head -n1 <<<"$out"); echo "${out##*: }"
  fi
  return 1
}

# The first broker of DIBAO_KAFKA_BOOTSTRAP that answers (status 0), else one line naming
# each broker and what failed (status 1).
kafka_bootstrap_answers() {  # kafka_bootstrap_answers <bootstrap>
  local brokers broker why failures=()
  IFS=, read -ra brokers <<<"$1"
  for broker in "${brokers[@]}"; do
    broker=${broker//[[:space:]]/}
    [[ -n $broker ]] || continue
    if why=$(kafka_answers "$broker"); then return 0; fi
    failures+=("$broker: $why")
  done
  ((${#failures[@]})) || failures=("no broker named")
  local joined; joined=$(printf '%s; ' "${failures[@]}")
  echo "${joined%; }"
  return 1
}

# Downloads (apt, PyPI, Maven Central, npm) are retried: a fresh machine's first run meets
# mirrors that time out or answer 5xx now and then. DIBAO_RETRIES attempts (4), waiting
# 5, 10, 20 ... s between them; then the command fails naming what it was doing.
retry() {  # retry <what> <command>...
  local what=$1 attempt=1 attempts=${DIBAO_RETRIES:-4} wait=${DIBAO_RETRY_WAIT:-5} rc
  shift
  while :; do
    rc=0; "$@" || rc=$?
    ((rc != 0)) || return 0
    if ((attempt >= attempts)); then
      log "ERROR: $what failed $attempt times (last exit status $rc): $*"
      return "$rc"
    fi
    log "$what failed (exit status $rc, attempt $attempt of $attempts): again in $wait s"
    sleep "$wait"
    attempt=$((attempt + 1)) wait=$((wait * 2))
  done
}

# One command at a time changes an instance: `stack.sh up|down`, `pg.sh start|stop|remove`,
# deploy/test.sh and bench/run.sh hold an flock on $STATE/lock from start to end (the file
# names the holder). Another waits DIBAO_LOCK_WAIT seconds (default 120), then fails
# naming it. The scripts a holder runs share its lock (DIBAO_LOCKED_STATE) rather than
# wait for it. The lock is fd 8: every command that leaves a process running (PostgreSQL,
# Kafka, a service) is started with 8>&-, since an inherited copy would hold the lock
# after the script has ended.
instance_lock() {  # instance_lock <what>
  [[ ${DIBAO_LOCKED_STATE:-} == "$STATE" ]] && return 0
  local lock=$STATE/lock wait=${DIBAO_LOCK_WAIT:-120} holder pid
  mkdir -p "$STATE"
  exec 8>>"$lock"
  if ! flock -w "$wait" 8; then
    exec 8>&-
    holder=$(cat "$lock" 2>/dev/null || true)
    pid=$(sed -n 's/^pid \([0-9]*\) .*/\1/p' <<<"$holder")
    if [[ -n $pid ]] && ! proc_alive "$pid"; then
      # Then a process it started inherited the lock: name those that have the file open
      # (-inum: -samefile has find open the file, and find itself would be named).
      holder+="; that pid has ended, the file is open in pids $(find -L /proc/[0-9]*/fd -maxdepth 1 \
        -inum "$(stat -c %i "$lock")" 2>/dev/null | cut -d/ -f3 | sort -un | paste -sd' ' || true)"
    fi
    die "instance $INSTANCE is busy: the lock $lock is held by ${holder:-an unknown process}; gave up after $wait s (DIBAO_LOCK_WAIT)"
  fi
  printf 'pid %s (%s, since %s)\n' "$$" "$1" "$(date '+%F %T')" >"$lock"
  export DIBAO_LOCKED_STATE=$STATE
}
