"""Intake's roster changes are logged, keyed and viewed as any other event."""

from __future__ import annotations

from dibao.common.v1 import types_pb2
from dibao.intake.v1 import events_pb2 as intake_pb2
from dibao_audit.projection import decoded_view, project
from dibao_audit.service import MASK, mask_personal
from dibao_audit.testing import recorded_event
from dibao_common.messaging.envelope import EventRegistry

REGISTRY = EventRegistry.default()


def test_a_roster_change_is_found_by_township_and_actor_and_viewed_masked() -> None:
    """An auditor finds who put whom on a township's roster by region and actor, and the
    decoded view shows the change, the role and the people by keyed hash, masked for a
    caller without a personal-data role."""
    message = intake_pb2.StaffRosterChanged(
        region=types_pb2.RegionCode(code="620123108000"),
        actor=types_pb2.Actor(subject="admin-lianda"),
        staff_id="0193a0c0-0000-7000-8000-000000000001",
        change=intake_pb2.STAFF_ROSTER_CHANGE_ADDED,
        role=intake_pb2.STAFF_ROLE_CASEWORKER,
        staff=types_pb2.PersonRef(keyed_hash="ab" * 32, hash_key_id="k1", masked_name="孙*"),
        responsible_caseworker=True,
        relatives=[
            intake_pb2.StaffRosterChanged.Relative(
                person=types_pb2.PersonRef(keyed_hash="cd" * 32, masked_name="李*"),
                relation="spouse",
            )
        ],
    )
    event = recorded_event(message, offset=7, key="620123108000", actor="admin-lianda")
    row = project(event, REGISTRY)
    assert row.ce_type == "dibao.intake.StaffRosterChanged.v1"
    assert (row.region, row.actor, row.household_id) == ("620123108000", "admin-lianda", None)
    view = decoded_view(event, REGISTRY)
    assert view is not None
    assert (view["change"], view["role"], view["staff_id"]) == (
        "STAFF_ROSTER_CHANGE_ADDED",
        "STAFF_ROLE_CASEWORKER",
        "0193a0c0-0000-7000-8000-000000000001",
    )
    assert view["staff"]["keyed_hash"] == "ab" * 32
    assert view["relatives"][0]["relation"] == "spouse"
    masked = mask_personal(view)
    assert masked["staff"]["keyed_hash"] == masked["staff"]["masked_name"] == MASK
    assert masked["relatives"][0]["person"]["keyed_hash"] == MASK
    assert masked["relatives"][0]["relation"] == "spouse"
