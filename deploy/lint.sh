#!/usr/bin/env bash
# `make lint`: ruff, mypy (strict), shellcheck, buf lint, and the generated-code staleness check.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
bash deploy/bootstrap.sh python
# Two commands, not `a && b`: under set -e a failing command before && does not stop the script.
phase "ruff"; uv run --no-sync ruff check .
uv run --no-sync ruff format --check .
phase "mypy"; uv run --no-sync mypy libs/common/src services tests bench
# Every shell script of the repository (warnings and errors; -x follows lib.sh where it can).
phase "shellcheck"; bash deploy/bootstrap.sh shellcheck
git ls-files -z '*.sh' .ci/run | xargs -0 shellcheck -x -S warning
phase "buf lint"; bash deploy/bootstrap.sh buf; bash proto-schemas/buf.sh lint
phase "generated code"; uv run --no-sync --group codegen bash proto-schemas/check-generated.sh
phase_end
