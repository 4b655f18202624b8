"""Loads the demo district into a running intake service: ``python -m dibao_intake.demo``.

Chengguan District of Lanzhou (620102, the seed's district, urban communities) and Yuzhong
County beside it (620123, villages): each township's roster (its responsible caseworker,
civil-affairs worker and official in charge, and its villages' committee members), about
fifty synthetic households of a caseload's composition and realistic income, and a dozen
submitted applications, so that their events are on Kafka. Everything goes through the public API
with a development token, so the service validates it and publishes through its outbox.

Running it again loads nothing twice. A load that ran to its end wrote
``<state>/intake-demo-application.json``, the body of one more complete application for
the README's "submit an application" command: when the household it names is on file, the
demo is there and nothing is sent (the idempotent answers the requests below would replay
are kept only seven days, and an earlier version of this loader sent other bodies under the
same keys). A load cut short is finished by running it again: every request carries a fixed
``Idempotency-Key`` and the data is generated from a fixed seed, so what was done replays.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from dibao_common.clock import Clock, SystemClock
from dibao_common.devtoken import mint
from dibao_intake.domain.codes import AreaType, Sex
from dibao_intake.synthetic import (
    PlannedHousehold,
    Synthesizer,
    application_payload,
    multipart_upload,
    pdf_bytes,
    required_documents,
)

SEED = "dibao demo district 2026"
REFERENCE_DAY = date(2026, 11, 1)
"""Birth dates are drawn relative to this fixed day, so every run makes the same people.
The documents handed in are those the service asks for on the day of the load (its
completeness rules judge ages on its own day: a child who has turned 16 since shows an ID
card), so that the applications load as complete whenever ``make up`` runs."""
SUBJECT = "demo-loader"
EXAMPLE_FILE = "intake-demo-application.json"

# (village or community, urban/rural, street address pattern, households)
VILLAGES: tuple[tuple[str, AreaType, str, int], ...] = (
    ("620102001001", AreaType.URBAN, "城关区畅家巷{n}号{u}单元", 7),
    ("620102001002", AreaType.URBAN, "城关区张家园{n}号{u}单元", 6),
    ("620102003001", AreaType.URBAN, "城关区雁宁路{n}号{u}单元", 6),
    ("620102008004", AreaType.URBAN, "城关区榆中街{n}号{u}单元", 6),
    ("620123100001", AreaType.URBAN, "榆中县城关镇兴隆路{n}号", 5),
    ("620123101203", AreaType.RURAL, "榆中县夏官营镇夏官营村{u}社{n}号", 7),
    ("620123101201", AreaType.RURAL, "榆中县夏官营镇过店子村{u}社{n}号", 5),
    ("620123104201", AreaType.RURAL, "榆中县和平镇和平村{u}社{n}号", 5),
    ("620123100201", AreaType.RURAL, "榆中县城关镇兴隆山村{u}社{n}号", 4),
)
TOWNSHIP_STAFF: tuple[tuple[str, int, bool], ...] = (
    ("caseworker", 1, True),
    ("dibao_staff", 1, False),
    ("township_official", 1, False),
)
"""(role, how many, responsible caseworker) on each township's roster."""
COMMITTEE_MEMBERS = 2
"""Village committee members on the roster for each village or community: its director
and the member in charge of civil affairs."""
RELATED_VILLAGE = "620123101203"
APPLICATIONS = 12
RETURNED = 2
STATEMENTS = (
    "家中主要劳动力收入不稳定，老人长期患病，生活困难，申请最低生活保障。",
    "本人年老体弱，无固定收入，子女在外务工无力赡养，申请低保。",
    "配偶重度残疾需长期照料，家庭收入低于当地保障标准。",
    "失业后仅靠零工维持生活，孩子上学开支大，申请最低生活保障。",
)


class DemoSettings(BaseSettings):
    """What the loader needs: the token issuer and audience, and where the dev keys are."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore")

    jwt_issuer: str
    jwt_audience: str
    instance: str = "dev"
    state_dir: Path | None = None

    @property
    def state(self) -> Path:
        return self.state_dir if self.state_dir is not None else Path(".local") / self.instance


class RefusedError(RuntimeError):
    """The service refused one of the demo's requests (a 4xx)."""


@dataclass
class Loaded:
    households: int = 0
    applications: int = 0
    returned: int = 0
    replayed: int = 0


class DemoLoader:
    def __init__(self, http: httpx.Client, token: str, today: date) -> None:
        self.http = http
        self.token = token
        self.today = today
        """The service's day (China's), on which it judges an application complete."""
        self.loaded = Loaded()

    def on_file(self, household_id: str) -> bool:
        """Whether the household is registered (a GET, recorded as every read is)."""
        response = self.http.get(
            f"/households/{household_id}", headers={"Authorization": f"Bearer {self.token}"}
        )
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise RuntimeError(
                f"GET /households/{household_id}: {response.status_code} {response.text}"
            )
        return True

    def post(self, path: str, key: str, **kwargs: Any) -> dict[str, Any]:
        """POST with a fixed Idempotency-Key; the answer of an earlier run when there was one."""
        headers = {"Authorization": f"Bearer {self.token}", "Idempotency-Key": f"demo:{key}"}
        headers |= kwargs.pop("headers", {})
        response = self.http.post(path, headers=headers, **kwargs)
        if 400 <= response.status_code < 500:
            raise RefusedError(f"POST {path} ({key}): {response.status_code} {response.text}")
        if response.status_code >= 500:
            raise RuntimeError(f"POST {path} ({key}): {response.status_code} {response.text}")
        if response.headers.get("idempotent-replayed") == "true":
            self.loaded.replayed += 1
        body: dict[str, Any] = response.json() if response.content else {}
        return body

    def roster(self, plans: list[PlannedHousehold], synthesizer: Synthesizer) -> None:
        """Each township's roster (ADR 0021): its responsible caseworker, a civil-affairs
        office worker and the official in charge (the seed's town reviews what its village
        committees report, through its civil-affairs office), and the committee members of
        each of its villages and communities who do the dibao work (the seed's village
        committees collect the applications, verify and post the lists)."""
        for township in sorted({village[:9] + "000" for village, *_ in VILLAGES}):
            for role, count, responsible in TOWNSHIP_STAFF:
                for n in range(count):
                    body = self._staff(synthesizer, township, role)
                    if responsible:
                        body |= {"subject": f"cw-{township}", "responsible_caseworker": True}
                    self.post(
                        f"/townships/{township}/staff", f"staff-{role}-{township}-{n}", json=body
                    )
        # A committee member of 夏官营村 is a sibling of the head of a demo household there:
        # that household's application is flagged for a county visit.
        sibling = plans[next(i for i, p in enumerate(plans) if p.region_code == RELATED_VILLAGE)]
        relative = sibling.members[0]
        for village, *_ in VILLAGES:
            township = village[:9] + "000"
            for n in range(COMMITTEE_MEMBERS):
                body = self._staff(synthesizer, township, "village_committee")
                if village == RELATED_VILLAGE and n == 0:
                    body["relatives"] = [
                        {
                            "name": relative.name,
                            "id_number": relative.id_number,
                            "relation": "sibling",
                        }
                    ]
                self.post(
                    f"/townships/{township}/staff", f"staff-committee-{village}-{n}", json=body
                )

    @staticmethod
    def _staff(synthesizer: Synthesizer, township: str, role: str) -> dict[str, Any]:
        """A staff member of ``role``, a person of the township's county aged 28 to 58."""
        sex = synthesizer.rng.choice((Sex.MALE, Sex.FEMALE))
        born = synthesizer.birth_date(28, 58)
        return {
            "name": synthesizer.name(sex),
            "role": role,
            "id_number": synthesizer.id_number(born, sex, township[:6]),
        }

    def household(self, index: int, plan: PlannedHousehold) -> tuple[str, list[str]]:
        body = self.post("/households", f"household-{index}", json=plan.payload())
        self.loaded.households += 1
        people = body["members"]
        return body["id"], [m["person_id"] for m in people]

    def documents(
        self, index: int, household_id: str, person_ids: list[str], plan: PlannedHousehold
    ) -> list[str]:
        ids = []
        for number, (kind, member) in enumerate(required_documents(plan, self.today)):
            person = person_ids[member] if member is not None else None
            data = {"household_id": household_id, "document_type": kind}
            if person is not None:
                data["person_id"] = person
            upload, content_type = multipart_upload(
                data, pdf_bytes(f"demo {index} {kind} {number}"), filename=f"{kind}.pdf"
            )
            body = self.post(
                "/documents",
                f"document-{index}-{number}",
                content=upload,
                headers={"content-type": content_type},
            )
            ids.append(body["id"])
        return ids

    def application(
        self,
        index: int,
        household_id: str,
        person_ids: list[str],
        plan: PlannedHousehold,
        *,
        complete: bool,
    ) -> dict[str, Any]:
        documents = self.documents(index, household_id, person_ids, plan) if complete else []
        body = application_payload(
            household_id,
            person_ids,
            plan,
            documents,
            statement=STATEMENTS[index % len(STATEMENTS)],
        )
        out = self.post("/applications", f"application-{index}", json=body)
        self.loaded.applications += 1
        if out["status"] == "returned":
            self.loaded.returned += 1
        return out


def plans() -> tuple[Synthesizer, list[PlannedHousehold]]:
    synthesizer = Synthesizer(SEED, REFERENCE_DAY)
    made = []
    for village, area, pattern, count in VILLAGES:
        for n in range(count):
            address = pattern.format(n=10 + 7 * n, u=1 + n % 4)
            made.append(synthesizer.household(village, area, address))
    return synthesizer, made


def example_household(state: Path) -> str | None:
    """The household of the example application an earlier load wrote, if there is one."""
    try:
        example = json.loads((state / EXAMPLE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    household_id = example.get("household_id") if isinstance(example, dict) else None
    return household_id if isinstance(household_id, str) else None


def load(base_url: str, token: str, state: Path, *, clock: Clock | None = None) -> Loaded | str:
    """Load the demo, or give the household showing it is loaded already. ``clock``: the
    service's (the machine's unless given)."""
    synthesizer, households = plans()
    today = (clock or SystemClock()).today()
    with httpx.Client(base_url=base_url, timeout=30.0) as http:
        loader = DemoLoader(http, token, today)
        earlier = example_household(state)
        if earlier is not None and loader.on_file(earlier):
            return earlier
        loader.roster(households, synthesizer)
        example: dict[str, Any] | None = None
        # Applications are spread over the district: every third household applies.
        applying = set(range(0, len(households), 3))
        for index, plan in enumerate(households):
            household_id, person_ids = loader.household(index, plan)
            if index in applying and loader.loaded.applications < APPLICATIONS + RETURNED:
                complete = loader.loaded.applications >= RETURNED
                loader.application(index, household_id, person_ids, plan, complete=complete)
            elif example is None and plan.region_code.startswith("620123"):
                documents = loader.documents(index, household_id, person_ids, plan)
                example = application_payload(
                    household_id, person_ids, plan, documents, statement=STATEMENTS[0]
                )
    if example is not None:
        state.mkdir(parents=True, exist_ok=True)
        target = state / EXAMPLE_FILE
        target.write_text(json.dumps(example, ensure_ascii=False, indent=2) + "\n")
    return loader.loaded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8001")
    parser.add_argument("--signing-key", type=Path, help="default: <state>/dev-jwt-signing-key.pem")
    args = parser.parse_args(argv)
    settings = DemoSettings()  # issuer and audience come from the environment
    key_file = args.signing_key or settings.state / "dev-jwt-signing-key.pem"
    token = mint(
        key_file.read_bytes(),
        subject=SUBJECT,
        roles=["intake_clerk", "policy_admin"],
        regions=["620102", "620123"],
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl_s=3600,
    )
    try:
        loaded = load(args.base_url, token, settings.state)
    except RefusedError as refused:
        # A load cut short more than seven days ago (its answers expired: the households are
        # on file, 409), or data left by an earlier version: nothing here can finish it.
        sys.stderr.write(
            f"intake demo: {refused}\nThe instance holds data this load cannot complete"
            " (an earlier load cut short more than seven days ago, or loaded by another"
            " version). `make reset` deletes this instance's data; `make up` then loads the"
            " demo afresh.\n"
        )
        return 1
    if isinstance(loaded, str):
        sys.stdout.write(
            f"intake demo: already loaded (household {loaded} of the example application is"
            " on file); nothing sent. `make reset` deletes this instance's data, and the next"
            " `make up` loads the demo afresh.\n"
        )
        return 0
    sys.stdout.write(
        f"intake demo: {loaded.households} households, {loaded.applications} applications"
        f" ({loaded.returned} returned for missing items); {loaded.replayed} requests were"
        " already done by an earlier run and created nothing;"
        f" an application body to submit: {settings.state / EXAMPLE_FILE}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
