#!/usr/bin/env bash
# `make token ROLE=<role> REGION=<code prefix>`: a development bearer token for the local
# stack of the instance, printed as the last line.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[[ -f $STATE/secrets.env ]] || die "no development keys yet: run \`make up\` first"
cd "$ROOT"
uv run --no-sync python -m dibao_common.devtoken --key "$STATE/dev-jwt-signing-key.pem" \
  --env "$STATE/secrets.env" --role "$1" --region "$2"
