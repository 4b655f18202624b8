# shellcheck shell=bash
# The uv every script runs, first on PATH: sourced by lib.sh, and by bench/run.sh's path
# that uses a stack already running (which sources nothing else).
# uv is the version deploy/uv-requirements.txt pins (the one uv.lock was written with): an
# older or newer uv may resolve, lock or sync differently. A uv of another version that the
# user installed is left as it is: bootstrap.sh installs the pinned one into UV_TOOL_DIR,
# which then comes first on every script's PATH.
_dibao_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UV_VERSION=$(sed -n 's/^uv==\([^[:space:]]*\).*/\1/p' "$_dibao_root/deploy/uv-requirements.txt")
UV_TOOL_DIR=${DIBAO_CACHE_DIR:-$HOME/.cache/dibao}/uv/$UV_VERSION
export PATH=$HOME/.local/bin:$PATH
if [[ -x $UV_TOOL_DIR/bin/uv ]]; then PATH=$UV_TOOL_DIR/bin:$PATH; fi
export UV_PYTHON_DOWNLOADS=never
export UV_PROJECT_ENVIRONMENT=${UV_PROJECT_ENVIRONMENT:-$_dibao_root/.venv}
unset _dibao_root
