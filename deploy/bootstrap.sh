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

# The version of a uv binary ("uv 0.13.9 (...)" -> 0.13.9), empty when it does not run.
uv_version() {  # uv_version <path>
  local out
  out=$("$1" --version 2>/dev/null) || return 0
  out=${out#uv }; echo "${out%% *}"
}

# uv of deploy/uv-requirements.txt from PyPI, checked against PyPI's sha256 (pip
# --require-hashes, wheels only). With no uv at all: a --user install into ~/.local/bin.
# With a uv of another version on PATH: never touched (it is the user's, wherever it is,
# ~/.local/bin included); the pinned one goes into UV_TOOL_DIR (lib.sh puts it first on
# PATH), through a temporary directory so that an interrupted install leaves none.
ensure_uv() {
  local found version='' into=user
  if found=$(command -v uv); then
    version=$(uv_version "$found")
    [[ $version == "$UV_VERSION" ]] && return 0
    into=tool
    log "uv ${version:-of unknown version} at $found is not the pinned $UV_VERSION (deploy/uv-requirements.txt): installing uv $UV_VERSION into $UV_TOOL_DIR for these scripts; $found is left as it is"
  else
    log "installing uv $UV_VERSION from PyPI"
  fi
  ensure_python
  ensure_ca
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
  local pip=(python3 -m pip install --quiet --only-binary=:all: --require-hashes
             -r "$ROOT/deploy/uv-requirements.txt")
  # Debian 12's own python3 is externally managed (PEP 668) and refuses plain pip installs;
  # an install of one tool for one user (--user, --target) leaves the system's packages alone.
  if python3 -m pip install --help 2>/dev/null | grep -F -- --break-system-packages >/dev/null; then
    pip+=(--break-system-packages)
  fi
  if [[ $into == user ]]; then
    retry "pip install uv (PyPI)" "${pip[@]}" --user || die "could not install uv from PyPI (deploy/uv-requirements.txt)"
    export PATH=$HOME/.local/bin:$PATH
  else
    local tmp
    mkdir -p "$(dirname "$UV_TOOL_DIR")"
    tmp=$(mktemp -d "$UV_TOOL_DIR.XXXXXX")
    # Each attempt starts in an empty directory: pip --target keeps what an interrupted
    # attempt left there rather than replace it.
    # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
    if ! retry "pip install uv (PyPI)" bash -c 'rm -rf "$0"/* && "$@"' "$tmp" "${pip[@]}" --target "$tmp"; then
      rm -rf "$tmp"; die "could not install uv from PyPI (deploy/uv-requirements.txt) into $UV_TOOL_DIR"
    fi
    rm -rf "$UV_TOOL_DIR"; mv "$tmp" "$UV_TOOL_DIR"
    export PATH=$UV_TOOL_DIR/bin:$PATH
  fi
  found=$(command -v uv) || die "uv did not install"
  version=$(uv_version "$found")
  [[ $version == "$UV_VERSION" ]] || die "the uv installed at $found is ${version:-not runnable}, not the pinned $UV_VERSION"
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
  # The README's commands read the answers with jq; plain Debian 12 lacks it.
  command -v jq >/dev/null || apt_install jq
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
