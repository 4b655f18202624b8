#!/usr/bin/env bash
# The local stack of one instance (default `dev`): PostgreSQL, Kafka, migrations and the
# five services, started in the background and stopped by the pids it recorded.
#   stack.sh up [--no-services] | down | status | env
set -euo pipefail
source "$(dirname "$0")/lib.sh"

RUN=$STATE/run
LOGS=$STATE/logs
KAFKA_DIR=$STATE/kafka
mkdir -p "$RUN" "$LOGS"

kafka_external() {
  [[ -n ${DIBAO_KAFKA_BOOTSTRAP:-} ]] || return 1
  local first=${DIBAO_KAFKA_BOOTSTRAP%%,*}
  (exec 3<>"/dev/tcp/${first%:*}/${first##*:}") 2>/dev/null
}
kafka_bootstrap() { if kafka_external; then echo "$DIBAO_KAFKA_BOOTSTRAP"; else echo "127.0.0.1:$KAFKA_PORT"; fi; }

# The environment a service process of this instance runs with.
service_env() {  # service_env <name>
  local base; base=$(bash "$ROOT/deploy/pg.sh" dsn)
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
  printf 'DIBAO_KAFKA_BOOTSTRAP=%s\n' "$(kafka_bootstrap)"
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

# The pid file names this instance's <service> only while that pid is its uvicorn: after a
# crash or a reboot the pid may have been given to another process, which must be neither
# taken for the service nor stopped with it. Not the port: a service started with another
# DIBAO_SVC_PORT_BASE is still this instance's, and `down` must stop it.
service_running() {  # service_running <name>
  local f=$RUN/$1.pid
  pid_alive "$f" || return 1
  # The process may end between the two reads: say nothing then (redirections apply left
  # to right, so the error output goes first).
  tr '\0' ' ' 2>/dev/null <"/proc/$(<"$f")/cmdline" \
    | grep -F -- "/uvicorn --factory dibao_$1.main:create_app " >/dev/null
}

migrate() {
  # Each service's chain is independent (own database), so they run side by side.
  local pids=() svc i failed=0
  for svc in "${SERVICES[@]}"; do
    (cd "$ROOT/services/$svc" && with_service_env "$svc" uv run --no-sync alembic -c alembic.ini upgrade head) \
      >"$LOGS/migrate-$svc.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!SERVICES[@]}"; do
    if ! wait "${pids[$i]}"; then cat "$LOGS/migrate-${SERVICES[$i]}.log" >&2; failed=1; fi
  done
  ((failed == 0)) || die "migrations failed"
  log "migrations applied to ${SERVICES[*]}"
}

start_services() {
  for svc in "${SERVICES[@]}"; do
    local port; port=$(service_port "$svc")
    if service_running "$svc"; then log "$svc already running on $port"; continue; fi
    # exec all the way down, so the recorded pid is uvicorn itself, leader of its own session
    # and process group (setsid does not fork when its caller is not a group leader).
    (cd "$ROOT" && with_service_env "$svc" setsid nohup "$UV_PROJECT_ENVIRONMENT/bin/uvicorn" --factory \
      "dibao_$svc.main:create_app" --host 127.0.0.1 --port "$port" --no-access-log \
      >>"$LOGS/$svc.log" 2>&1 </dev/null) &
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

stop_services() {
  for svc in "${SERVICES[@]}"; do
    local f=$RUN/$svc.pid
    if service_running "$svc"; then
      local pid; pid=$(cat "$f")
      # setsid made the service a process-group leader: stop the group (uv and uvicorn).
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do pid_alive "$f" || break; sleep 0.2; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      log "$svc stopped"
    fi
    rm -f "$f"
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
  phase "install"; bash "$ROOT/deploy/bootstrap.sh" all
  phase "postgres"; bash "$ROOT/deploy/pg.sh" start; bash "$ROOT/deploy/pg.sh" ensure-dbs
  phase "kafka"
  if kafka_external; then log "using the Kafka broker at DIBAO_KAFKA_BOOTSTRAP"
  else
    bash "$ROOT/deploy/kafka/kafka.sh" start --dir "$KAFKA_DIR" --port "$KAFKA_PORT" --controller-port "$KAFKA_CONTROLLER_PORT"
  fi
  bash "$ROOT/deploy/kafka/kafka.sh" topics --bootstrap "$(kafka_bootstrap)"
  phase "secrets"; (cd "$ROOT" && uv run --no-sync python -m dibao_common.devsecrets "$STATE/secrets.env")
  if ((with_services)); then
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
  postgres    $(bash "$ROOT/deploy/pg.sh" dsn)
  kafka       $(kafka_bootstrap)
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

status() {
  local rc=0
  bash "$ROOT/deploy/pg.sh" status || rc=1
  if kafka_external; then echo "kafka: external broker $DIBAO_KAFKA_BOOTSTRAP"
  elif [[ -d $KAFKA_DIR ]]; then bash "$ROOT/deploy/kafka/kafka.sh" status --dir "$KAFKA_DIR" || rc=1
  else echo "kafka: stopped"; rc=1; fi
  for svc in "${SERVICES[@]}"; do
    if service_running "$svc"; then
      echo "$svc: running on 127.0.0.1:$(service_port "$svc") (pid $(cat "$RUN/$svc.pid"))"
    else echo "$svc: stopped"; rc=1; fi
  done
  return $rc
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  env) service_env "${2:?service}" ;;
  *) echo "usage: $0 up [--no-services]|down|status|env <service>" >&2; exit 2 ;;
esac
