#!/bin/sh
# Creates the topics declared in topics.conf (run in the apache/kafka image).
set -eu
grep -vE '^\s*(#|$)' /etc/dibao/topics.conf | while read -r name partitions configs; do
  set -- /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --create --if-not-exists \
    --topic "$name" --partitions "$partitions" --replication-factor 1
  if [ -n "${configs:-}" ]; then
    for kv in $(echo "$configs" | tr ',' ' '); do set -- "$@" --config "$kv"; done
  fi
  "$@"
done
