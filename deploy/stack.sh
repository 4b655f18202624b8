#!/usr/bin/env bash
# The local stack of one instance (default `dev`): PostgreSQL, Kafka, migrations, the
# five services and a witness of the audit log (docs/adr/0024), started in the background
# and stopped by the pids it recorded.
#   stack.sh up [--no-services] | down | status | env
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUN=$STATE/run
LOGS=$STATE/logs
KAFKA_DIR=$STATE/kafka
# The witness's own configuration (its seed, name, the log key it pins; python -m
# dibao_audit.devwitness), kept by reset like secrets.env and given to no service: a
# witness whose seed the log's processes hold proves nothing. Its state (the checkpoint it
# cosigned last, the evidence of a fork) is under WITNESS_DIR, deleted by reset with the log.
WITNESS_ENV=$STATE/witness.env
WITNESS_DIR=$STATE/witness
mkdir -p "$RUN" "$LOGS"

# The broker, decided once a command (resolve_kafka): DIBAO_KAFKA_BOOTSTRAP when it is
# set, else the instance's own. A broker the operator named is used or the command fails
# (lib.sh): before anything is installed, started or written, `up` and `env` fail unless
# one of its brokers answers a Kafka request within DIBAO_PROBE_TIMEOUT seconds, naming
# each broker and what failed; `status` says so.
KAFKA_EXTERNAL=0
KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
KAFKA_FAILURE=
resolve_kafka() {  # resolve_kafka [--report]: with --report, a failure is recorded, not fatal
  [[ -n ${DIBAO_KAFKA_BOOTSTRAP:-} ]] || return 0
  KAFKA_EXTERNAL=1 KAFKA_BOOTSTRAP=$DIBAO_KAFKA_BOOTSTRAP
  KAFKA_FAILURE=$(kafka_bootstrap_answers "$DIBAO_KAFKA_BOOTSTRAP") && return 0
  [[ ${1:-} == --report ]] && return 0
  die "no broker of DIBAO_KAFKA_BOOTSTRAP ($DIBAO_KAFKA_BOOTSTRAP) answers: $KAFKA_FAILURE. Nothing was started; start the broker, correct DIBAO_KAFKA_BOOTSTRAP, or unset it to use the instance's own"
}

# The server's DSN (pg.sh dsn), kept once known: each `pg.sh dsn` probes DIBAO_PG_URL.
PG_DSN=

# The environment a service process of this instance runs with.
service_env() {  # service_env <name>
  local base=$PG_DSN
  [[ -n $base ]] || base=$(bash "$ROOT/deploy/pg.sh" dsn)
  base=${base%/*}
  printf 'DIBAO_SERVICE_NAME=%s\n' "$1"
  printf 'DIBAO_ENVIRONMENT=%s\n' "$([[ $INSTANCE == dev ]] && echo dev || echo test)"
  printf 'DIBAO_DATABASE_URL=%s\n' "${base/postgresql:\/\//postgresql+asyncpg://}/${DB_PREFIX}_$1"
  if [[ $1 == audit ]]; then
    # The running log logs in as its runtime role (migration 0005), never as the owner:
    # a superuser login would be one SET ROLE NONE away from disabling the append-only
    # trigger. Migrations keep DIBAO_DATABASE_URL. Trust auth on loopback (pg.sh); an
    # external server gives the role a password and this URL through the environment.
    local db=${DB_PREFIX}_audit server=${base#*://}
    server=${server#*@}
    printf 'DIBAO_AUDIT_RUNTIME_DATABASE_URL=%s\n' \
      "${DIBAO_AUDIT_RUNTIME_DATABASE_URL:-postgresql+asyncpg://${db}_app@$server/$db}"
  fi
  printf 'DIBAO_KAFKA_BOOTSTRAP=%s\n' "$KAFKA_BOOTSTRAP"
  if [[ $1 == audit && -f $WITNESS_ENV ]]; then
    # The log submits its checkpoints to the instance's witness; DIBAO_AUDIT_WITNESSES in
    # the environment replaces it (empty: no witness).
    printf 'DIBAO_AUDIT_WITNESSES=%s\n' \
      "${DIBAO_AUDIT_WITNESSES-$(sed -n 's/^DIBAO_AUDIT_WITNESSES=//p' "$WITNESS_ENV")}"
  fi
  if [[ -f $STATE/secrets.env ]]; then cat "$STATE/secrets.env"; fi
}

# Replaces the (sub)shell it runs in with <command>. One variable a line, taken as written:
# a value is never split, globbed or unquoted (xargs refused a password with a ' in it and
# passed the service only the variables before it).
with_service_env() {  # with_service_env <name> <command>...
  local svc=$1 text line envs=(); shift
  text=$(service_env "$svc")
  while IFS= read -r line; do [[ -z $line ]] || envs+=("$line"); done <<<"$text"
  exec env "${envs[@]}" "$@"
}

# The witness's environment: its own file and state path, nothing of the services' (env -i:
# not even what `make up` was run with, which may hold the log's seed).
with_witness_env() {  # with_witness_env <command>...
  local line envs=()
  while IFS= read -r line; do
    [[ -z $line || $line == DIBAO_AUDIT_WITNESSES=* ]] || envs+=("$line")
  done <"$WITNESS_ENV"
  exec env -i "PATH=$PATH" "HOME=$HOME" "LANG=${LANG:-C.UTF-8}" "${envs[@]}" \
    "DIBAO_WITNESS_STATE=$WITNESS_DIR/state.json" "$@"
}

# A service process is this instance's by its command line (<service>'s uvicorn, or the
# witness's python -m dibao_audit.witness) and by
# DIBAO_STACK_STATE, the state directory of the instance that started it (start_services).
# Not by the port: one started with another DIBAO_SVC_PORT_BASE is still this instance's,
# and `down` must stop it. The process may end between reads: say nothing then
# (redirections apply left to right, so the error output goes first).
is_uvicorn_of() {  # is_uvicorn_of <pid> <name>: <name> a service or `witness`
  local args
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
  if [[ $2 == witness ]]; then [[ " ${args[*]} " == *"/python -m dibao_audit.witness "* ]]; return; fi
  [[ " ${args[*]} " == *"/uvicorn --factory dibao_$2.main:create_app "* ]]
}
stack_state_of() {  # stack_state_of <pid>: its DIBAO_STACK_STATE (none: empty)
  local vars v
  mapfile -d '' -t vars 2>/dev/null <"/proc/$1/environ" || return 1
  for v in "${vars[@]}"; do
    if [[ $v == DIBAO_STACK_STATE=* ]]; then printf '%s\n' "${v#*=}"; return 0; fi
  done
}
port_of() {  # port_of <pid>: the --port of its command line
  local args i
  mapfile -d '' -t args 2>/dev/null <"/proc/$1/cmdline" || return 1
  for i in "${!args[@]}"; do
    if [[ ${args[$i]} == --port ]]; then echo "${args[$((i + 1))]:-}"; return 0; fi
  done
  return 1
}

# The pid file names this instance's <service> only while that pid is its uvicorn: after a
# crash or a reboot the pid may have been given to another process, which must be neither
# taken for the service nor stopped with it. One started before DIBAO_STACK_STATE existed
# has none and is taken at its pid file's word; one of another instance never is.
service_running() {  # service_running <name>
  local f=$RUN/$1.pid pid state
  pid_alive "$f" || return 1
  pid=$(<"$f")
  is_uvicorn_of "$pid" "$1" && state=$(stack_state_of "$pid") || return 1
  [[ -z $state || $state == "$STATE" ]]
}

# This instance's uvicorns of <service> that its pid file does not name: the file deleted,
# or never written (`up` killed between a start and the write). Only with this instance's
# DIBAO_STACK_STATE: another checkout's or instance's is not ours to adopt or stop.
service_orphans() {  # service_orphans <name>: their pids
  local d pid named=
  if service_running "$1"; then named=$(<"$RUN/$1.pid"); fi
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if [[ $pid != "$named" ]] && is_uvicorn_of "$pid" "$1" \
        && [[ $(stack_state_of "$pid" || true) == "$STATE" ]] && proc_alive "$pid"; then
      echo "$pid"
    fi
  done
  return 0
}

# This instance's running <service>: its pid file's process, else an orphan (the one on the
# service's port first). Status 1 when there is none.
own_service_pid() {  # own_service_pid <name>
  if service_running "$1"; then echo "$(<"$RUN/$1.pid")"; return 0; fi
  local orphans listener pid
  mapfile -t orphans < <(service_orphans "$1")
  ((${#orphans[@]})) || return 1
  listener=$(port_listener "$(service_port "$1")" || true)
  for pid in "${orphans[@]}"; do
    if [[ $pid == "$listener" ]]; then echo "$pid"; return 0; fi
  done
  echo "${orphans[0]}"
}

# The pid listening on <port> where a service binds it (127.0.0.1, or every IPv4 or IPv6
# address), from /proc (no ss or lsof on a minimal Debian): "?" when the process is not
# this user's to see; status 1 when nothing listens.
port_listener() {  # port_listener <port>
  local hex inodes inode link
  printf -v hex '%04X' "$1"
  inodes=$(awk -v port="$hex" '$4 == "0A" {
      split($2, a, ":")
      if (a[2] == port && (a[1] == "0100007F" || a[1] ~ /^0+$/ || a[1] == "0000000000000000FFFF00000100007F")) print $10
    }' /proc/net/tcp /proc/net/tcp6 2>/dev/null || true)
  [[ -n $inodes ]] || return 1
  for inode in $inodes; do
    link=$(find /proc/[0-9]*/fd -lname "socket:\[$inode\]" -print -quit 2>/dev/null || true)
    if [[ -n $link ]]; then link=${link#/proc/}; echo "${link%%/*}"; return 0; fi
  done
  echo "?"
}

# <service>'s port is free, or held by <own pid> (the service itself). Anything else there
# would make the start fail, and is not this instance's to stop: fail naming it.
claim_port() {  # claim_port <name> [<own pid>]
  local port listener
  port=$(service_port "$1")
  listener=$(port_listener "$port") || return 0
  [[ $listener != "${2:-}" ]] || return 0
  [[ $listener != "?" ]] || die "port $port ($1) is taken by a process of another user: stop it or choose another DIBAO_SVC_PORT_BASE"
  die "port $port ($1) is taken by pid $listener ($(proc_cmdline "$listener")), which is not instance $INSTANCE's $1: stop it or choose another DIBAO_SVC_PORT_BASE"
}

# Before anything starts: every service's port is free or its own service's (running, pid
# file or not, on the port this command would give it).
check_service_ports() {
  local svc pid port own
  for svc in "${SERVICES[@]}" witness; do
    pid=$(own_service_pid "$svc" || true)
    claim_port "$svc" "$pid"
    [[ -n $pid ]] || continue
    port=$(service_port "$svc") own=$(port_of "$pid" || true)
    [[ $own == "$port" ]] || die "$svc of instance $INSTANCE runs on port ${own:-?} (pid $pid), not $port: started with another DIBAO_SVC_PORT_BASE; make down first"
  done
}

# A migration waits at most 5 s for a lock (alembic_env.py) but may take long on a large
# table; a server that accepted the connection and stopped answering would hold it forever.
# Each service's migrations end within DIBAO_MIGRATE_TIMEOUT seconds (600) or fail.
MIGRATE_TIMEOUT=${DIBAO_MIGRATE_TIMEOUT:-600}
migrate() {
  # Each service's chain is independent (own database), so they run side by side.
  local pids=() svc i failed=() rc
  for svc in "${SERVICES[@]}"; do
    (cd "$ROOT/services/$svc" && with_service_env "$svc" timeout -k 10 "$MIGRATE_TIMEOUT" \
      uv run --no-sync alembic -c alembic.ini upgrade head) >"$LOGS/migrate-$svc.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!SERVICES[@]}"; do
    svc=${SERVICES[$i]} rc=0
    wait "${pids[$i]}" || rc=$?
    ((rc == 0)) && continue
    cat "$LOGS/migrate-$svc.log" >&2
    if ((rc == 124 || rc == 137)); then failed+=("$svc (did not end within $MIGRATE_TIMEOUT s)")
    else failed+=("$svc (exit status $rc)"); fi
  done
  ((${#failed[@]} == 0)) || die "migrations failed on $(server_name "$PG_DSN"): ${failed[*]}; logs in $LOGS/migrate-*.log"
  log "migrations applied to ${SERVICES[*]}"
}

start_services() {
  local svc port pid
  for svc in "${SERVICES[@]}"; do
    port=$(service_port "$svc")
    if pid=$(own_service_pid "$svc"); then
      if service_running "$svc"; then log "$svc already running on $port (pid $pid)"; continue; fi
      # Adopted, not restarted: it is this instance's, and the /healthz wait below checks it.
      echo "$pid" >"$RUN/$svc.pid"
      log "$svc: adopted pid $pid, the instance's uvicorn left running on $port without its pid file"
      continue
    fi
    claim_port "$svc"
    # exec all the way down, so the recorded pid is uvicorn itself, leader of its own session
    # and process group (setsid does not fork when its caller is not a group leader).
    # DIBAO_STACK_STATE marks it as this instance's; 8>&-: it must not hold the lock.
    (cd "$ROOT" && with_service_env "$svc" env "DIBAO_STACK_STATE=$STATE" setsid nohup \
      "$UV_PROJECT_ENVIRONMENT/bin/uvicorn" --factory "dibao_$svc.main:create_app" \
      --host 127.0.0.1 --port "$port" --no-access-log >>"$LOGS/$svc.log" 2>&1 </dev/null) 8>&- &
    echo $! >"$RUN/$svc.pid"
  done
  local deadline=$((SECONDS + 60))
  for svc in "${SERVICES[@]}"; do
    local port; port=$(service_port "$svc")
    # A bounded request: a hung (stopped, deadlocked) service must not outwait the deadline.
    until curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
      pid_alive "$RUN/$svc.pid" || { tail -n 40 "$LOGS/$svc.log" >&2; die "$svc exited"; }
      ((SECONDS < deadline)) || { tail -n 40 "$LOGS/$svc.log" >&2; die "$svc did not answer /healthz"; }
      sleep 0.3
    done
  done
  log "services answer /healthz on $(service_port intake)-$(service_port audit)"
}

# The instance's witness of the audit log (docs/adr/0024): its configuration made once (a
# seed of its own, the log's key pinned, audit's DIBAO_AUDIT_WITNESSES), then started
# before the services, so that the log's first checkpoint finds it; adopted like a service.
configure_witness() {
  (cd "$ROOT" && uv run --no-sync python -m dibao_audit.devwitness "$STATE/secrets.env" \
    "$WITNESS_ENV" --url "http://127.0.0.1:$(service_port witness)" \
    --name "witness.dibao.local/$INSTANCE") || die "the witness's configuration failed"
  mkdir -p "$WITNESS_DIR"
}

start_witness() {
  local port pid
  port=$(service_port witness)
  if pid=$(own_service_pid witness); then
    if service_running witness; then log "witness already running on $port (pid $pid)"
    else
      echo "$pid" >"$RUN/witness.pid"
      log "witness: adopted pid $pid, the instance's witness left running on $port without its pid file"
    fi
  else
    claim_port witness
    (cd "$ROOT" && with_witness_env env "DIBAO_STACK_STATE=$STATE" setsid nohup \
      "$UV_PROJECT_ENVIRONMENT/bin/python" -m dibao_audit.witness --host 127.0.0.1 \
      --port "$port" >>"$LOGS/witness.log" 2>&1 </dev/null) 8>&- &
    echo $! >"$RUN/witness.pid"
  fi
  local deadline=$((SECONDS + 30))
  until curl -fsS --max-time 2 "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; do
    pid_alive "$RUN/witness.pid" || { tail -n 40 "$LOGS/witness.log" >&2; die "the witness exited"; }
    ((SECONDS < deadline)) || { tail -n 40 "$LOGS/witness.log" >&2; die "the witness did not answer /healthz"; }
    sleep 0.3
  done
  log "witness answers /healthz on $port (state in $WITNESS_DIR)"
}

# setsid made a service a process-group leader: stop the group.
stop_process() {  # stop_process <pid>
  kill -TERM -- "-$1" 2>/dev/null || kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 1 50); do proc_alive "$1" || break; sleep 0.2; done
  kill -KILL -- "-$1" 2>/dev/null || kill -KILL "$1" 2>/dev/null || true
}

stop_services() {  # the services, then the witness
  local svc pid orphans
  for svc in "${SERVICES[@]}" witness; do
    if service_running "$svc"; then
      pid=$(<"$RUN/$svc.pid")
      stop_process "$pid"
      log "$svc stopped (pid $pid)"
    fi
    mapfile -t orphans < <(service_orphans "$svc")
    for pid in "${orphans[@]}"; do
      stop_process "$pid"
      log "$svc stopped (pid $pid, which had no pid file)"
    done
    rm -f "$RUN/$svc.pid"
  done
}

load_demo() {
  for svc in "${SERVICES[@]}"; do
    if [[ -f $ROOT/services/$svc/src/dibao_$svc/demo.py ]]; then
      (cd "$ROOT" && with_service_env "$svc" uv run --no-sync python -m "dibao_$svc.demo" \
        --base-url "http://127.0.0.1:$(service_port "$svc")") || die "demo data of $svc failed"
    fi
  done
}

up() {
  local t0=$SECONDS with_services=1
  # The test suite recreates and migrates its databases itself: `--no-services` skips both.
  [[ ${1:-} == --no-services ]] && with_services=0
  # A port taken by something else fails now, not after the migrations.
  if ((with_services)); then check_service_ports; fi
  # The operator's PostgreSQL server answers before anything is installed or written (the
  # broker was checked already, resolve_kafka); without psql yet (a new machine), pg.sh
  # start checks it after the install, still before writing anything.
  if [[ -n ${DIBAO_PG_URL:-} ]] && command -v psql >/dev/null; then bash "$ROOT/deploy/pg.sh" dsn >/dev/null; fi
  # 8>&-: what these leave running (PostgreSQL, Kafka) must not hold the instance's lock.
  phase "install"; bash "$ROOT/deploy/bootstrap.sh" all 8>&-
  phase "postgres"; bash "$ROOT/deploy/pg.sh" start 8>&-; bash "$ROOT/deploy/pg.sh" ensure-dbs
  PG_DSN=$(bash "$ROOT/deploy/pg.sh" dsn)
  phase "kafka"
  if ((KAFKA_EXTERNAL)); then log "using the Kafka broker at $KAFKA_BOOTSTRAP (DIBAO_KAFKA_BOOTSTRAP)"
  else
    bash "$ROOT/deploy/kafka/kafka.sh" start --dir "$KAFKA_DIR" --port "$KAFKA_PORT" \
      --controller-port "$KAFKA_CONTROLLER_PORT" 8>&-
  fi
  bash "$ROOT/deploy/kafka/kafka.sh" topics --bootstrap "$KAFKA_BOOTSTRAP"
  phase "secrets"; (cd "$ROOT" && uv run --no-sync python -m dibao_common.devsecrets "$STATE/secrets.env")
  if ((with_services)); then
    phase "witness"; configure_witness; start_witness
    phase "migrations"; migrate
    phase "services"; start_services
    phase "demo data"; load_demo
  fi
  phase_end
  log "stack '$INSTANCE' up in $((SECONDS - t0)) s"
  if ((with_services)); then
    cat <<MSG

dibao is running (instance $INSTANCE):
$(for s in "${SERVICES[@]}"; do printf '  %-11s http://127.0.0.1:%s  (OpenAPI: /docs)\n' "$s" "$(service_port "$s")"; done)
  witness     http://127.0.0.1:$(service_port witness)  (cosigns audit's checkpoints; state in $WITNESS_DIR)
  postgres    $(server_name "$PG_DSN")
  kafka       $KAFKA_BOOTSTRAP
  logs        $LOGS

A development token:  make token ROLE=intake_clerk REGION=620102
Stop everything:      make down
MSG
  fi
}

down() {
  stop_services
  if [[ -d $KAFKA_DIR ]]; then bash "$ROOT/deploy/kafka/kafka.sh" stop --dir "$KAFKA_DIR"; fi
  bash "$ROOT/deploy/pg.sh" stop
}

# Stop the instance and delete its data: its cluster, the broker's log directories, its
# logs, the demo's example application and the witness's state (what it cosigned of the
# log deleted with it), so that the next `up` starts from empty databases and loads the
# demo afresh. Its secrets stay, the witness's key too (the keys of the documents' store
# are content hashes: contents left are swept, ADR 0015). With an operator's server
# (DIBAO_PG_URL, DIBAO_KAFKA_BOOTSTRAP) it refuses before stopping or deleting anything:
# its data is not the instance's to delete, and a reset of half the stack is worse than
# none (fresh databases beside a broker still holding the old events, which the next `up`
# would consume again with the demo loaded beside them). Kafka's topics are named for the
# system, not the instance (deploy/kafka/topics.conf): nothing on a shared broker tells
# this instance's events from another's.
reset() {
  local refused=()
  if [[ -n ${DIBAO_PG_URL:-} ]]; then
    refused+=("DIBAO_PG_URL names an operator's PostgreSQL server: drop its databases there yourself")
  fi
  if [[ -n ${DIBAO_KAFKA_BOOTSTRAP:-} ]]; then
    refused+=("DIBAO_KAFKA_BOOTSTRAP names an operator's Kafka ($DIBAO_KAFKA_BOOTSTRAP), whose topics would keep the old events beside the fresh databases: delete the topics of deploy/kafka/topics.conf there yourself")
  fi
  if ((${#refused[@]})); then
    local IFS=';'
    die "reset deletes only the instance's own servers' data; nothing was stopped or deleted:${refused[*]/#/ }. Then reset again without them"
  fi
  down
  bash "$ROOT/deploy/pg.sh" remove
  rm -rf "$KAFKA_DIR" "$LOGS" "$RUN" "$WITNESS_DIR" "$STATE/intake-demo-application.json"
  log "instance '$INSTANCE' reset: its databases, broker logs, service logs and the witness's state are deleted"
}

status() {
  local rc=0
  bash "$ROOT/deploy/pg.sh" status || rc=1
  if ((KAFKA_EXTERNAL)) && [[ -n $KAFKA_FAILURE ]]; then
    echo "kafka: external broker $DIBAO_KAFKA_BOOTSTRAP does not answer ($KAFKA_FAILURE)"; rc=1
  elif ((KAFKA_EXTERNAL)); then echo "kafka: external broker $DIBAO_KAFKA_BOOTSTRAP"
  elif [[ -d $KAFKA_DIR ]]; then bash "$ROOT/deploy/kafka/kafka.sh" status --dir "$KAFKA_DIR" || rc=1
  else echo "kafka: stopped"; rc=1; fi
  local svc pid note
  for svc in "${SERVICES[@]}" witness; do
    if pid=$(own_service_pid "$svc"); then
      note=
      service_running "$svc" || note=", no pid file: make up adopts it, make down stops it"
      echo "$svc: running on 127.0.0.1:$(port_of "$pid" || echo '?') (pid $pid$note)"
    else echo "$svc: stopped"; rc=1; fi
  done
  return $rc
}

# up and down hold the instance's lock (lib.sh); status and env only read.
case "${1:-}" in
  up) shift; instance_lock "stack.sh up"; resolve_kafka; up "$@" ;;
  down) instance_lock "stack.sh down"; down ;;
  reset) instance_lock "stack.sh reset"; reset ;;
  status) resolve_kafka --report; status ;;
  env) resolve_kafka; service_env "${2:?service}" ;;
  *) echo "usage: $0 up [--no-services]|down|reset|status|env <service>" >&2; exit 2 ;;
esac
