#!/usr/bin/env bash
# `make lint`: ruff, mypy (strict), buf lint, and the generated-code staleness check.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash deploy/bootstrap.sh python
phase "ruff"; uv run --no-sync ruff check . && uv run --no-sync ruff format --check .
phase "mypy"; uv run --no-sync mypy libs/common/src services tests bench
phase "buf lint"; bash deploy/bootstrap.sh buf; bash proto-schemas/buf.sh lint
phase "generated code"; uv run --no-sync --group codegen bash proto-schemas/check-generated.sh
phase_end
