#!/usr/bin/env bash
# Installs what the project needs on a machine that may be new: uv and the Python
# environment, the PostgreSQL server, a JDK and Maven, the Kafka jars, buf.
#   bootstrap.sh [python|postgres|kafka|buf|all]   (default: all)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

apt_install() {  # apt_install <package>...
  export DEBIAN_FRONTEND=noninteractive
  if [[ -z ${_APT_UPDATED:-} ]]; then apt-get update -qq; _APT_UPDATED=1; fi
  apt-get install -y -qq "$@" >/dev/null
}

ensure_uv() {
  if command -v uv >/dev/null; then return; fi
  if [[ -x $HOME/.local/bin/uv ]]; then export PATH=$HOME/.local/bin:$PATH; return; fi
  log "installing uv from PyPI"
  command -v python3 >/dev/null || apt_install python3
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # Debian 12's own python3 is externally managed (PEP 668) and refuses plain pip installs;
  # a --user install of one tool into ~/.local leaves the system's packages alone.
  python3 -m pip install --quiet --user uv 2>/dev/null \
    || python3 -m pip install --quiet --user --break-system-packages uv
  export PATH=$HOME/.local/bin:$PATH
  command -v uv >/dev/null || die "uv did not install"
}

python_env() {
  ensure_uv
  cd "$ROOT"
  # Bytecode compiled once here: a machine that never writes .pyc files (this one sets
  # PYTHONDONTWRITEBYTECODE) would otherwise compile every library at every process start,
  # about 5 s of CPU for each service, worker and test subprocess instead of about 2 s.
  local sync=(uv sync --all-packages --all-groups --quiet --compile-bytecode)
  if [[ ${CI:-} == true ]]; then "${sync[@]}" --frozen; else "${sync[@]}"; fi
}

postgres_server() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    log "installing the PostgreSQL server"; apt_install postgresql
    service postgresql stop >/dev/null 2>&1 || true
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  command -v curl >/dev/null || apt_install curl
}

kafka_jars() {
  if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
    log "installing OpenJDK 17"; apt_install openjdk-17-jdk-headless
  fi
  command -v mvn >/dev/null || { log "installing Maven"; apt_install maven; }
  bash "$ROOT/deploy/kafka/kafka.sh" fetch
}

buf_cli() {
  command -v npm >/dev/null || { log "installing Node.js and npm"; apt_install nodejs npm; }
  if [[ ! -x $ROOT/proto-schemas/node_modules/.bin/buf ]]; then
    (cd "$ROOT/proto-schemas" && npm ci --silent --no-audit --no-fund)
  fi
}

case "${1:-all}" in
  python) python_env ;;
  postgres) postgres_server ;;
  kafka) kafka_jars ;;
  buf) buf_cli ;;
  all) python_env; postgres_server; kafka_jars ;;
  *) echo "usage: $0 [python|postgres|kafka|buf|all]" >&2; exit 2 ;;
esac
