#!/usr/bin/env bash
# A benchmark on an isolated stack of its own (PostgreSQL + Kafka, no services), torn down
# afterwards, like deploy/test.sh:
#   DIBAO_TEST_INSTANCE=bench DIBAO_PG_PORT=<pg> DIBAO_KAFKA_PORT=<kafka> \
#     DIBAO_SVC_PORT_BASE=<svc> bash bench/run.sh outbox [--events N --rounds R]
# With DIBAO_TEST_PG_DSN and DIBAO_TEST_KAFKA_BOOTSTRAP already set, it uses that stack;
# never the operator's servers of `make up` (DIBAO_PG_URL, ...: deploy/lib.sh test_servers).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

if [[ -n ${DIBAO_TEST_PG_DSN:-} && -n ${DIBAO_TEST_KAFKA_BOOTSTRAP:-} ]]; then
  # The pinned uv, as every script runs it (deploy/uv-path.sh), not just any uv on PATH.
  # shellcheck source=deploy/uv-path.sh
  source "$ROOT/deploy/uv-path.sh"
  exec uv run --no-sync python -m bench.run "$@"
fi

export DIBAO_INSTANCE=${DIBAO_TEST_INSTANCE:-bench}
source "$ROOT/deploy/lib.sh"
# The instance is this run's until it ends (deploy/lib.sh, as deploy/test.sh does).
instance_lock "bench/run.sh"
test_servers
KAFKA_DIR=$STATE/kafka
teardown() {
  local rc=$?
  bash "$ROOT/deploy/stack.sh" down || true
  bash "$ROOT/deploy/pg.sh" remove || true
  rm -rf "$KAFKA_DIR"
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

bash "$ROOT/deploy/stack.sh" up --no-services 8>&-
DIBAO_TEST_PG_DSN=$(bash "$ROOT/deploy/pg.sh" dsn)
export DIBAO_TEST_PG_DSN
# The broker stack.sh used: the one DIBAO_TEST_KAFKA_BOOTSTRAP named (it answered), or its own.
export DIBAO_TEST_KAFKA_BOOTSTRAP=${DIBAO_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export DIBAO_TEST_DB_PREFIX=$DB_PREFIX
uv run --no-sync python -m bench.run "$@" 8>&-
