#!/usr/bin/env bash
# buf for the event contracts, installed from npm (@bufbuild/buf) into
# proto-schemas/node_modules on first use (deploy/bootstrap.sh buf: npm ci against
# package-lock.json, retried with backoff like every download of the scripts).
#
#   bash proto-schemas/buf.sh lint                  # buf lint (STANDARD)
#   bash proto-schemas/buf.sh breaking [GIT-REF]    # buf breaking (WIRE_JSON) against GIT-REF, default main
#   bash proto-schemas/buf.sh format                # buf format --diff --exit-code
#   bash proto-schemas/buf.sh -- ARGS...            # any other buf command, run in proto-schemas/
#
# GIT-REF is anything git rev-parse understands (main, origin/main, HEAD~1, a sha).
# When it has no proto-schemas/*.proto yet (the first commit), breaking prints a note
# and exits 0.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
buf="$here/node_modules/.bin/buf"

ensure_buf() {
  if [[ ! -x "$buf" ]]; then
    echo "buf.sh: installing buf with npm ci into $here/node_modules" >&2
    # As `make lint` installs it: Node.js and npm from Debian when missing, npm ci retried
    # (DIBAO_RETRIES, deploy/lib.sh), a failure naming what could not be installed.
    bash "$here/../deploy/bootstrap.sh" buf >&2
  fi
}

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

cmd="${1:-}"
[[ -n "$cmd" ]] || usage
shift

case "$cmd" in
  lint)
    ensure_buf
    cd "$here"
    "$buf" lint "$@"
    echo "buf lint: ok"
    ;;
  format)
    ensure_buf
    cd "$here"
    "$buf" format --diff --exit-code "$@"
    echo "buf format: ok"
    ;;
  breaking)
    ref="${1:-main}"
    cd "$here"
    # The repository's own git dir (the common one, so linked worktrees work too).
    git_dir="$(cd "$(git rev-parse --git-common-dir)" && pwd)"
    # Path of proto-schemas inside the repository ("proto-schemas" at the root).
    prefix="$(git rev-parse --show-prefix)"
    prefix="${prefix%/}"
    if ! sha="$(git rev-parse --verify --quiet "${ref}^{commit}")"; then
      if ! git rev-parse --verify --quiet HEAD >/dev/null; then
        echo "buf.sh breaking: note: the repository has no commits yet; nothing to compare against." >&2
        exit 0
      fi
      echo "buf.sh breaking: unknown git ref '$ref'" >&2
      exit 2
    fi
    # --full-tree: the path is from the repository root, not from proto-schemas/.
    # (Listed into a variable: grep -q in a pipe would SIGPIPE git under pipefail.)
    listed="$(git ls-tree --full-tree -r --name-only "$sha" -- "$prefix")"
    if ! grep -q '\.proto$' <<<"$listed"; then
      echo "buf.sh breaking: note: $ref ($sha) has no $prefix/*.proto yet; nothing to compare against." >&2
      exit 0
    fi
    ensure_buf
    "$buf" breaking --against "${git_dir}#ref=${sha},subdir=${prefix}"
    echo "buf breaking: no breaking changes against $ref ($sha)"
    ;;
  --)
    ensure_buf
    cd "$here"
    "$buf" "$@"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    echo "buf.sh: unknown command '$cmd'" >&2
    usage
    ;;
esac
