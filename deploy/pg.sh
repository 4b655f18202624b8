#!/usr/bin/env bash
# PostgreSQL for one instance: a private cluster on its own port and data directory,
# or the existing server DIBAO_PG_URL names (postgresql://user:password@host:port/db);
# when that one does not answer, every command that needs it fails naming it and what
# failed, and nothing is written (no cluster of the instance's own instead).
#   pg.sh start | stop | remove | status | dsn | ensure-dbs
set -euo pipefail
source "$(dirname "$0")/lib.sh"

PG_USER=dibao
PGBIN=${DIBAO_PGBIN:-}
if [[ -z $PGBIN ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
fi

# The server refuses to run as root, so as root the cluster belongs to `postgres` and
# lives where that user can reach it (a fresh clone may sit under a private directory).
if [[ $(id -u) == 0 ]]; then
  RUN_AS=(runuser -u postgres --)
  PGDATA_ROOT=${DIBAO_PGDATA_ROOT:-/var/tmp/dibao-pg/$(printf '%s' "$STATE" | sha1sum | cut -c1-12)}
else
  RUN_AS=()
  PGDATA_ROOT=${DIBAO_PGDATA_ROOT:-$STATE/pg}
fi
PGDATA=$PGDATA_ROOT/data

# libpq waits for a server that accepts and never answers forever: every connection here
# gives up after DIBAO_PROBE_TIMEOUT seconds (lib.sh), the probe of DIBAO_PG_URL as a whole
# after twice that.
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-$PROBE_TIMEOUT}

external() { [[ -n ${DIBAO_PG_URL:-} ]]; }

# DIBAO_PG_URL's server (no user, password or options), for messages.
external_name() { server_name "$DIBAO_PG_URL"; }

# The server DIBAO_PG_URL names answers a query: status 0, else what failed on stdout.
external_answers() {
  local err rc=0
  if [[ ! $DIBAO_PG_URL =~ ^postgres(ql)?:// ]]; then
    echo "not a postgresql:// URL"; return 1
  fi
  err=$(timeout $((2 * PROBE_TIMEOUT)) psql "$DIBAO_PG_URL" -XAtqc 'select 1' 2>&1 >/dev/null) || rc=$?
  ((rc != 0)) || return 0
  if ((rc == 124)); then echo "no answer within $((2 * PROBE_TIMEOUT)) s"; return 1; fi
  err=$(head -n1 <<<"$err"); err=${err#psql: }; echo "${err#error: }"
  return 1
}

# The server DIBAO_PG_URL names answers, or the command fails naming it and what failed.
require_external() {
  local why
  why=$(external_answers) && return 0
  die "the PostgreSQL server at $(external_name) (DIBAO_PG_URL) cannot be used: $why. Nothing was written; start it, correct DIBAO_PG_URL, or unset it to use the instance's own cluster"
}

# The URL of the server's `postgres` database: DIBAO_PG_URL with its database replaced
# (its options kept), or the instance's own cluster.
dsn() {
  if ! external; then echo "postgresql://$PG_USER@127.0.0.1:$PG_PORT/postgres"; return; fi
  require_external
  local url=$DIBAO_PG_URL query='' rest
  if [[ $url == *\?* ]]; then query="?${url#*\?}"; url=${url%%\?*}; fi
  rest=${url#*://}
  echo "${url%%://*}://${rest%%/*}/postgres$query"
}

install_server() {
  if [[ -n $PGBIN && -x $PGBIN/initdb ]]; then return; fi
  # The Debian package, as bootstrap.sh installs it (retried, the default cluster stopped).
  bash "$ROOT/deploy/bootstrap.sh" postgres
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [[ -x $PGBIN/initdb ]] || die "no PostgreSQL server in /usr/lib/postgresql after installing it"
}

# As root a cluster lives under /var/tmp, outside the checkout, and would outlive a
# checkout that is deleted (a CI clone, say). Each records the state directory it belongs
# to; a start removes the stopped clusters whose state directory is gone.
sweep_orphans() {
  [[ $(id -u) == 0 && -z ${DIBAO_PGDATA_ROOT:-} ]] || return 0
  local dir owner pid
  for dir in /var/tmp/dibao-pg/*; do
    [[ -f $dir/owner && $dir != "$PGDATA_ROOT" ]] || continue
    owner=$(<"$dir/owner")
    [[ -n $owner && ! -d $owner ]] || continue
    pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then continue; fi
    rm -rf "$dir"
    log "removed the PostgreSQL cluster of a checkout that is gone ($owner)"
  done
}

start() {
  if external; then
    require_external
    log "using the PostgreSQL server at $(external_name) (DIBAO_PG_URL)"; return
  fi
  install_server
  sweep_orphans
  mkdir -p "$PGDATA_ROOT" "$STATE"
  if [[ $(id -u) == 0 ]]; then chown postgres:postgres "$PGDATA_ROOT"; fi
  printf '%s\n' "$STATE" >"$PGDATA_ROOT/owner"
  if [[ ! -f $PGDATA/PG_VERSION ]]; then
    log "initialising a PostgreSQL cluster in $PGDATA"
    "${RUN_AS[@]}" "$PGBIN/initdb" -D "$PGDATA" -U "$PG_USER" --auth=trust -E UTF8 \
      --locale=C.UTF-8 >"$PGDATA_ROOT/initdb.log" 2>&1 || { cat "$PGDATA_ROOT/initdb.log" >&2; die "initdb failed"; }
    cat >>"$PGDATA/postgresql.conf" <<CONF
# dibao local instance: loopback only, its own port, no unix socket in shared places.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PGDATA_ROOT'
max_connections = 300
shared_buffers = 256MB
fsync = ${DIBAO_PG_FSYNC:-on}
timezone = 'UTC'
log_timezone = 'UTC'
CONF
    # Loopback only and a private port: trust is the local-development choice; production
    # servers are given by DIBAO_PG_URL with their own credentials.
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\n' >"$PGDATA/pg_hba.conf"
  fi
  if "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    log "PostgreSQL already running on $PG_PORT"
  else
    # 8>&-: the server must not hold the instance's lock (lib.sh).
    "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$PGDATA_ROOT/server.log" -w -t 60 start >/dev/null 8>&- \
      || { tail -n 30 "$PGDATA_ROOT/server.log" >&2; die "PostgreSQL did not start"; }
    log "PostgreSQL started on 127.0.0.1:$PG_PORT"
  fi
  ln -sfn "$PGDATA_ROOT" "$STATE/pg-root"
}

stop() {
  if [[ ! -f $PGDATA/postmaster.pid ]]; then return; fi
  if ! "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    # Left by a server that was killed; its next start replaces it.
    log "PostgreSQL not running (stale postmaster.pid)"; return
  fi
  # A server that does not stop is an error, not "stopped": its data directory is in use.
  "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1 \
    || die "PostgreSQL did not stop within 60 s (data $PGDATA, log $PGDATA_ROOT/server.log)"
  log "PostgreSQL stopped"
}

# Stop the instance's cluster and delete it (test and benchmark stacks, at teardown). With
# DIBAO_PG_URL the instance has none (answering or not).
remove() {
  if external; then return; fi
  stop
  rm -rf "$PGDATA_ROOT"
  rm -f "$STATE/pg-root"
}

status() {
  if external; then
    local why
    if why=$(external_answers); then echo "postgres: external server $(external_name) (DIBAO_PG_URL)"; return 0; fi
    echo "postgres: external server $(external_name) (DIBAO_PG_URL) cannot be used: $why"; return 1
  fi
  if [[ -f $PGDATA/postmaster.pid ]] && "${RUN_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" status >/dev/null 2>&1; then
    echo "postgres: running on 127.0.0.1:$PG_PORT (pid $(head -n1 "$PGDATA/postmaster.pid"), data $PGDATA)"
  else
    echo "postgres: stopped"; return 1
  fi
}

# Every statement these scripts run is bounded: the connection by PGCONNECT_TIMEOUT, the
# statement by the server (statement_timeout DIBAO_QUERY_TIMEOUT seconds, 30; lock_timeout
# half that: a CREATE DATABASE waits for a lock on its template, which a session altering
# it holds), and psql as a whole by `timeout`, for a server that accepted the connection
# and stopped answering. A failure names the server, the statement and what failed.
QUERY_TIMEOUT=${DIBAO_QUERY_TIMEOUT:-30}
sql() {  # sql <dsn> <statement>: its rows on stdout (unaligned, tuples only)
  local limit=$((QUERY_TIMEOUT + 2 * PROBE_TIMEOUT)) err rc=0 out
  err=$(mktemp)
  out=$(timeout "$limit" psql "$1" -XAtq -v ON_ERROR_STOP=1 \
      -c "set statement_timeout = '${QUERY_TIMEOUT}s'" \
      -c "set lock_timeout = '$(((QUERY_TIMEOUT + 1) / 2))s'" -c "$2" 2>"$err") || rc=$?
  local why; why=$(grep -m1 -E 'ERROR|error|FATAL' "$err" || head -n1 "$err"); rm -f "$err"
  ((rc == 0)) && { [[ -z $out ]] || printf '%s\n' "$out"; return 0; }
  ((rc == 124)) && why="no answer within $limit s"
  why=${why#psql: }; why=${why#error: }; why=${why#ERROR:  }
  die "the PostgreSQL server at $(server_name "$1") failed \`$2\`: ${why:-psql exit status $rc}"
}

ensure_dbs() {
  local admin svc db exists; admin=$(dsn)
  for svc in "${SERVICES[@]}"; do
    db="${DB_PREFIX}_${svc}"
    exists=$(sql "$admin" "select 1 from pg_database where datname = '$db'")
    if [[ -z $exists ]]; then
      sql "$admin" "create database \"$db\"" >/dev/null
      log "created database $db"
    fi
  done
}

case "${1:-}" in
  start) instance_lock "pg.sh start"; start ;;
  stop) instance_lock "pg.sh stop"; stop ;;
  remove) instance_lock "pg.sh remove"; remove ;;
  status) status ;;
  dsn) dsn ;;
  ensure-dbs) ensure_dbs ;;
  *) echo "usage: $0 start|stop|remove|status|dsn|ensure-dbs" >&2; exit 2 ;;
esac
