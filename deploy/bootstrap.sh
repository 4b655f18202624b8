#!/usr/bin/env bash
# Installs what the project needs on a machine that may be new: uv and the Python
# environment, the PostgreSQL server, a JDK and Maven, the Kafka jars, buf.
#   bootstrap.sh [uv|python|postgres|kafka|buf|shellcheck|all]   (default: all)
# Everything comes from the package registries (Debian, PyPI, Maven Central, npm), each
# download retried with backoff (lib.sh retry) and checked against what the registry
# publishes: apt's signed indexes, uv's sha256 from PyPI (uv-requirements.txt), uv.lock's
# hashes, Maven Central's checksums (kafka.sh, --strict-checksums), package-lock.json's
# integrity. Each is cached where its tool caches (~/.cache/uv, ~/.m2, ~/.npm, the jars in
# ~/.cache/dibao); a failure names what could not be installed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
# apt-get retries each download itself (Acquire::Retries) and waits for the dpkg lock that
# a fresh machine's unattended upgrades may hold; the whole command is retried on top.
APT=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3 -o DPkg::Lock::Timeout=300)

apt_install() {  # apt_install <package>...
  if [[ -z ${_APT_UPDATED:-} ]]; then
    retry "apt-get update" "${SUDO[@]}" "${APT[@]}" update -qq >&2 || die "apt-get update failed: the Debian mirrors in /etc/apt/sources.list* did not answer"
    _APT_UPDATED=1
  fi
  retry "apt-get install $*" "${SUDO[@]}" "${APT[@]}" install -y -qq "$@" >/dev/null \
    || die "could not install the Debian packages $*"
}

# HTTPS to PyPI, Maven Central and npm needs the CA certificates, which a minimal Debian
# image lacks.
ensure_ca() { [[ -s /etc/ssl/certs/ca-certificates.crt ]] || apt_install ca-certificates; }

ensure_python() {  # Debian 12's python3 is the 3.11 the project needs (UV_PYTHON_DOWNLOADS=never)
  command -v python3.11 >/dev/null || command -v python3 >/dev/null || apt_install python3
}

ensure_uv() {
  if command -v uv >/dev/null; then return; fi
  if [[ -x $HOME/.local/bin/uv ]]; then export PATH=$HOME/.local/bin:$PATH; return; fi
  log "installing uv from PyPI"
  ensure_python
  ensure_ca
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  # Debian 12's own python3 is externally managed (PEP 668) and refuses plain pip installs;
  # a --user install of one tool into ~/.local leaves the system's packages alone.
  local pip=(python3 -m pip install --quiet --user --only-binary=:all: --require-hashes
             -r "$ROOT/deploy/uv-requirements.txt")
  if python3 -m pip install --help 2>/dev/null | grep -F -- --break-system-packages >/dev/null; then
    pip+=(--break-system-packages)
  fi
  retry "pip install uv (PyPI)" "${pip[@]}" || die "could not install uv from PyPI (deploy/uv-requirements.txt)"
  export PATH=$HOME/.local/bin:$PATH
  command -v uv >/dev/null || die "uv did not install into $HOME/.local/bin"
}

python_env() {
  ensure_uv
  ensure_python
  ensure_ca
  cd "$ROOT"
  # Bytecode compiled once here: a machine that never writes .pyc files (this one sets
  # PYTHONDONTWRITEBYTECODE) would otherwise compile every library at every process start,
  # about 5 s of CPU for each service, worker and test subprocess instead of about 2 s.
  local sync=(uv sync --all-packages --all-groups --quiet --compile-bytecode)
  if [[ ${CI:-} == true ]]; then sync+=(--frozen); fi
  retry "uv sync (PyPI)" "${sync[@]}" || die "could not install the Python packages of uv.lock"
}

postgres_server() {
  if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    log "installing the PostgreSQL server"; apt_install postgresql
    # Debian starts a default cluster on 5432; this project runs its own, so stop that one.
    "${SUDO[@]}" service postgresql stop >/dev/null 2>&1 || true
  fi
  command -v psql >/dev/null || apt_install postgresql-client
  command -v curl >/dev/null || apt_install curl
}

kafka_jars() {
  if ! command -v java >/dev/null || ! java -version 2>&1 | grep -qE 'version "(1[7-9]|2[0-9])'; then
    log "installing OpenJDK 17"; apt_install openjdk-17-jdk-headless
  fi
  command -v mvn >/dev/null || { log "installing Maven"; apt_install maven; }
  ensure_ca
  bash "$ROOT/deploy/kafka/kafka.sh" fetch
}

buf_cli() {
  command -v npm >/dev/null || { log "installing Node.js and npm"; apt_install nodejs npm; }
  ensure_ca
  if [[ ! -x $ROOT/proto-schemas/node_modules/.bin/buf ]]; then
    # npm ci checks every package against package-lock.json's integrity (sha512).
    retry "npm ci (buf)" bash -c 'cd "$1" && npm ci --loglevel=error --no-audit --no-fund' _ "$ROOT/proto-schemas" \
      || die "could not install buf from npm (proto-schemas/package-lock.json)"
  fi
}

case "${1:-all}" in
  uv) ensure_uv ;;
  python) python_env ;;
  postgres) postgres_server ;;
  kafka) kafka_jars ;;
  buf) buf_cli ;;
  shellcheck) command -v shellcheck >/dev/null || { log "installing shellcheck"; apt_install shellcheck; } ;;
  all) python_env; postgres_server; kafka_jars ;;
  *) echo "usage: $0 [uv|python|postgres|kafka|buf|shellcheck|all]" >&2; exit 2 ;;
esac
