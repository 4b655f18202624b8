#!/usr/bin/env bash
# Local Apache Kafka 4.x (KRaft) broker for dibao, run from Maven Central jars; no Docker.
#
# Usage:
#   kafka.sh fetch
#   kafka.sh start      --dir DIR --port P [--controller-port C] [--nodes 1|3]
#   kafka.sh stop       --dir DIR
#   kafka.sh status     --dir DIR
#   kafka.sh kill-node  --dir DIR --node I
#   kafka.sh start-node --dir DIR --node I
#   kafka.sh topics     --bootstrap HOST:PORT [--file FILE] [--replication-factor N]
#   kafka.sh bootstrap  --dir DIR
#   kafka.sh run-class  CLASS [ARGS...]     (any Kafka tool main class on the cached classpath)
#
# start/start-node/bootstrap print the bootstrap servers (and nothing else) on stdout;
# progress goes to stderr. Every subcommand is idempotent. See README.md beside this file.
#
# Environment:
#   DIBAO_CACHE_DIR            cache root (default $HOME/.cache/dibao); jars go to
#                              $DIBAO_CACHE_DIR/kafka/<version>/libs
#   DIBAO_KAFKA_VERSION        org.apache.kafka:kafka_2.13 version (default 4.1.1)
#   DIBAO_KAFKA_HEAP           broker heap, -Xms and -Xmx (default 512m)
#   DIBAO_KAFKA_READY_TIMEOUT  seconds to wait for readiness (default 180)
#   DIBAO_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 60)
#   DIBAO_KAFKA_QUORUM_GRACE   3 nodes: seconds a node left without controller quorum gets
#                              after SIGTERM before SIGKILL (default 10)
#   DIBAO_KAFKA_JVM_OPTS       extra broker JVM options (word-split)
#   DIBAO_KAFKA_TOPICS_TIMEOUT seconds `topics` may take in all (default 180); each admin
#                              call gives up after 20 s (a broker that never answers)
#   DIBAO_RETRIES              attempts of each download (apt-get, Maven Central; default 4),
#   DIBAO_RETRY_WAIT           the first wait between them in seconds, doubled each time (5)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_VERSION=${DIBAO_KAFKA_VERSION:-4.1.1}
CACHE_ROOT=${DIBAO_CACHE_DIR:-${HOME:-/root}/.cache/dibao}
KAFKA_CACHE=$CACHE_ROOT/kafka/$KAFKA_VERSION
LIBS=$KAFKA_CACHE/libs
HEAP=${DIBAO_KAFKA_HEAP:-512m}
READY_TIMEOUT=${DIBAO_KAFKA_READY_TIMEOUT:-180}
STOP_TIMEOUT=${DIBAO_KAFKA_STOP_TIMEOUT:-60}
QUORUM_GRACE=${DIBAO_KAFKA_QUORUM_GRACE:-10}
TOPICS_TIMEOUT=${DIBAO_KAFKA_TOPICS_TIMEOUT:-180}
HOST=127.0.0.1
JVM_OPTS=(-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
          -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true)
# Extra broker JVM options, word-split (e.g. DIBAO_KAFKA_JVM_OPTS='-XX:TieredStopAtLevel=1').
read -ra EXTRA_JVM_OPTS <<<"${DIBAO_KAFKA_JVM_OPTS:-}"

log() { echo "kafka.sh: $*" >&2; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

# A download (apt-get, Maven Central) that fails is tried again, RETRIES attempts in all,
# waiting RETRY_WAIT seconds, then twice that, ...: a fresh machine's first run meets
# mirrors that time out or answer 5xx now and then.
RETRIES=${DIBAO_RETRIES:-4}
RETRY_WAIT=${DIBAO_RETRY_WAIT:-5}
retry() {  # retry <what> <command>...
  local what=$1 attempt=1 wait=$RETRY_WAIT rc
  shift
  while :; do
    rc=0; "$@" || rc=$?
    ((rc != 0)) || return 0
    ((attempt < RETRIES)) || { log "$what failed $attempt times (last exit status $rc)"; return "$rc"; }
    log "$what failed (exit status $rc, attempt $attempt of $RETRIES): again in $wait s"
    sleep "$wait"
    attempt=$((attempt + 1)) wait=$((wait * 2))
  done
}

usage() {
  sed -n '3,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# ---------------------------------------------------------------- tools / fetch

JAVA=java
JAVAC=javac
if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
  JAVA=$JAVA_HOME/bin/java
  JAVAC=$JAVA_HOME/bin/javac
fi

ensure_tools() {
  local need=()
  command -v "$JAVA" >/dev/null 2>&1 || need+=(openjdk-17-jdk-headless)
  command -v mvn >/dev/null 2>&1 || need+=(maven)
  if ((${#need[@]})); then
    log "installing ${need[*]} with apt-get"
    local sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    local apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o Acquire::Retries=3
               -o DPkg::Lock::Timeout=300)
    retry "apt-get update" "${apt[@]}" update >&2 || die "apt-get update failed"
    retry "apt-get install ${need[*]}" "${apt[@]}" install -y --no-install-recommends "${need[@]}" >&2 \
      || die "could not install ${need[*]}"
  fi
  check_java
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (run: kafka.sh fetch)"
  local v
  v=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  if ! [[ ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    die "Kafka 4.x needs Java 17 or newer, $JAVA is version '${v:-unknown}' (set JAVA_HOME)"
  fi
}

fetch_signature() {
  echo "$KAFKA_VERSION $(sha256sum "$SCRIPT_DIR/pom.xml" | cut -d' ' -f1)"
}

libs_complete() {
  [[ -f $LIBS/.complete && "$(cat "$LIBS/.complete")" == "$(fetch_signature)" ]]
}

cmd_fetch() {
  (($# == 0)) || die "fetch takes no arguments"
  if libs_complete; then
    command -v "$JAVA" >/dev/null 2>&1 || ensure_tools
    log "Kafka $KAFKA_VERSION jars already in $LIBS"
    return 0
  fi
  ensure_tools
  mkdir -p "$KAFKA_CACHE"
  # Serialise concurrent fetches of the same version.
  exec 9>"$KAFKA_CACHE/.fetch.lock"
  flock 9
  if libs_complete; then exec 9>&-; return 0; fi
  local tmp=$KAFKA_CACHE/libs.tmp.$$
  rm -rf "$tmp"
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  # --strict-checksums: a file whose bytes do not match the checksum Maven Central publishes
  # beside it fails the fetch (by default Maven only warns and keeps it). What Maven
  # downloads is cached in ~/.m2, so a retry fetches only what is still missing.
  if ! retry "fetching the Kafka jars (mvn)" mvn -q -B --strict-checksums -Dstyle.color=never \
      -f "$SCRIPT_DIR/pom.xml" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >&2; then
    rm -rf "$tmp"
    die "could not fetch the Kafka $KAFKA_VERSION jars from Maven Central (mvn dependency:copy-dependencies, $RETRIES attempts; its errors are above)"
  fi
  local j
  for j in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-tools-$KAFKA_VERSION.jar" \
           "kafka-clients-$KAFKA_VERSION.jar"; do
    [[ -f $tmp/$j ]] || { rm -rf "$tmp"; die "fetch incomplete: $j missing"; }
  done
  compgen -G "$tmp/log4j-slf4j-impl-*.jar" >/dev/null || { rm -rf "$tmp"; die "log4j-slf4j-impl missing"; }
  fetch_signature >"$tmp/.complete"
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  exec 9>&-  # releases the lock; the brokers started later must not inherit it
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

ensure_fetched() {
  if ! libs_complete || ! command -v "$JAVA" >/dev/null 2>&1; then cmd_fetch; fi
  check_java
}

# ---------------------------------------------------------------- cluster layout

# Loaded from / saved to DIR/cluster.conf.
NODES=
PORT=
CPORT=

node_dir()    { echo "$DIR/node-$1"; }
broker_port() { echo $((PORT + $1 - 1)); }
ctrl_port()   { echo $((CPORT + $1 - 1)); }

bootstrap_servers() {
  local i out=()
  for ((i = 1; i <= NODES; i++)); do out+=("$HOST:$(broker_port "$i")"); done
  (IFS=,; echo "${out[*]}")
}

load_conf() {
  [[ -f $DIR/cluster.conf ]] || die "$DIR is not a kafka.sh cluster dir (no cluster.conf; run start first)"
  NODES=$(sed -n 's/^NODES=//p' "$DIR/cluster.conf")
  PORT=$(sed -n 's/^PORT=//p' "$DIR/cluster.conf")
  CPORT=$(sed -n 's/^CONTROLLER_PORT=//p' "$DIR/cluster.conf")
  [[ $NODES =~ ^[13]$ && $PORT =~ ^[0-9]+$ && $CPORT =~ ^[0-9]+$ ]] || die "bad $DIR/cluster.conf"
}

abs_dir() {  # make DIR absolute (creating it when $1 == create)
  [[ -n ${DIR:-} ]] || die "--dir is required"
  if [[ ${1:-} == create ]]; then mkdir -p "$DIR"; fi
  if [[ -d $DIR ]]; then DIR=$(cd "$DIR" && pwd); fi
}

write_props() {
  local i=$1 nd voters="" j rf mis
  nd=$(node_dir "$i")
  for ((j = 1; j <= NODES; j++)); do voters+="${voters:+,}$j@$HOST:$(ctrl_port "$j")"; done
  if ((NODES == 1)); then rf=1; mis=1; else rf=3; mis=2; fi
  mkdir -p "$nd/data"
  cat >"$nd/server.properties.tmp" <<EOF
# Generated by deploy/kafka/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$(broker_port "$i"),CONTROLLER://$HOST:$(ctrl_port "$i")
advertised.listeners=PLAINTEXT://$HOST:$(broker_port "$i")
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$nd/data

# Topics are created explicitly (kafka.sh topics / admin client), never by accident.
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$mis
unclean.leader.election.enable=false

# Internal topics: replication fits the node count, few partitions for fast tests.
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$mis
transaction.state.log.num.partitions=3
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$mis
share.coordinator.state.topic.num.partitions=3
group.initial.rebalance.delay.ms=0

# Small footprint on a 2-core test machine.
log.cleaner.dedupe.buffer.size=2097152
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
background.threads=4
EOF
  mv "$nd/server.properties.tmp" "$nd/server.properties"
}

cluster_id() {
  if [[ ! -s $DIR/cluster-id ]]; then
    local id
    id=$("$JAVA" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)
    [[ $id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave '$id'"
    echo "$id" >"$DIR/cluster-id.tmp"
    mv "$DIR/cluster-id.tmp" "$DIR/cluster-id"
  fi
  cat "$DIR/cluster-id"
}

format_node() {  # format node $1's storage unless already formatted
  local i=$1 nd id
  nd=$(node_dir "$i")
  [[ -f $nd/data/meta.properties ]] && return 0
  id=$(cluster_id)
  "$JAVA" -Xmx256m -cp "$LIBS/*" kafka.tools.StorageTool format -t "$id" \
    -c "$nd/server.properties" --ignore-formatted >"$nd/format.log" 2>&1 \
    || { cat "$nd/format.log" >&2; die "formatting node $i failed"; }
}

# ---------------------------------------------------------------- processes

node_pid() {  # pid from the pid file if that process is alive and is this node's broker
  local i=$1 nd pid
  nd=$(node_dir "$i")
  [[ -s $nd/kafka.pid ]] || return 1
  pid=$(<"$nd/kafka.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  pid_alive "$pid" || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "kafka.Kafka $nd/server.properties" >/dev/null || return 1
  echo "$pid"
}

pid_alive() {  # a zombie (exited, not yet reaped) counts as dead
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true)
  [[ $st != Z ]]
}

# A connect to a local port, given up after 2 s: a bare /dev/tcp open to a listener whose
# queue is full waits out the SYN retries (about two minutes). 0: accepted, 124: no answer.
# shellcheck disable=SC2016  # $0 and $1 are the inner shell's
port_probe() { timeout --foreground 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null; }
port_open() { port_probe "$1"; }
port_taken() { local rc=0; port_probe "$1" || rc=$?; ((rc == 0 || rc == 124)); }

declare -A LOG_OFFSET=()

launch_node() {
  local i=$1 nd pid p t
  nd=$(node_dir "$i")
  if pid=$(node_pid "$i"); then
    log "node $i already running (pid $pid)"
    return 0
  fi
  rm -f "$nd/kafka.pid"
  for p in "$(broker_port "$i")" "$(ctrl_port "$i")"; do
    port_taken "$p" && die "port $p is already in use by another process (node $i of $DIR)"
  done
  write_props "$i"
  format_node "$i"
  LOG_OFFSET[$i]=$(stat -c %s "$nd/kafka.log" 2>/dev/null || echo 0)
  echo "---- $(date -Is) start node $i (Kafka $KAFKA_VERSION)" >>"$nd/server.log"
  # setsid: own session, so the broker outlives the caller's shell and its signals.
  # The inner bash writes its own pid and then execs java, so the pid file is java's pid.
  # shellcheck disable=SC2016
  nohup setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$nd/kafka.pid" \
    "$JAVA" -Xms"$HEAP" -Xmx"$HEAP" "${JVM_OPTS[@]}" "${EXTRA_JVM_OPTS[@]+"${EXTRA_JVM_OPTS[@]}"}" \
    -Dkafka.logs.dir="$nd" -Dlog4j2.configurationFile="$SCRIPT_DIR/log4j2.yaml" \
    -cp "$LIBS/*" kafka.Kafka "$nd/server.properties" \
    >>"$nd/server.log" 2>&1 </dev/null &
  for ((t = 0; t < 100; t++)); do
    [[ -s $nd/kafka.pid ]] && break
    sleep 0.1
  done
  [[ -s $nd/kafka.pid ]] || die "node $i did not start (see $nd/server.log)"
  log "node $i starting (pid $(<"$nd/kafka.pid")), broker $HOST:$(broker_port "$i"), controller $HOST:$(ctrl_port "$i")"
}

node_ready() {
  local i=$1 nd off
  nd=$(node_dir "$i")
  off=${LOG_OFFSET[$i]:-0}
  [[ -f $nd/kafka.log ]] || return 1
  # kafka.log rolled over since the offset was taken: search the new file from its start.
  (($(stat -c %s "$nd/kafka.log") >= off)) || off=0
  # No grep -q in pipes: with pipefail, an early grep exit SIGPIPEs tail and fails the test.
  tail -c +"$((off + 1))" "$nd/kafka.log" | grep -F "Kafka Server started" >/dev/null || return 1
  port_open "$(broker_port "$i")"
}

wait_ready() {  # wait_ready I...
  local pending=("$@") still i nd start=$SECONDS
  while ((${#pending[@]})); do
    still=()
    for i in "${pending[@]}"; do
      nd=$(node_dir "$i")
      if ! node_pid "$i" >/dev/null; then
        echo "---- $nd/server.log (tail)" >&2; tail -n 30 "$nd/server.log" >&2 || true
        echo "---- $nd/kafka.log (tail)" >&2; tail -n 30 "$nd/kafka.log" >&2 2>/dev/null || true
        die "node $i exited during startup (clean up with: kafka.sh stop --dir $DIR)"
      fi
      node_ready "$i" || still+=("$i")
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS - start >= READY_TIMEOUT)); then
      die "nodes ${pending[*]} not ready after ${READY_TIMEOUT}s (see $DIR/node-*/kafka.log; clean up with: kafka.sh stop --dir $DIR)"
    fi
    sleep 0.5
  done
  log "ready after $((SECONDS - start))s"
}

# ---------------------------------------------------------------- subcommands

parse_common() {
  DIR='' OPT_PORT='' OPT_CPORT='' OPT_NODES='' OPT_NODE=''
  while (($#)); do
    case $1 in
      --dir) DIR=${2:?--dir needs a value}; shift 2 ;;
      --port) OPT_PORT=${2:?--port needs a value}; shift 2 ;;
      --controller-port) OPT_CPORT=${2:?--controller-port needs a value}; shift 2 ;;
      --nodes) OPT_NODES=${2:?--nodes needs a value}; shift 2 ;;
      --node) OPT_NODE=${2:?--node needs a value}; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
}

cmd_start() {
  parse_common "$@"
  [[ -n $OPT_PORT ]] || die "--port is required"
  [[ $OPT_PORT =~ ^[0-9]+$ ]] || die "bad --port"
  OPT_NODES=${OPT_NODES:-1}
  [[ $OPT_NODES =~ ^[13]$ ]] || die "--nodes must be 1 or 3"
  # Default controller port: P+1 for one node, P+100 for three (brokers use P..P+2).
  if [[ -z $OPT_CPORT ]]; then
    if ((OPT_NODES == 1)); then OPT_CPORT=$((OPT_PORT + 1)); else OPT_CPORT=$((OPT_PORT + 100)); fi
  fi
  [[ $OPT_CPORT =~ ^[0-9]+$ ]] || die "bad --controller-port"
  if ((OPT_CPORT + OPT_NODES > OPT_PORT && OPT_PORT + OPT_NODES > OPT_CPORT)); then
    die "broker ports $OPT_PORT.. and controller ports $OPT_CPORT.. overlap"
  fi
  abs_dir create
  if [[ -f $DIR/cluster.conf ]]; then
    load_conf
    [[ $NODES == "$OPT_NODES" && $PORT == "$OPT_PORT" && $CPORT == "$OPT_CPORT" ]] \
      || die "$DIR was set up with --nodes $NODES --port $PORT --controller-port $CPORT; use those or a new --dir"
  else
    NODES=$OPT_NODES PORT=$OPT_PORT CPORT=$OPT_CPORT
    printf 'NODES=%s\nPORT=%s\nCONTROLLER_PORT=%s\n' "$NODES" "$PORT" "$CPORT" >"$DIR/cluster.conf"
  fi
  local i all_up=1
  for ((i = 1; i <= NODES; i++)); do node_pid "$i" >/dev/null || all_up=0; done
  if ((all_up)); then
    log "already running ($DIR)"
    bootstrap_servers
    return 0
  fi
  local p
  for ((i = 1; i <= NODES; i++)); do
    node_pid "$i" >/dev/null && continue
    for p in "$(broker_port "$i")" "$(ctrl_port "$i")"; do
      port_taken "$p" && die "port $p is already in use by another process (node $i of $DIR)"
    done
  done
  ensure_fetched
  cluster_id >/dev/null
  local fpids=()
  for ((i = 1; i <= NODES; i++)); do
    if ! node_pid "$i" >/dev/null && [[ ! -f $(node_dir "$i")/data/meta.properties ]]; then
      write_props "$i"
      (format_node "$i") & fpids+=($!)
    fi
  done
  for i in "${fpids[@]+"${fpids[@]}"}"; do wait "$i" || die "formatting failed"; done
  local started=()
  for ((i = 1; i <= NODES; i++)); do
    launch_node "$i"
    started+=("$i")
  done
  wait_ready "${started[@]}"
  bootstrap_servers
}

check_node_arg() {
  if ! [[ $OPT_NODE =~ ^[0-9]+$ ]] || ((OPT_NODE < 1 || OPT_NODE > NODES)); then
    die "--node must be 1..$NODES"
  fi
}

cmd_start_node() {
  parse_common "$@"
  abs_dir
  load_conf
  check_node_arg
  ensure_fetched
  launch_node "$OPT_NODE"
  wait_ready "$OPT_NODE"
  bootstrap_servers
}

cmd_kill_node() {
  parse_common "$@"
  abs_dir
  load_conf
  check_node_arg
  local pid nd t
  nd=$(node_dir "$OPT_NODE")
  if pid=$(node_pid "$OPT_NODE"); then
    kill -KILL "$pid" 2>/dev/null || true
    for ((t = 0; t < 100; t++)); do pid_alive "$pid" || break; sleep 0.1; done
    log "node $OPT_NODE killed (pid $pid)"
  else
    log "node $OPT_NODE is not running"
  fi
  rm -f "$nd/kafka.pid"
}

cmd_stop() {
  parse_common "$@"
  abs_dir
  if [[ ! -f ${DIR}/cluster.conf ]]; then
    log "nothing to stop in $DIR"
    return 0
  fi
  load_conf
  local i pid pids=() start=$SECONDS alive quorum=$((NODES / 2 + 1)) lost_at=-1
  for ((i = 1; i <= NODES; i++)); do
    if pid=$(node_pid "$i"); then pids+=("$pid"); fi
  done
  if ((${#pids[@]})); then
    # All nodes together: stopped one by one, the last ones lose the controller quorum
    # and hang in controlled shutdown (up to 5 minutes). A node left without a quorum
    # cannot finish a controlled shutdown at all, so once fewer than a majority of the
    # controllers are alive the rest get QUORUM_GRACE seconds, then SIGKILL (their data
    # is in the page cache; the next start just recovers the logs).
    log "stopping pids ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    while :; do
      alive=()
      for pid in "${pids[@]}"; do pid_alive "$pid" && alive+=("$pid"); done
      ((${#alive[@]})) || break
      if ((NODES > 1 && ${#alive[@]} < quorum && lost_at < 0)); then lost_at=$SECONDS; fi
      if ((SECONDS - start >= STOP_TIMEOUT)) || ((lost_at >= 0 && SECONDS - lost_at >= QUORUM_GRACE)); then
        log "SIGKILL after $((SECONDS - start))s: ${alive[*]}"
        kill -KILL "${alive[@]}" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
          alive=()
          for pid in "${pids[@]}"; do pid_alive "$pid" && alive+=("$pid"); done
          ((${#alive[@]})) || break
          sleep 0.1
        done
        break
      fi
      sleep 0.2
    done
    log "stopped after $((SECONDS - start))s"
  else
    log "not running ($DIR)"
  fi
  for ((i = 1; i <= NODES; i++)); do rm -f "$(node_dir "$i")/kafka.pid"; done
}

cmd_status() {
  parse_common "$@"
  abs_dir
  if [[ ! -f ${DIR}/cluster.conf ]]; then
    echo "$DIR: not set up"
    return 1
  fi
  load_conf
  local i pid nd rc=0
  for ((i = 1; i <= NODES; i++)); do
    nd=$(node_dir "$i")
    if pid=$(node_pid "$i"); then
      echo "node-$i pid=$pid alive broker=$HOST:$(broker_port "$i") controller=$HOST:$(ctrl_port "$i")"
    else
      echo "node-$i pid=$(cat "$nd/kafka.pid" 2>/dev/null || echo -) dead broker=$HOST:$(broker_port "$i") controller=$HOST:$(ctrl_port "$i")"
      rc=1
    fi
  done
  return $rc
}

cmd_bootstrap() {
  parse_common "$@"
  abs_dir
  load_conf
  bootstrap_servers
}

# A tiny driver that runs Kafka's own TopicCommand once per input line (tab-separated
# arguments) inside one JVM, so creating all topics costs one JVM start instead of one per
# topic. TopicCommand.main ends in Exit.exit(code); the exit procedure is replaced by one
# that only records the first code of each run (execute() calls Exit.exit with the real
# result before main() calls it again with 0). The first failure ends the batch: against a
# broker that does not answer every further line would wait as long.
TOPIC_BATCH_SRC=$(cat <<'JAVA'
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Exit;
import org.apache.kafka.tools.TopicCommand;

public class DibaoTopicBatch {
    private static Integer firstCode;

    public static void main(String[] args) throws Exception {
        Exit.setExitProcedure((code, msg) -> {
            if (firstCode == null) firstCode = code;
        });
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        int failures = 0;
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isEmpty()) continue;
            firstCode = null;
            try {
                TopicCommand.main(line.split("\t"));
            } catch (RuntimeException e) {
                System.err.println(e);
                firstCode = 1;
            }
            int code = firstCode == null ? 0 : firstCode;
            if (code != 0) {
                failures++;
                System.err.println("TopicCommand failed (" + code + "): " + line.replace('\t', ' '));
                break;
            }
        }
        System.exit(failures == 0 ? 0 : 1);
    }
}
JAVA
)

topic_batch_classes() {  # prints the dir holding DibaoTopicBatch.class, compiling it once
  command -v "$JAVAC" >/dev/null 2>&1 || return 1
  local src sum dir tmp
  src=$TOPIC_BATCH_SRC
  sum=$(printf '%s' "$src" | sha256sum | cut -c1-16)
  dir=$KAFKA_CACHE/topic-batch-$sum
  if [[ ! -f $dir/DibaoTopicBatch.class ]]; then
    tmp=$dir.tmp.$$
    rm -rf "$tmp"; mkdir -p "$tmp"
    printf '%s' "$src" >"$tmp/DibaoTopicBatch.java"
    "$JAVAC" -nowarn -cp "$LIBS/*" -d "$tmp" "$tmp/DibaoTopicBatch.java" >/dev/null 2>&1 || { rm -rf "$tmp"; return 1; }
    rm -rf "$dir"; mv "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    find "$KAFKA_CACHE" -maxdepth 1 -name 'topic-batch-*' ! -name "${dir##*/}*" -exec rm -rf {} + 2>/dev/null || true
  fi
  echo "$dir"
}

# Tools (TopicCommand, console clients) log WARN+ to stderr, like Kafka's tools-log4j2.yaml.
tools_log4j() {
  local f=$KAFKA_CACHE/tools-log4j2.properties
  if [[ ! -f $f ]]; then
    mkdir -p "$KAFKA_CACHE"
    cat >"$f.tmp.$$" <<'EOF'
status = warn
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = STDERR
EOF
    mv "$f.tmp.$$" "$f"
  fi
  echo "$f"
}

# The admin client's limits for `topics`: against a broker that accepts and never answers,
# a call fails after 20 s instead of retrying for minutes.
admin_config() {
  local f=$KAFKA_CACHE/admin-client.properties
  mkdir -p "$KAFKA_CACHE"
  printf '%s\n' request.timeout.ms=10000 default.api.timeout.ms=20000 \
    socket.connection.setup.timeout.ms=5000 socket.connection.setup.timeout.max.ms=10000 >"$f.tmp.$$"
  mv "$f.tmp.$$" "$f"
  echo "$f"
}

# TopicCommand warns about '.' in every topic name (metric name collisions with '_').
quiet_topic_warnings() {
  { grep -v "^WARNING: Due to limitations in metric names" || true; } >&2
}

cmd_topics() {
  local bootstrap="" file=$SCRIPT_DIR/topics.conf rf=""
  while (($#)); do
    case $1 in
      --bootstrap|--bootstrap-server) bootstrap=${2:?--bootstrap needs a value}; shift 2 ;;
      --file) file=${2:?--file needs a value}; shift 2 ;;
      --replication-factor) rf=${2:?--replication-factor needs a value}; shift 2 ;;
      *) die "unknown argument: $1" ;;
    esac
  done
  [[ -n $bootstrap ]] || die "--bootstrap HOST:PORT is required"
  [[ -f $file ]] || die "no topics file $file"
  [[ -z $rf || $rf =~ ^[0-9]+$ ]] || die "bad --replication-factor"
  ensure_fetched
  local lines=() names=() name parts cfgs extra a kv cfg n=0 admin
  admin=$(admin_config)
  while read -r name parts cfgs extra; do
    [[ -z $name || $name == \#* ]] && continue
    [[ -z ${extra:-} ]] || die "$file: too many fields for topic $name"
    [[ $parts =~ ^[0-9]+$ ]] || die "$file: bad partition count for topic $name"
    a=(--bootstrap-server "$bootstrap" --command-config "$admin" --create --if-not-exists
       --topic "$name" --partitions "$parts")
    [[ -n $rf ]] && a+=(--replication-factor "$rf")
    if [[ -n ${cfgs:-} ]]; then
      IFS=, read -ra kv <<<"$cfgs"
      for cfg in "${kv[@]}"; do [[ -n $cfg ]] && a+=(--config "$cfg"); done
    fi
    lines+=("$(IFS=$'\t'; echo "${a[*]}")")
    names+=("$name")
    n=$((n + 1))
  done <"$file"
  ((n)) || { log "no topics in $file"; return 0; }
  local l4j classes deadline=$((SECONDS + TOPICS_TIMEOUT)) left
  l4j=$(tools_log4j)
  if classes=$(topic_batch_classes); then
    if ! printf '%s\n' "${lines[@]}" | timeout --foreground "$TOPICS_TIMEOUT" "$JAVA" -Xmx256m \
        -Dlog4j2.configurationFile="$l4j" -cp "$classes:$LIBS/*" DibaoTopicBatch 2>&1 \
        | quiet_topic_warnings; then
      die "creating topics on $bootstrap failed (or took over $TOPICS_TIMEOUT s)"
    fi
  else
    local line
    for line in "${lines[@]}"; do
      IFS=$'\t' read -ra a <<<"$line"
      left=$((deadline - SECONDS))
      ((left > 0)) || die "creating topics on $bootstrap took over $TOPICS_TIMEOUT s"
      if ! timeout --foreground "$left" "$JAVA" -Xmx256m -Dlog4j2.configurationFile="$l4j" -cp "$LIBS/*" \
          org.apache.kafka.tools.TopicCommand "${a[@]}" 2>&1 | quiet_topic_warnings; then
        die "creating topic failed: ${a[*]}"
      fi
    done
  fi
  log "topics present: ${names[*]}"
}

cmd_run_class() {
  (($#)) || die "run-class needs a main class"
  ensure_fetched
  exec "$JAVA" -Xmx512m -Dlog4j2.configurationFile="$(tools_log4j)" -cp "$LIBS/*" "$@"
}

main() {
  (($#)) || usage
  local cmd=$1
  shift
  case $cmd in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    kill-node) cmd_kill_node "$@" ;;
    start-node) cmd_start_node "$@" ;;
    topics) cmd_topics "$@" ;;
    bootstrap) cmd_bootstrap "$@" ;;
    run-class) cmd_run_class "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown subcommand: $cmd"; usage ;;
  esac
}

main "$@"
