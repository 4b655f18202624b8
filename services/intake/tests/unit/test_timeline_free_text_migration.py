"""Migration 0006's frozen list of free-text keys against the timeline's rule today."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from types import ModuleType

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from dibao_common.messaging.envelope import EventRegistry
from dibao_intake.service_layer import timeline

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"

# Free-text fields that no entry recorded before the rule (f953f2e) can hold, so no
# migration removes them: fields or event types added to the contracts after migration
# 0006, whose entries the code has always written without them. Each as
# "ce_type.field", with the commit that added it.
NEVER_IN_OLD_ENTRIES: frozenset[str] = frozenset(
    {
        # ApplicationSubmitted's one-off reason, a field new in 3a6f2d8 (3 Dec 2026): no
        # event before it carried one, so no stored entry ever showed it.
        "dibao.intake.ApplicationSubmitted.v1.reason",
    }
)


def _migration(filename: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(filename.removesuffix(".py"), VERSIONS / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _about_an_application(cls: type[Message]) -> Message:
    """An empty event of that type, pointed at an application the way ``application_of``
    looks for one (its ``application_id``, or an audit subject)."""
    message = cls()
    fields = cls.DESCRIPTOR.fields_by_name
    target = str(uuid.uuid4())
    if "application_id" in fields and fields["application_id"].type == FieldDescriptor.TYPE_STRING:
        setattr(message, "application_id", target)  # noqa: B010 - set by descriptor
    subject = fields.get("subject")
    if subject is not None and subject.message_type is not None:
        names = subject.message_type.fields_by_name
        if "kind" in names and "id" in names:
            found = getattr(message, "subject")  # noqa: B009
            found.kind = "application"
            found.id = target
    return message


def free_text_left_out_today() -> set[str]:
    """``ce_type.field`` for every top-level field the timeline leaves out as free text, of
    every registered event type the timeline takes."""
    registry = EventRegistry.default()
    found: set[str] = set()
    for ce_type in registry.types():
        cls = registry.message_class(ce_type)
        assert cls is not None
        message = _about_an_application(cls)
        if timeline.application_of(message) is None:
            continue  # never an entry
        found |= {
            f"{ce_type}.{name}"
            for name in timeline.hidden_fields(message)
            if name in timeline._FREE_TEXT
        }
    return found


def test_migration_0006_removes_every_free_text_key_the_timeline_leaves_out() -> None:
    """Coverage, not equality. The migration's constant is frozen: it has run on
    databases, so it must never be edited to follow the code. The code may later leave out
    fewer fields (a field removed from a contract, a name taken out of the rule), which
    changes nothing for entries already cleaned: that direction is not checked. It may
    leave out more, and then someone must decide whether stored entries hold the new
    field, which this test makes them do."""
    frozen = {
        f"{ce_type}.{key}"
        for ce_type, keys in _migration("0006_timeline_free_text.py").FREE_TEXT_KEYS.items()
        for key in keys
    }
    uncovered = sorted(free_text_left_out_today() - frozen - NEVER_IN_OLD_ENTRIES)
    assert not uncovered, (
        f"The timeline leaves out {uncovered} as free text, but no migration removes them "
        "from stored entries. If the field or its event type is new (added after migration "
        "0006), no stored entry ever held it: add it to NEVER_IN_OLD_ENTRIES in this test, "
        "with the commit that added it. If it existed before and entries showed it (a name "
        "newly added to the timeline's _FREE_TEXT, say), stored entries hold it: write a new "
        "migration like 0006 removing it and check its constant here too. Never edit 0006: "
        "it has run."
    )


def test_the_check_sees_each_kind_of_free_text() -> None:
    """The recomputation finds what the migration exists for (a reason in words, what an
    objection says, audit's anomaly details, intake's own statement), so the comparison
    above is not between two empty sets."""
    assert {
        "dibao.intake.ApplicationWithdrawn.v1.reason",
        "dibao.publicity.ObjectionRaised.v1.summary",
        "dibao.audit.AnomalyDetected.v1.details",
        "dibao.intake.ApplicationSubmitted.v1.statement",
    } <= free_text_left_out_today()
