# shellcheck shell=bash
# Shared by the local-stack scripts: where things live and which ports an instance uses.
# An instance is a complete private stack (PostgreSQL, Kafka, services) with its own
# ports and data directory: `dev` for `make up`, `test` for `make test`.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INSTANCE=${DIBAO_INSTANCE:-dev}
STATE=${DIBAO_STATE_DIR:-$ROOT/.local/$INSTANCE}
SERVICES=(intake assessment publicity payments audit)

case "$INSTANCE" in
  dev)  PG_PORT=${DIBAO_PG_PORT:-54320}; KAFKA_PORT=${DIBAO_KAFKA_PORT:-9092}; SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:-8000}; DB_PREFIX=dibao ;;
  test) PG_PORT=${DIBAO_PG_PORT:-54330}; KAFKA_PORT=${DIBAO_KAFKA_PORT:-9192}; SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:-8100}; DB_PREFIX=dibao_test ;;
  *)    PG_PORT=${DIBAO_PG_PORT:?set DIBAO_PG_PORT for instance $INSTANCE}
        KAFKA_PORT=${DIBAO_KAFKA_PORT:?set DIBAO_KAFKA_PORT for instance $INSTANCE}
        SVC_PORT_BASE=${DIBAO_SVC_PORT_BASE:?set DIBAO_SVC_PORT_BASE for instance $INSTANCE}
        DB_PREFIX=dibao_${INSTANCE//-/_} ;;
esac
KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))

export PATH=$HOME/.local/bin:$PATH
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT=${UV_PROJECT_ENVIRONMENT:-$ROOT/.venv}

log() { printf '[%s %s] %s\n' "$(date +%H:%M:%S)" "$INSTANCE" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

service_port() {  # service_port <name>
  local i
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

# The process a pid file names is alive; one that has exited but is not yet reaped (a
# zombie: a container's init may reap late or never) counts as dead.
pid_alive() {  # pid_alive <pidfile>
  local pid
  [[ -s $1 ]] && pid=$(<"$1") && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ $(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$pid/status" 2>/dev/null) != Z ]]
}
