"""Canonical entries, signed notes and the offline verifier, without a database."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import itertools
import json
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dibao_audit import verifier, verify_cli
from dibao_audit.checkpoint import CheckpointError, CheckpointSigner, VerifierKey
from dibao_audit.entry import (
    MalformedEntryError,
    RecordedEvent,
    canonical_bytes,
    canonical_from_parts,
    entry_to_b64,
    header_block,
    parse_canonical,
    parse_header_block,
    split_canonical,
)
from dibao_audit.merkle import (
    Frontier,
    consistency_ranges,
    fold_subtrees,
    hash_ranges,
    leaf_hash,
    perfect_subtrees,
    range_cover,
)
from dibao_audit.verifier import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_V1,
    EXPORT_FORMAT_V2,
    ExportHeader,
    verify_export,
    verify_export_file,
)

SEED = hashlib.sha256(b"test audit key").digest()
AT = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def _event(i: int) -> RecordedEvent:
    return RecordedEvent(
        topic="dibao.intake.v1",
        partition=i % 3,
        offset=i,
        key=b"household-%d" % (i % 5),
        headers=(("ce_type", b"dibao.intake.HouseholdRegistered.v1"), ("ce_id", f"{i}".encode())),
        payload=f"payload {i}".encode(),
    )


class _Log:
    def __init__(
        self, n: int, checkpoint_every: int, events: list[RecordedEvent] | None = None
    ) -> None:
        self.signer = CheckpointSigner(SEED, "dibao.audit/test")
        self.events = events if events is not None else [_event(i) for i in range(n)]
        self.leaves = [leaf_hash(canonical_bytes(e)) for e in self.events]
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.notes: dict[int, str] = {}
        f = Frontier()
        for leaf in self.leaves:
            for level, index, h in f.append(leaf):
                self.nodes[(level, index)] = h
            if f.size % checkpoint_every == 0 or f.size == n:
                self.notes[f.size] = self.signer.sign(f.size, f.root(), AT)

    def export(self, start: int, end: int) -> tuple[ExportHeader, list[dict[str, Any]]]:
        size = max(self.notes)
        sizes = sorted(self.notes)
        cover_ranges = range_cover(start, end, size)
        consistency = {
            (a, b): hash_ranges(consistency_ranges(a, b), self.nodes.__getitem__)
            for a, b in itertools.pairwise(sizes)
        }
        header = ExportHeader(
            origin="dibao.audit/test",
            start=start,
            end=end,
            tree_size=size,
            checkpoint=self.notes[size],
            cover=dict(
                zip(cover_ranges, hash_ranges(cover_ranges, self.nodes.__getitem__), strict=True)
            ),
            history=[self.notes[s] for s in sizes[:-1]],
            consistency=consistency,
            format=EXPORT_FORMAT_V1,  # every earlier checkpoint: as services wrote until v2
        )
        lines = [
            {"index": i, "leaf_hash": self.leaves[i].hex(), "entry": entry_to_b64(self.events[i])}
            for i in range(start, end)
        ]
        return ExportHeader.from_json(header.to_json()), lines


def test_canonical_bytes_are_exact_and_header_order_free() -> None:
    e = RecordedEvent("t", 1, 2, b"k", (("b", b"2"), ("a", b"1")), b"P")
    swapped = RecordedEvent("t", 1, 2, b"k", (("a", b"1"), ("b", b"2")), b"P")
    keyless = RecordedEvent("t", 1, 2, None, (("a", b"1"), ("b", b"2")), b"P")
    expected = (
        b"\x00\x00\x00\x14dibao.audit.entry.v1"
        b"\x00\x00\x00\x01t"
        b"\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x02"
        b"\x01\x00\x00\x00\x01k"
        b"\x00\x00\x00\x02"
        b"\x00\x00\x00\x01a\x00\x00\x00\x011"
        b"\x00\x00\x00\x01b\x00\x00\x00\x012"
        b"\x00\x00\x00\x01P"
    )
    assert canonical_bytes(e) == expected == canonical_bytes(swapped)
    assert parse_canonical(canonical_bytes(e)) == swapped  # sorted on the way in
    assert parse_canonical(canonical_bytes(keyless)) == keyless
    with pytest.raises(MalformedEntryError):
        parse_canonical(canonical_bytes(e)[:-1])
    with pytest.raises(MalformedEntryError):
        parse_canonical(canonical_bytes(e) + b"x")
    assert canonical_bytes(keyless) == expected.replace(b"\x01\x00\x00\x00\x01k", b"\x00")


def test_a_key_flag_other_than_0_or_1_is_not_a_canonical_entry() -> None:
    """parse_canonical is the exact inverse of canonical_bytes: bytes it reads must be the
    ones it would write. A flag of 2 used to read as "no key", so two different leaves
    decoded to the same record."""
    keyless = canonical_bytes(RecordedEvent("t", 1, 2, None, (), b"P"))
    at = len(keyless) - len(b"\x00\x00\x00\x00" + b"\x00\x00\x00\x01P") - 1
    assert keyless[at] == 0
    for flag in (2, 0xFF):
        with pytest.raises(MalformedEntryError, match="key flag"):
            parse_canonical(keyless[:at] + bytes([flag]) + keyless[at + 1 :])


def test_split_canonical_gives_the_stored_parts_and_reads_nothing_else() -> None:
    """An export checks each entry's stored columns against the canonical bytes the
    database assembles (split_canonical); every prefix, a trailing byte, a bad key flag
    and a header name that is not UTF-8 are malformed, in split_canonical and in the
    rewritten parse_header_block alike."""
    headers = (("ce_type", b"x"), ("é", b"\x00" * 300), ("z", b""))
    for key in (None, b"", b"k"):
        for hs in ((), headers):
            e = RecordedEvent("dibao.t.v1", 3, 2**40, key, hs, b"payload")
            data = canonical_bytes(e)
            parts = split_canonical(data)
            assert parts == ("dibao.t.v1", 3, 2**40, key, header_block(hs), b"payload")
            assert canonical_from_parts(*parts) == data
            assert parse_header_block(parts[4]) == tuple(sorted(hs))
            for cut in range(len(data)):
                with pytest.raises(MalformedEntryError):
                    split_canonical(data[:cut])
            with pytest.raises(MalformedEntryError):
                split_canonical(data + b"x")
            block = header_block(hs)
            for cut in range(len(block)):
                with pytest.raises(MalformedEntryError):
                    parse_header_block(block[:cut])
            with pytest.raises(MalformedEntryError):
                parse_header_block(block + b"x")
    keyless = canonical_bytes(RecordedEvent("t", 1, 2, None, (), b"P"))
    at = len(keyless) - len(b"\x00\x00\x00\x00" + b"\x00\x00\x00\x01P") - 1
    with pytest.raises(MalformedEntryError, match="key flag"):
        split_canonical(keyless[:at] + b"\x02" + keyless[at + 1 :])
    with pytest.raises(MalformedEntryError, match="UTF-8"):
        parse_header_block(b"\x00\x00\x00\x01\x00\x00\x00\x01\xff\x00\x00\x00\x00")


def test_signed_note_round_trip_and_forgery() -> None:
    signer = CheckpointSigner(SEED, "dibao.audit/test")
    note = signer.sign(7, b"\x11" * 32, AT)
    assert note.startswith("dibao.audit/test\n7\n" + base64.b64encode(b"\x11" * 32).decode())
    assert "\n\n\u2014 dibao.audit/test " in note
    key = VerifierKey.parse(signer.verifier.vkey())
    cp = key.verify(note)
    assert (cp.tree_size, cp.root_hash, cp.signed_at) == (7, b"\x11" * 32, AT)
    with pytest.raises(CheckpointError, match="does not verify"):
        key.verify(note.replace("\n7\n", "\n8\n"))
    other = CheckpointSigner(hashlib.sha256(b"other").digest(), "dibao.audit/test")
    with pytest.raises(CheckpointError, match="no signature"):
        other.verifier.verify(note)
    for i in range(64):  # base64 keys with '+' in them parse too
        seed = hashlib.sha256(b"seed %d" % i).digest()
        vkey = CheckpointSigner(seed, "dibao.audit/test").verifier.vkey()
        assert VerifierKey.parse(vkey).vkey() == vkey
    with pytest.raises(CheckpointError, match="hash does not match"):
        VerifierKey.parse("dibao.audit/x+" + signer.verifier.vkey().split("+", 1)[1])


def test_a_whole_export_verifies() -> None:
    log = _Log(100, 16)
    header, lines = log.export(0, 100)
    report = verify_export(header, lines, log.signer.verifier)
    assert report.ok, report.problems
    assert report.checked == 100
    assert report.checkpoint is not None
    assert report.checkpoint.root_hash == fold_subtrees(
        [log.nodes[s] for s in perfect_subtrees(0, 100)]
    )


@pytest.mark.parametrize(("start", "end"), [(0, 40), (17, 100), (33, 34), (50, 50)])
def test_a_slice_verifies_with_its_cover(start: int, end: int) -> None:
    log = _Log(100, 16)
    header, lines = log.export(start, end)
    report = verify_export(header, lines, log.signer.verifier)
    assert report.ok, report.problems


def test_altered_content_is_named_by_index() -> None:
    log = _Log(100, 16)
    header, lines = log.export(0, 100)
    lines[57]["entry"] = entry_to_b64(dataclasses.replace(log.events[57], payload=b"richer"))
    report = verify_export(header, lines, log.signer.verifier)
    assert not report.ok
    assert report.first_bad_index == 57


def test_altered_content_and_leaf_hash_is_caught_by_the_signed_root() -> None:
    log = _Log(100, 16)
    header, lines = log.export(0, 100)
    forged = RecordedEvent("dibao.intake.v1", 0, 57, None, (), b"forged")
    lines[57]["entry"] = entry_to_b64(forged)
    lines[57]["leaf_hash"] = leaf_hash(canonical_bytes(forged)).hex()
    report = verify_export(header, lines, log.signer.verifier)
    assert not report.ok
    assert report.suspect_range == (48, 64)


def test_a_missing_entry_and_a_false_checkpoint_are_reported() -> None:
    log = _Log(40, 16)
    header, lines = log.export(0, 40)
    del lines[10]
    report = verify_export(header, lines, log.signer.verifier)
    assert report.first_bad_index == 10
    header, lines = log.export(0, 40)
    forged = CheckpointSigner(hashlib.sha256(b"mallory").digest(), "dibao.audit/test")
    bad = dataclasses.replace(header, checkpoint=forged.sign(40, b"\x00" * 32, AT))
    assert not verify_export(bad, lines, log.signer.verifier).ok


def test_a_slice_said_to_start_before_the_log_is_refused() -> None:
    """A header with a negative start shifts every leaf one place: the log's real last leaf
    comes from the cover, and a line "before the log" is hashed into nothing yet counted."""
    log = _Log(40, 16)
    header, lines = log.export(0, 40)
    forged = RecordedEvent("dibao.intake.v1", 0, 999, None, (), b"a forged entry")
    extra = {
        "index": -1,
        "leaf_hash": leaf_hash(canonical_bytes(forged)).hex(),
        "entry": entry_to_b64(forged),
    }
    shifted = dataclasses.replace(header, start=-1, end=39, cover={(39, 40): log.leaves[39]})
    report = verify_export(shifted, [extra, *lines[:39]], log.signer.verifier)
    assert not report.ok
    assert "range does not fit" in report.problems[0]


def test_a_rewritten_history_breaks_consistency() -> None:
    log = _Log(48, 16)
    header, lines = log.export(0, 48)
    rewritten = log.signer.sign(16, b"\x22" * 32, AT)
    bad = dataclasses.replace(header, history=[rewritten, header.history[1]])
    report = verify_export(bad, lines, log.signer.verifier)
    assert any("disagree" in p for p in report.problems)


@pytest.mark.parametrize("workers", [1, 3])
def test_an_export_file_is_scanned_in_parallel(tmp_path: Path, workers: int) -> None:
    log = _Log(500, 64)
    header, lines = log.export(0, 500)
    path = tmp_path / "export.jsonl"
    path.write_text(
        "\n".join(json.dumps(x) for x in [header.to_json(), *lines]) + "\n", encoding="utf-8"
    )
    report = verify_export_file(path, log.signer.verifier, workers=workers)
    assert report.ok, report.problems
    assert report.checked == 500
    lines[321]["entry"] = entry_to_b64(dataclasses.replace(log.events[321], offset=7))
    lines[400] = {"index": 400, "leaf_hash": lines[400]["leaf_hash"], "redacted": True}
    path.write_text(
        "\n".join(json.dumps(x) for x in [header.to_json(), *lines]) + "\n", encoding="utf-8"
    )
    report = verify_export_file(path, log.signer.verifier, workers=workers)
    assert report.first_bad_index == 321
    assert (report.checked, report.redacted) == (499, 1)


def test_levels_built_by_blocks_are_the_levels() -> None:
    leaves = b"".join(leaf_hash(b"%d" % i) for i in range(70_001))
    with ProcessPoolExecutor(2) as pool:
        assert verifier._levels_in(pool, leaves) == verifier.tree_levels(leaves)


def _file_and_reference(
    tmp_path: Path, log: _Log, text: list[str], workers: int
) -> tuple[verifier.Report, verifier.Report | None]:
    """The file verified by blocks, and its lines verified one JSON object at a time
    (None when they are not all JSON)."""
    path = tmp_path / "export.jsonl"
    path.write_bytes("".join(text).encode())
    by_file = verify_export_file(path, log.signer.verifier, workers=workers)
    header, entries = verifier.read_export("".join(text).splitlines())
    try:
        return by_file, verify_export(header, list(entries), log.signer.verifier)
    except ValueError:
        return by_file, None


@pytest.mark.parametrize("workers", [1, 2])
def test_blocks_checked_at_once_report_what_lines_checked_one_by_one_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    monkeypatch.setattr(verifier, "_BLOCK_BYTES", 3000)  # many blocks per share
    log = _Log(300, 64)
    header, lines = log.export(0, 300)
    good = [json.dumps(header.to_json()) + "\n"] + [json.dumps(x) + "\n" for x in lines]
    by_file, reference = _file_and_reference(tmp_path, log, good, workers)
    assert by_file.ok, by_file.problems
    assert reference is not None
    assert reference.ok
    assert by_file.checked == 300
    block = verifier._scan_block("".join(good[1:]).encode())  # the layout exports write
    assert block is not None
    assert block[:3] == (0, 300, None)
    assert block[3] == b"".join(log.leaves)

    altered = dict(lines[150], entry=entry_to_b64(dataclasses.replace(log.events[150], offset=9)))
    cases = {
        "altered entry": {151: json.dumps(altered) + "\n"},
        "stated leaf": {201: json.dumps(dict(lines[200], leaf_hash="00" * 32)) + "\n"},
        "missing line": {100: ""},
        "repeated line": {100: good[100] + good[100]},
        "not json": {120: '{"index": 119, "leaf_hash": \n'},
        "blank lines and CRLF": {50: "\n" + good[50], 60: good[60].replace("\n", "\r\n")},
        "not an entry": {
            70: json.dumps(dict(lines[69], entry=base64.b64encode(b"x" * 40).decode())) + "\n"
        },
        "index spelled otherwise": {80: good[80].replace('"index": 79,', '"index":79,')},
        "loose base64": {90: good[90].replace('"entry": "', '"entry": "\\n')},
    }
    for name, edits in cases.items():
        text = [edits.get(n, line) for n, line in enumerate(good)]
        by_file, reference = _file_and_reference(tmp_path, log, text, workers)
        if reference is None:
            assert name == "not json"
            assert by_file.first_bad_index == 119
        else:
            assert by_file.ok == reference.ok, name
            assert by_file.first_bad_index == reference.first_bad_index, name
            assert by_file.checked == reference.checked, name
        if name in ("blank lines and CRLF", "index spelled otherwise"):
            assert by_file.ok, (name, by_file.problems)
        else:
            assert not by_file.ok, name


def _share_starts(path: Path, workers: int) -> list[int]:
    """The byte offsets at which verify_export_file's shares of ``path`` begin."""
    data = path.read_bytes()
    body_start = data.index(b"\n") + 1
    step = max(1, (len(data) - body_start) // (workers * 8))
    return list(range(body_start, len(data), step))


@pytest.mark.parametrize(("start", "workers"), [(0, 1), (0, 3), (40, 3)])
def test_a_line_that_is_not_json_is_named_by_its_index_where_a_share_begins(
    tmp_path: Path, start: int, workers: int
) -> None:
    """A line that is not even JSON is named by the entry it follows, also when it is the
    first line of a share or of the export (each share used to count from -1)."""
    log = _Log(300, 64)
    header, lines = log.export(start, 300)
    text = [json.dumps(header.to_json()) + "\n"] + [json.dumps(x) + "\n" for x in lines]
    path = tmp_path / "export.jsonl"
    path.write_text("".join(text), encoding="utf-8")
    offsets = list(itertools.accumulate(len(t.encode()) for t in text))  # each line's end
    bound = _share_starts(path, workers)[3]
    # The first line beginning at or after the fourth share's bound opens that share.
    opening = next(n for n in range(1, len(text)) if offsets[n - 1] >= bound)
    for n in (1, opening):
        broken = list(text)
        broken[n] = "x" * (len(text[n]) - 1) + "\n"  # same length: the same shares
        path.write_text("".join(broken), encoding="utf-8")
        report = verify_export_file(path, log.signer.verifier, workers=workers)
        index = start + n - 1
        assert report.first_bad_index == index, report.problems
        assert report.problems[0].startswith(f"line after entry {index - 1} is malformed")


def _rewritten(n: int, checkpoint_every: int, index: int) -> _Log:
    """The same log with entry ``index`` replaced, every checkpoint signed anew by the same
    key: what a service holding the key (or whoever took it) can make."""
    events = [_event(i) for i in range(n)]
    events[index] = dataclasses.replace(events[index], payload=b"a payment never approved")
    return _Log(n, checkpoint_every, events)


def _write(path: Path, header: ExportHeader, lines: list[dict[str, Any]]) -> Path:
    text = [json.dumps(header.to_json()), *(json.dumps(x) for x in lines)]
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def test_a_rewritten_log_verifies_on_its_own_but_not_against_a_kept_checkpoint(
    tmp_path: Path,
) -> None:
    """The auditor's question: from the export and a checkpoint I kept, was anything
    changed since? A log rewritten from entry 5 on and signed anew is consistent in
    itself (its own history and proofs); only the kept checkpoint tells."""
    honest, forged = _Log(100, 16), _rewritten(100, 16, 5)
    key = honest.signer.verifier
    kept_in_history = honest.notes[48]
    kept_elsewhere = honest.signer.sign(50, root_of_leaves(honest.leaves[:50]), AT)
    header, lines = forged.export(0, 100)
    assert verify_export(header, lines, key).ok  # the export alone cannot tell
    for note, problem in (
        (kept_in_history, "another root for size 48"),
        (kept_elsewhere, "root of the checkpoint you kept (50)"),
    ):
        report = verify_export(header, lines, key, kept=[note])
        assert not report.ok
        assert any(problem in p for p in report.problems), report.problems
        path = _write(tmp_path / "forged.jsonl", header, lines)
        kept_file = tmp_path / "kept.txt"
        kept_file.write_text(note, encoding="utf-8")
        args = ["--export", str(path), "--vkey", key.vkey(), "--checkpoint", str(kept_file)]
        out = io.StringIO()
        assert verify_cli.run(verify_cli._parse_args(args), out) == 1
        assert json.loads(out.getvalue())["ok"] is False

    header, lines = honest.export(0, 100)
    report = verify_export(header, lines, key, kept=[kept_in_history, kept_elsewhere])
    assert report.ok, report.problems
    assert report.kept_checked == 2
    path = _write(tmp_path / "honest.jsonl", header, lines)
    kept_file = tmp_path / "kept.json"  # as GET /audit/checkpoints/latest answers
    kept_file.write_text(json.dumps({"tree_size": 48, "signed_note": kept_in_history}))
    args = ["--export", str(path), "--vkey", key.vkey(), "--checkpoint", str(kept_file)]
    out = io.StringIO()
    assert verify_cli.run(verify_cli._parse_args(args), out) == 0
    assert json.loads(out.getvalue())["kept_checkpoints_checked"] == 1


def test_a_kept_checkpoint_the_export_cannot_place_is_not_passed_over(tmp_path: Path) -> None:
    """A slice proves only its own range: a kept checkpoint it does not name, or one larger
    than the export's, needs a consistency proof (--url); offline it is a problem, never
    silently skipped. A checkpoint signed by another key is refused."""
    honest = _Log(100, 16)
    key = honest.signer.verifier
    header, lines = honest.export(17, 100)
    in_history = honest.notes[32]
    not_named = honest.signer.sign(50, root_of_leaves(honest.leaves[:50]), AT)
    later = honest.signer.sign(101, b"\x33" * 32, AT)
    report = verify_export(header, lines, key, kept=[in_history, not_named, later])
    assert report.ok, report.problems
    assert report.kept_checked == 1
    assert sorted(c.tree_size for c in report.unrelated) == [50, 101]
    path = _write(tmp_path / "slice.jsonl", header, lines)
    for note in (not_named, later):
        kept_file = tmp_path / "kept.txt"
        kept_file.write_text(note, encoding="utf-8")
        args = ["--export", str(path), "--vkey", key.vkey(), "--checkpoint", str(kept_file)]
        out = io.StringIO()
        assert verify_cli.run(verify_cli._parse_args(args), out) == 1
        assert "cannot be checked" in json.loads(out.getvalue())["problems"][0]
    other = CheckpointSigner(hashlib.sha256(b"another key").digest(), "dibao.audit/test")
    foreign = other.sign(32, honest_root(honest, 32), AT)
    report = verify_export(header, lines, key, kept=[foreign])
    assert any(p.startswith("kept checkpoint: no signature") for p in report.problems)


def root_of_leaves(leaves: list[bytes]) -> bytes:
    f = Frontier()
    for leaf in leaves:
        f.push(leaf)
    return f.root()


def honest_root(log: _Log, size: int) -> bytes:
    return root_of_leaves(log.leaves[:size])


def test_the_cli_tells_a_verification_that_could_not_run_from_a_problem_found(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 is 'a problem found' (a report names it), 2 'could not run' (the reason on
    stderr). A damaged header, a missing file or no pinned key used to end in a traceback
    or a bare message with exit 1, as if the log had been found altered; a line whose
    index is 1e400 ended the verifier in a traceback."""
    log = _Log(20, 8)
    key = log.signer.verifier.vkey()
    header, lines = log.export(0, 20)
    good = json.dumps(header.to_json())
    damaged_headers = [
        "[]",
        '"text"',
        good.replace('"cover": [', '"cover": 5, "x": ['),
        good.replace('"start": 0', '"start": null'),
        good.replace('"history": [', '"history": 7, "x": ['),
        "not json",
        "",
    ]
    path = tmp_path / "export.jsonl"
    for first in damaged_headers:
        path.write_text("\n".join([first, *(json.dumps(x) for x in lines)]) + "\n")
        assert verify_cli.main(["--export", str(path), "--vkey", key]) == 2, first
        assert "verification could not run" in capsys.readouterr().err
    missing = str(tmp_path / "missing.jsonl")
    for argv in (
        ["--export", missing, "--vkey", key],
        ["--export", str(path), "--vkey-file", missing],
        ["--export", str(path), "--vkey", key, "--checkpoint", missing],
        ["--export", str(path)],  # no pinned key
    ):
        assert verify_cli.main(argv) == 2, argv
        assert "verification could not run" in capsys.readouterr().err

    lines[7] = dict(lines[7], index=float("inf"))
    text = json.dumps(header.to_json()) + "\n" + "\n".join(json.dumps(x) for x in lines)
    path.write_text(text.replace("Infinity", "1e400") + "\n")
    assert verify_cli.main(["--export", str(path), "--vkey", key, "--workers", "1"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["first_bad_index"] == 7, report
    header_obj, entries = verifier.read_export(path.read_text().splitlines())
    assert verify_export(header_obj, list(entries), log.signer.verifier).first_bad_index == 7


def test_stated_leaves_shifted_between_two_lines_are_reported_by_blocks_too(
    tmp_path: Path,
) -> None:
    """The block path compared the stated leaves of a whole block as one string, so a hex
    digit moved from one line's leaf_hash to the next (63 and 65 digits, neither a hash)
    passed there, while the same lines read one by one are a problem."""
    log = _Log(40, 16)
    header, lines = log.export(0, 40)
    a, b = lines[20]["leaf_hash"], lines[21]["leaf_hash"]
    lines[20] = dict(lines[20], leaf_hash=a[:-1])
    lines[21] = dict(lines[21], leaf_hash=a[-1] + b)
    assert verifier._scan_block("".join(json.dumps(x) + "\n" for x in lines).encode()) is None
    text = [json.dumps(header.to_json()) + "\n"] + [json.dumps(x) + "\n" for x in lines]
    by_file, reference = _file_and_reference(tmp_path, log, text, 1)
    assert reference is not None
    assert (by_file.ok, by_file.first_bad_index) == (reference.ok, reference.first_bad_index)
    assert reference.first_bad_index == 20


def _v2(
    log: _Log, start: int, end: int, since: int | None, form: str = EXPORT_FORMAT_V2
) -> tuple[ExportHeader, list[Any]]:
    """A v2 (or, ``form``, v3) export of ``log``: its latest checkpoint and, from
    ``since``, one proof; read back from its JSON."""
    v1, lines = log.export(start, end)
    size = v1.tree_size
    history, consistency = [], {}
    if since is not None:
        history = [log.notes[since]]
        consistency = {
            (since, size): hash_ranges(consistency_ranges(since, size), log.nodes.__getitem__)
        }
    header = dataclasses.replace(v1, history=history, consistency=consistency, format=form)
    return ExportHeader.from_json(json.loads(json.dumps(header.to_json()))), lines


def test_a_v2_header_carries_one_earlier_checkpoint_and_its_proof(tmp_path: Path) -> None:
    """v1 headers carried every earlier checkpoint and a proof per pair: they grew with the
    log's age. v2 carries the one the auditor named (from_size) and the proof from it; a
    kept checkpoint of that size is checked offline as before, a rewritten one is not."""
    log = _Log(100, 16)
    key = log.signer.verifier
    header, lines = _v2(log, 17, 100, 32)
    text = header.to_json()
    assert text["format"] == "dibao.audit.export.v2"
    assert "history" not in text
    assert text["from"]["tree_size"] == 32
    report = verify_export(header, lines, key, kept=[log.notes[32]])
    assert report.ok, report.problems
    assert report.kept_checked == 1
    path = _write(tmp_path / "slice.jsonl", header, lines)
    kept_file = tmp_path / "kept.txt"
    kept_file.write_text(log.notes[32], encoding="utf-8")
    args = ["--export", str(path), "--vkey", key.vkey(), "--checkpoint", str(kept_file)]
    assert verify_cli.run(verify_cli._parse_args(args), io.StringIO()) == 0

    forged = _rewritten(100, 16, 5)
    header, lines = _v2(forged, 0, 100, 32)
    report = verify_export(header, lines, key, kept=[log.notes[32]])
    assert any("another root for size 32" in p for p in report.problems), report.problems
    bad = dataclasses.replace(
        header, consistency={(32, 100): [b"\x11" * 32 for _ in header.consistency[(32, 100)]]}
    )
    assert any("disagree" in p for p in verify_export(bad, lines, key).problems)

    plain, lines = _v2(log, 0, 100, None)
    assert plain.to_json()["from"] is None
    assert verify_export(plain, lines, key).ok
    with pytest.raises(ValueError, match="at most one"):
        dataclasses.replace(plain, history=[log.notes[16], log.notes[32]]).to_json()


def test_a_v3_header_names_the_earlier_checkpoint_as_the_request_does(tmp_path: Path) -> None:
    """v2 called the checkpoint asked for with `from_size` `from` (`tree_size`,
    `checkpoint`, `proof`) while the request and GET /audit/proofs/consistency say
    `from_size`. v3 (what the service writes since 2 Dec 2026) names it `from_size`,
    `from_checkpoint`, `consistency_proof`, all null when none was asked for; a v2 export
    still verifies, and a v3 header lacking one of them is refused as damaged, never read
    as one without an earlier checkpoint (which would skip the check silently)."""
    log = _Log(100, 16)
    key = log.signer.verifier
    header, lines = _v2(log, 17, 100, 32, EXPORT_FORMAT)
    text = header.to_json()
    assert text["format"] == EXPORT_FORMAT == "dibao.audit.export.v3"
    assert "from" not in text
    assert text["from_size"] == 32
    assert text["from_checkpoint"] == log.notes[32]
    assert text["consistency_proof"] == [p.hex() for p in header.consistency[(32, 100)]]
    report = verify_export(header, lines, key, kept=[log.notes[32]])
    assert report.ok, report.problems
    assert report.kept_checked == 1
    kept_file = tmp_path / "kept.txt"
    kept_file.write_text(log.notes[32], encoding="utf-8")
    for form in (EXPORT_FORMAT, EXPORT_FORMAT_V2):
        header, lines = _v2(log, 17, 100, 32, form)
        path = _write(tmp_path / f"{form}.jsonl", header, lines)
        args = ["--export", str(path), "--vkey", key.vkey(), "--checkpoint", str(kept_file)]
        assert verify_cli.run(verify_cli._parse_args(args), io.StringIO()) == 0, form
    plain, _ = _v2(log, 0, 100, None, EXPORT_FORMAT)
    nulls = plain.to_json()
    assert (nulls["from_size"], nulls["from_checkpoint"], nulls["consistency_proof"]) == (
        None,
        None,
        None,
    )
    for member in ("from_size", "from_checkpoint", "consistency_proof"):
        damaged = {k: v for k, v in text.items() if k != member}
        with pytest.raises(ValueError, match="damaged"):
            ExportHeader.from_json(damaged)
        with pytest.raises(ValueError, match="damaged"):
            ExportHeader.from_json(text | {member: None})


def test_a_v1_export_still_verifies(tmp_path: Path) -> None:
    log = _Log(100, 16)
    header, lines = log.export(0, 100)
    assert header.to_json()["format"] == EXPORT_FORMAT_V1
    assert len(header.to_json()["history"]) == 6
    path = _write(tmp_path / "v1.jsonl", header, lines)
    args = ["--export", str(path), "--vkey", log.signer.verifier.vkey()]
    assert verify_cli.run(verify_cli._parse_args(args), io.StringIO()) == 0


def test_listed_checkpoints_inside_a_slice_must_be_the_roots_of_its_first_leaves() -> None:
    """Every listed checkpoint whose size falls in ``(start, end]`` of a slice is made from
    the cover and the slice's leaves, for every slice of trees up to 33 leaves: a true one
    passes, one signed for another root fails (it passed: a slice checked none)."""
    for size in [*range(1, 20), 31, 32, 33]:
        log = _Log(size, size)
        key = log.signer.verifier
        true = [key.verify(log.signer.sign(s, honest_root(log, s), AT)) for s in range(size + 1)]
        false = [key.verify(log.signer.sign(s, b"\x07" * 32, AT)) for s in range(size + 1)]
        for start, end in itertools.combinations(range(size + 1), 2):
            header, lines = _v2(log, start, end, None)
            listed = true[start + 1 : end + 1]
            report = verify_export(header, lines, key, listed=listed)
            assert report.ok, (size, start, end, report.problems)
            report = verify_export(header, lines, key, listed=[*listed[:-1], false[end]])
            if end < size:  # at the export's own size, it is compared with the export's
                assert report.problems == [verifier._not_listed_root(end)], (size, start, end)
