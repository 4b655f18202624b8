#!/usr/bin/env bash
# `make token ROLE=<role> REGION=<code prefix> [SUBJECT=<who>]`: a development bearer token
# for the local stack of the instance, printed as the last line (subject: dev-user).
# Roles (dibao_common.auth.Role; several with commas): intake_clerk, investigator,
# village_committee, township_reviewer, county_approver, publicity_officer, finance_officer,
# auditor, policy_admin. A region is a division code down to a level (2, 4, 6, 9 or 12
# digits). A role or region the services would refuse is refused here. The token is an
# access token (header typ at+jwt, RFC 9068) valid 8 hours; the services take none of
# another type or living over DIBAO_JWT_MAX_LIFETIME_S (12 h).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
[[ -f $STATE/secrets.env ]] || die "no development keys yet: run \`make up\` first"
cd "$ROOT"
uv run --no-sync python -m dibao_common.devtoken --key "$STATE/dev-jwt-signing-key.pem" \
  --env "$STATE/secrets.env" --role "$1" --region "$2" --subject "${3:-dev-user}"
