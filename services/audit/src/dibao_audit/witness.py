"""A witness of the audit log: ``python -m dibao_audit.witness`` (C2SP tlog-witness).

A second party that cosigns each checkpoint it is shown, once it has checked that the
checkpoint is signed by a log key it pinned and consistent with the latest one it cosigned
for that origin (docs/adr/0024). Its state is its own: one small JSON file, the latest
cosigned checkpoint per origin, replaced atomically (written beside, fsynced, renamed, the
directory fsynced) under a file lock, so no request can roll it back and nothing the log's
database says is trusted. What contradicts that state while signed by the log's key (a
consistency proof that fails, another root for the size it holds) is appended to an
evidence file (JSON lines, fsynced) and never cosigned.

``POST /add-checkpoint``: the body is ``old <size>``, up to 63 consistency proof lines
(base64), a blank line, then the signed checkpoint. Answers, as the protocol says: 200 with
the cosignature line(s); 400 a malformed request or an old size above the checkpoint's; 403
no signature by a pinned key; 404 an origin it witnesses not; 409 ``text/x.tlog.size`` with
the size it holds when ``old`` is not it, and 409 when a checkpoint of the size it holds
has another root; 422 a consistency proof that does not verify. Errors other than the
size's 409 are problem+json.

Configuration (environment; the seed only there, never on the command line):
``DIBAO_WITNESS_SIGNING_KEY`` base64 of its 32-byte Ed25519 seed; ``--name`` (or
``DIBAO_WITNESS_NAME``); ``--log-vkey`` repeatable (or ``DIBAO_WITNESS_LOG_VKEYS``, comma-
separated), the log keys it pins, each trusted for its origin; ``--state`` (or
``DIBAO_WITNESS_STATE``) the state file. ``--print-vkey`` prints its own vkey and exits.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response

from dibao_audit.checkpoint import CheckpointError, VerifierKey
from dibao_audit.cosignature import Cosigner
from dibao_audit.merkle import EMPTY_ROOT, ProofError, verify_consistency
from dibao_common.errors import problem_response

STATE_FORMAT = "dibao.witness.state.v1"
SIZE_MEDIA_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
MAX_BODY_BYTES = 64 * 1024
Clock = Callable[[], float]


class BadSubmission(ValueError):  # noqa: N818 - what a 400 is
    """A request body that is not an add-checkpoint request."""


@dataclass(frozen=True, slots=True)
class Submission:
    old_size: int
    proof: list[bytes]
    note: str


def parse_submission(body: bytes) -> Submission:
    """The old size, the proof and the checkpoint of an add-checkpoint body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSubmission("the body is not UTF-8") from exc
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise BadSubmission("the body has no blank line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    digits = first[4:]
    if not first.startswith("old ") or not digits.isascii() or not digits.isdigit():
        raise BadSubmission("the first line is 'old <size>'")
    if len(digits) > 1 and digits.startswith("0"):
        raise BadSubmission("the old size has no leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise BadSubmission(f"at most {MAX_PROOF_LINES} consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            raw = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise BadSubmission("a consistency proof line is one base64 hash") from exc
        if len(raw) != 32:
            raise BadSubmission("a consistency proof line is one 32-byte hash")
        proof.append(raw)
    if not note.endswith("\n"):
        raise BadSubmission("the checkpoint ends with a newline")
    return Submission(int(digits), proof, note)


@dataclass(frozen=True, slots=True)
class Held:
    """The latest checkpoint the witness cosigned for one origin."""

    size: int
    root: bytes
    note: str


class WitnessState:
    """The state file: the latest cosigned checkpoint per origin, and the evidence file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.evidence_path = path.with_name(path.name + ".evidence.jsonl")
        self._lock_path = path.with_name(path.name + ".lock")
        self._thread_lock = threading.Lock()

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Held]]:
        """The state, read under the process's and the file's lock (check and update are
        one step: two requests never both move it, and none rolls it back)."""
        with self._thread_lock, self._lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield self.read()
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read(self) -> dict[str, Held]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if raw.get("format") != STATE_FORMAT:
            raise ValueError(f"{self.path} is not a {STATE_FORMAT} file")
        return {
            origin: Held(int(v["size"]), base64.b64decode(v["root"]), str(v["checkpoint"]))
            for origin, v in raw["logs"].items()
        }

    def write(self, logs: dict[str, Held]) -> None:
        """Replace the file atomically and durably (call inside :meth:`locked`)."""
        body = {
            "format": STATE_FORMAT,
            "logs": {
                origin: {
                    "size": h.size,
                    "root": base64.b64encode(h.root).decode(),
                    "checkpoint": h.note,
                }
                for origin, h in sorted(logs.items())
            },
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            json.dump(body, out, indent=1)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(self.path)
        _fsync_dir(self.path.parent)

    def record_evidence(self, evidence: dict[str, Any]) -> None:
        with self.evidence_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(evidence, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        _fsync_dir(self.path.parent)

    def evidence(self) -> list[dict[str, Any]]:
        try:
            text = self.evidence_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _log_error(event: str, **fields: object) -> None:
    """One JSON line on stderr, as the services log (the process configures no logging)."""
    sys.stderr.write(json.dumps({"event": event, "level": "error", **fields}) + "\n")
    sys.stderr.flush()


def _problem(status: int, slug: str, title: str, detail: str) -> Response:
    return problem_response(status, slug, title, detail, instance="/add-checkpoint")


class Witness:
    """Checks and cosigns submitted checkpoints (the HTTP route calls :meth:`add`)."""

    def __init__(
        self,
        cosigner: Cosigner,
        log_keys: Sequence[VerifierKey],
        state: WitnessState,
        *,
        clock: Clock = time.time,
    ) -> None:
        if not log_keys:
            raise ValueError("a witness pins at least one log key")
        self.cosigner = cosigner
        self.state = state
        self._clock = clock
        self._keys: dict[str, list[VerifierKey]] = {}
        for key in log_keys:
            self._keys.setdefault(key.name, []).append(key)

    def add(self, body: bytes) -> Response:
        try:
            sub = parse_submission(body)
        except BadSubmission as exc:
            return _problem(400, "bad-request", "Bad Request", str(exc))
        origin = sub.note.split("\n", 1)[0]
        keys = self._keys.get(origin)
        if keys is None:
            return _problem(
                404, "unknown-log", "Unknown log", "This witness witnesses no log of that origin"
            )
        checkpoint = None
        for key in keys:
            try:
                checkpoint = key.verify(sub.note)
            except CheckpointError:
                continue
            break
        if checkpoint is None:
            return _problem(
                403,
                "not-signed",
                "Forbidden",
                "The checkpoint has no valid signature by a pinned log key",
            )
        size, root = checkpoint.tree_size, checkpoint.root_hash
        if sub.old_size > size:
            return _problem(
                400, "bad-request", "Bad Request", "The old size is larger than the checkpoint's"
            )
        with self.state.locked() as logs:
            held = logs.get(origin)
            known = Held(0, EMPTY_ROOT, "") if held is None else held
            if sub.old_size != known.size:
                return PlainTextResponse(f"{known.size}\n", 409, media_type=SIZE_MEDIA_TYPE)
            try:
                verify_consistency(known.size, size, known.root, root, sub.proof)
            except ProofError as exc:
                same_size = known.size == size
                if held is None:  # nothing cosigned to contradict: a bad request only
                    return _problem(
                        422, "inconsistent", "Unprocessable Entity", f"A bad proof from 0: {exc}"
                    )
                seen_at = datetime.fromtimestamp(self._clock(), UTC).isoformat()
                kind = "another root for a size cosigned" if same_size else "inconsistent"
                self.state.record_evidence(
                    {
                        "seen_at": seen_at,
                        "origin": origin,
                        "kind": kind,
                        "cosigned": known.note,
                        "submitted": sub.note,
                        "old_size": sub.old_size,
                        "proof": [base64.b64encode(p).decode() for p in sub.proof],
                        "error": str(exc),
                    }
                )
                # And one line in its log, where its operator's alerts look (the file
                # holds the notes): a checkpoint carries no personal data.
                _log_error(
                    "witness_evidence_recorded",
                    origin=origin,
                    kind=kind,
                    cosigned_size=known.size,
                    submitted_size=size,
                    evidence_file=str(self.state.evidence_path),
                    timestamp=seen_at,
                )
                if same_size:
                    return _problem(
                        409,
                        "fork",
                        "Conflict",
                        f"This witness cosigned another root for tree size {size}: a fork "
                        "(recorded)",
                    )
                return _problem(
                    422,
                    "inconsistent",
                    "Unprocessable Entity",
                    f"The consistency proof from {known.size} to {size} does not verify: {exc}",
                )
            line = self.cosigner.cosign(sub.note, int(self._clock()))
            if held is None or size > held.size:
                logs[origin] = Held(size, root, sub.note)
                self.state.write(logs)
        return PlainTextResponse(line, 200)


def create_app(witness: Witness) -> FastAPI:
    app = FastAPI(title="dibao audit witness", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _problem(413, "too-large", "Content Too Large", "At most 64 KB")
        # The file lock and fsyncs block: off the event loop.
        return await _in_thread(witness.add, body)

    return app


async def _in_thread(fn: Callable[[bytes], Response], body: bytes) -> Response:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, body)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m dibao_audit.witness", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--name", default=os.environ.get("DIBAO_WITNESS_NAME"))
    parser.add_argument("--log-vkey", action="append", default=[])
    parser.add_argument("--state", type=Path, default=os.environ.get("DIBAO_WITNESS_STATE"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8015)
    parser.add_argument("--print-vkey", action="store_true")
    return parser.parse_args(argv)


def _seed() -> bytes:
    value = os.environ.get("DIBAO_WITNESS_SIGNING_KEY", "")
    try:
        seed = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError("DIBAO_WITNESS_SIGNING_KEY is not base64") from exc
    if len(seed) != 32:
        raise ValueError("DIBAO_WITNESS_SIGNING_KEY must decode to a 32-byte Ed25519 seed")
    return seed


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if not args.name:
            raise ValueError("give the witness's name (--name or DIBAO_WITNESS_NAME)")
        cosigner = Cosigner(_seed(), args.name)
        if args.print_vkey:
            sys.stdout.write(cosigner.key.vkey() + "\n")
            return 0
        pinned = [*args.log_vkey, *os.environ.get("DIBAO_WITNESS_LOG_VKEYS", "").split(",")]
        keys = [VerifierKey.parse(v) for v in pinned if v.strip()]
        if not keys:
            raise ValueError("pin the log's key (--log-vkey or DIBAO_WITNESS_LOG_VKEYS)")
        if args.state is None:
            raise ValueError("give the state file (--state or DIBAO_WITNESS_STATE)")
        state = WitnessState(Path(args.state))
        state.read()  # a damaged state file stops it here, not at the first request
        witness = Witness(cosigner, keys, state)
    except (ValueError, CheckpointError, OSError) as exc:
        sys.stderr.write(f"the witness cannot start: {exc}\n")
        return 2
    import uvicorn

    uvicorn.run(create_app(witness), host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
