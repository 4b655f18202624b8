"""Replay dead letters: put them back on the topic they were consumed from.

``python -m dibao_common.messaging.replay --dlq dibao.assessment.dlq --bootstrap HOST:PORT``
republishes every dead letter (or only ``--ce-id ID``, ``--consumer NAME``) with its key,
value and own headers, provenance removed. The ``ce_id`` is unchanged, so a consumer that
already applied the event skips it through its inbox: replaying twice is harmless, and
every consumer group of the source topic sees the record again but applies it once.
The dead-letter topic itself is never changed (``--list`` only shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from dibao_common.messaging.dlq import (
    H_CONSUMER,
    H_ERROR,
    H_PARTITION,
    H_TOPIC,
    StoredRecord,
    read_topic,
    without_provenance,
)
from dibao_common.messaging.relay import producer_config


@dataclass(frozen=True, slots=True)
class Replayed:
    """One dead letter sent back."""

    ce_id: str | None
    topic: str
    partition: int
    offset: int
    """Offset of the republished record on its source topic."""


def _selected(record: StoredRecord, ce_ids: Collection[str] | None, consumer: str | None) -> bool:
    if ce_ids is not None and record.ce_id not in ce_ids:
        return False
    return consumer is None or record.header(H_CONSUMER) == consumer


async def list_dead_letters(bootstrap: str, dlq: str) -> list[StoredRecord]:
    """The dead letters of ``dlq``, oldest first per partition."""
    return await read_topic(bootstrap, dlq)


async def replay_dead_letters(
    bootstrap: str,
    dlq: str,
    *,
    ce_ids: Collection[str] | None = None,
    consumer: str | None = None,
) -> list[Replayed]:
    """Republish the selected dead letters of ``dlq`` to their source topics, in DLQ order."""
    records = [r for r in await read_topic(bootstrap, dlq) if _selected(r, ce_ids, consumer)]
    producer = AIOKafkaProducer(**producer_config(bootstrap, client_id="dlq-replay"))
    await producer.start()
    replayed: list[Replayed] = []
    try:
        for record in records:
            topic = record.header(H_TOPIC)
            if topic is None:
                raise ValueError(f"{dlq} {record.partition}/{record.offset} has no {H_TOPIC}")
            # By key, as the relay sent it; a keyless record goes back to its partition.
            partition = None if record.key is not None else int(record.header(H_PARTITION) or 0)
            meta = await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                partition=partition,
                headers=without_provenance(record.headers),
            )
            replayed.append(Replayed(record.ce_id, topic, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return replayed


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_common.messaging.replay",
        description="Republish dead letters to the topics they were consumed from.",
    )
    parser.add_argument("--dlq", required=True, help="dead-letter topic, e.g. dibao.audit.dlq")
    parser.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    parser.add_argument(
        "--ce-id", action="append", dest="ce_ids", help="only this event (repeatable)"
    )
    parser.add_argument("--consumer", help="only dead letters of this consumer group")
    parser.add_argument("--list", action="store_true", help="show the dead letters, replay nothing")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> int:
    ce_ids = set(args.ce_ids) if args.ce_ids else None
    if args.list:
        for record in await list_dead_letters(args.bootstrap, args.dlq):
            if _selected(record, ce_ids, args.consumer):
                sys.stdout.write(
                    f"{record.partition}/{record.offset}\t{record.ce_id}\t"
                    f"{record.header('ce_type')}\t{record.header(H_TOPIC)}\t"
                    f"{record.header(H_CONSUMER)}\t{record.header(H_ERROR)}\n"
                )
        return 0
    replayed = await replay_dead_letters(
        args.bootstrap, args.dlq, ce_ids=ce_ids, consumer=args.consumer
    )
    for item in replayed:
        sys.stdout.write(f"replayed {item.ce_id} -> {item.topic}[{item.partition}]@{item.offset}\n")
    sys.stdout.write(f"{len(replayed)} dead letter(s) replayed from {args.dlq}\n")
    if ce_ids is not None and len({r.ce_id for r in replayed}) < len(ce_ids):
        sys.stderr.write("some --ce-id were not found in the dead-letter topic\n")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dibao_common.messaging.replay``."""
    return asyncio.run(_main(_parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
