#!/usr/bin/env bash
# `make test`: an isolated stack (instance `test`: its own ports and data directories),
# the whole suite (or the pytest arguments given), then teardown. Exits non-zero on any
# failure. DIBAO_TEST_INSTANCE=<name> with DIBAO_PG_PORT, DIBAO_KAFKA_PORT and
# DIBAO_SVC_PORT_BASE runs a second isolated test stack beside the first. The operator's
# servers of `make up` (DIBAO_PG_URL, DIBAO_KAFKA_BOOTSTRAP) are never the suite's; other
# servers for tests are named by DIBAO_TEST_PG_DSN and DIBAO_TEST_KAFKA_BOOTSTRAP
# (lib.sh test_servers).
set -euo pipefail
export DIBAO_INSTANCE=${DIBAO_TEST_INSTANCE:-test}
source "$(dirname "$0")/lib.sh"

# The instance is this run's until it ends, teardown included: a second run of the same
# instance waits, then fails (before its teardown is armed), rather than share and delete
# it. Another instance (`dev` of `make up`) has a lock of its own.
instance_lock "test.sh"
test_servers
in_range=$(ephemeral_test_ports | paste -sd, -)
if [[ -n $in_range ]]; then
  log "WARNING: ports $in_range lie in the kernel's ephemeral range ($(tr -s '\t ' - </proc/sys/net/ipv4/ip_local_port_range)): an outgoing connection may hold one and a server fail to start on it (ADR 0001)"
fi

KAFKA_DIR=$STATE/kafka
teardown() {
  local rc=$?
  phase "teardown"
  bash "$ROOT/deploy/stack.sh" down || true
  # The instance's data goes with it: its cluster (which as root lives outside the
  # checkout) and the broker's log directories.
  bash "$ROOT/deploy/pg.sh" remove || true
  rm -rf "$KAFKA_DIR"
  phase_end
  exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
# 8>&-: what it leaves running must not hold the lock (lib.sh).
bash "$ROOT/deploy/stack.sh" up --no-services 8>&-
log "test stack ready in $((SECONDS - t0)) s"

export DIBAO_TEST_PG_DSN; DIBAO_TEST_PG_DSN=$(bash "$ROOT/deploy/pg.sh" dsn)
# The broker stack.sh used: the one DIBAO_TEST_KAFKA_BOOTSTRAP named (it answered), or its own.
export DIBAO_TEST_KAFKA_BOOTSTRAP=${DIBAO_KAFKA_BOOTSTRAP:-127.0.0.1:$KAFKA_PORT}
export DIBAO_TEST_KAFKA_DIR=$KAFKA_DIR
export DIBAO_TEST_KAFKA_PORT=$KAFKA_PORT
export DIBAO_TEST_SVC_PORT_BASE=$SVC_PORT_BASE
export DIBAO_TEST_DB_PREFIX=$DB_PREFIX
export DIBAO_TEST_STATE=$STATE

phase "tests"
cd "$ROOT"
uv run --no-sync pytest "$@" 8>&-
