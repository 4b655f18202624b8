"""Bearer tokens: what is accepted, and the 401 problem for everything else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from httpx import AsyncClient

from dibao_common.auth import AuthSettings, Role, TokenVerifier
from dibao_common.clock import FrozenClock
from dibao_common.errors import PROBLEM_MEDIA_TYPE, Unauthorized
from dibao_common.testing.auth_fixtures import TEST_SIGNING_KEY, TokenFactory, public_key_b64
from dibao_common.testing.stack import api_client

from .conftest import auth_app


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _unauthorized(response: Any, slug: str) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert response.headers["www-authenticate"].startswith("Bearer")
    body: dict[str, Any] = response.json()
    assert body["type"] == f"https://dibao.gov.cn/problems/{slug}"
    return body


async def test_a_valid_token_gives_its_principal(client: AsyncClient, tokens: TokenFactory) -> None:
    token = tokens(roles=[Role.INTAKE_CLERK, "auditor"], regions=["620102"], subject="clerk-7")
    response = await client.get("/whoami", headers=_bearer(token))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": "clerk-7",
        "roles": ["auditor", "intake_clerk"],
        "regions": ["620102"],
    }


async def test_missing_token_is_401_with_www_authenticate(client: AsyncClient) -> None:
    response = await client.get("/whoami")
    _unauthorized(response, "missing-token")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_another_scheme_counts_as_missing(client: AsyncClient) -> None:
    response = await client.get("/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    _unauthorized(response, "missing-token")


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", ""])
async def test_garbage_is_an_invalid_token(client: AsyncClient, token: str) -> None:
    response = await client.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    if token == "":
        _unauthorized(response, "missing-token")
        return
    _unauthorized(response, "invalid-token")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_expired_token(
    client: AsyncClient, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    token = tokens(roles=["intake_clerk"], regions=["62"], expires_in=timedelta(minutes=10))
    assert (await client.get("/whoami", headers=_bearer(token))).status_code == 200
    # Within the 30 s leeway for clock skew it still passes; past it, it does not.
    frozen.advance(timedelta(minutes=10, seconds=29))
    assert (await client.get("/whoami", headers=_bearer(token))).status_code == 200
    frozen.advance(timedelta(seconds=2))
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("expired")


async def test_token_from_the_future(
    client: AsyncClient, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    token = tokens(roles=["intake_clerk"], issued_at=frozen.now() + timedelta(minutes=5))
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("issued in the future")


async def test_not_yet_valid_token(
    client: AsyncClient, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    later = int((frozen.now() + timedelta(minutes=5)).timestamp())
    token = tokens(roles=["intake_clerk"], extra_claims={"nbf": later})
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("not yet valid")


async def test_wrong_issuer(client: AsyncClient, tokens: TokenFactory) -> None:
    token = tokens(roles=["intake_clerk"], issuer="https://evil.example")
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("untrusted issuer")


async def test_wrong_audience(client: AsyncClient, tokens: TokenFactory) -> None:
    token = tokens(roles=["intake_clerk"], audience="another-system")
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("wrong audience")


async def test_wrong_key(client: AsyncClient, tokens: TokenFactory) -> None:
    token = tokens(roles=["intake_clerk"], key=ed25519.Ed25519PrivateKey.generate())
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("bad signature")


async def test_tampered_claims_fail_the_signature(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    header, _, signature = tokens(roles=["intake_clerk"], regions=["620102"]).split(".")
    claims = jwt.decode(
        tokens(roles=["intake_clerk", "county_approver"], regions=["62"]),
        options={"verify_signature": False},
    )
    forged = f"{header}.{_b64url(json.dumps(claims).encode())}.{signature}"
    _unauthorized(await client.get("/whoami", headers=_bearer(forged)), "invalid-token")


async def test_unsigned_and_symmetric_tokens_are_refused(
    client: AsyncClient, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    claims = jwt.decode(tokens(roles=["intake_clerk"]), options={"verify_signature": False})
    unsigned = jwt.encode(claims, "", algorithm="none")
    _unauthorized(await client.get("/whoami", headers=_bearer(unsigned)), "invalid-token")
    # The classic confusion: HMAC keyed with the (public) verification key.
    public_pem = TEST_SIGNING_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        _b64url(b'{"alg":"HS256","typ":"JWT"}') + "." + _b64url(json.dumps(claims).encode())
    )
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    hmac_token = f"{signing_input}.{_b64url(mac)}"
    body = _unauthorized(await client.get("/whoami", headers=_bearer(hmac_token)), "invalid-token")
    assert body["detail"].endswith("unexpected signing algorithm")


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud"])
async def test_required_claims(client: AsyncClient, tokens: TokenFactory, claim: str) -> None:
    claims = jwt.decode(tokens(roles=["intake_clerk"]), options={"verify_signature": False})
    del claims[claim]
    token = jwt.encode(claims, TEST_SIGNING_KEY, algorithm="EdDSA", headers={"typ": "at+jwt"})
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith(f"missing claim {claim}")


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"regions": ["62 01"]}, "regions must be a list of division-code prefixes"),
        ({"regions": "620102"}, "regions must be a list of division-code prefixes"),
        ({"regions": [""]}, "regions must be a list of division-code prefixes"),
        ({"regions": ["62\n"]}, "regions must be a list of division-code prefixes"),
        # Not a level (province 2, city 4, county 6, township 9, village 12 digits):
        # "62010" would cover counties 620100-620109 and not 620111, cutting Lanzhou.
        ({"regions": ["62010"]}, "regions must be a list of division-code prefixes"),
        ({"regions": ["620"]}, "regions must be a list of division-code prefixes"),
        ({"regions": ["6201020010"]}, "regions must be a list of division-code prefixes"),
        ({"roles": "intake_clerk"}, "roles must be a list of strings"),
        ({"sub": " "}, "empty subject"),
    ],
)
async def test_malformed_principal_claims(
    client: AsyncClient, tokens: TokenFactory, extra: dict[str, Any], reason: str
) -> None:
    token = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims=extra)
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith(reason)


@pytest.mark.parametrize(
    "region",
    [
        "620123101000",  # a township (夏官营镇) padded to 12 digits, taken for a village
        "620123000000",  # a county padded
        "620123000",  # a county padded to a township's length
        "620100",  # Lanzhou city's own code, taken for a county
        "6200",  # the province padded to a city's length
        "00",
        "620102001000",
    ],
)
async def test_a_level_of_zeros_is_no_division(
    client: AsyncClient, tokens: TokenFactory, region: str
) -> None:
    """A division code whose part at a level is all zeros names no division of that level:
    it is a higher level's code padded. Until 3 Dec 2026 the kit took 620123101000 as a
    village: it then matched the township's own records (its staff roster, GET
    /townships/620123101000/staff answered 200) and none of its villages'."""
    token = tokens(roles=["intake_clerk"], regions=["620102", region])
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("regions must be a list of division-code prefixes")


@pytest.mark.parametrize(
    "subject",
    ["clerk\x007", "clerk\n7", "clerk\ud8007", "c" * 256],
    ids=["nul", "newline", "lone-surrogate", "256-characters"],
)
async def test_a_subject_no_record_can_hold_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, subject: str
) -> None:
    """The subject is written as it is into what a caller creates (created_by...): a NUL
    (PostgreSQL text holds none) or a lone surrogate (UTF-8 has none) made every write a
    500, a 100 KB subject was stored in each row. Since 3 Dec 2026 an invalid token."""
    token = tokens(roles=["intake_clerk"], regions=["620102"], subject=subject)
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("subject longer than 255 characters or not printable")
    assert subject not in body["detail"]


async def test_a_subject_of_255_characters_in_any_script_is_taken(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    for subject in ("c" * 255, "张晓明-620123", "clerk 7"):
        token = tokens(roles=["intake_clerk"], regions=["620102"], subject=subject)
        response = await client.get("/whoami", headers=_bearer(token))
        assert response.status_code == 200, response.text
        assert response.json()["subject"] == subject


# Claims written as the actor on every record, access record and event a request makes,
# or logged with it (ADR 0004, 3 Dec 2026): a direction override shows the rest reversed
# to whoever reads the record ("clerk\u202e7" reads as another subject), a control
# character breaks a terminal or a log line, a long one fills each row it is written to.
REFUSED_CHARACTERS = {
    "override": "\u202e",
    "embedding": "\u202a",
    "isolate": "\u2067",
    "pop-isolate": "\u2069",
    "escape": "\x1b",
    "tab": "\t",
    "c1": "\x9b",
}


@pytest.mark.parametrize("character", REFUSED_CHARACTERS.values(), ids=REFUSED_CHARACTERS.keys())
async def test_a_subject_with_a_direction_override_or_a_control_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, character: str
) -> None:
    """The subject is the actor of every record: "clerk\u202e7" was taken (200) and
    written so into created_by, the events and the access records (control characters
    were refused already; direction embeddings, overrides and isolates were not)."""
    subject = f"clerk{character}620123"
    token = tokens(roles=["intake_clerk"], regions=["620102"], subject=subject)
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("subject longer than 255 characters or not printable")
    assert character not in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize(
    "role",
    [f"auditor{c}" for c in REFUSED_CHARACTERS.values()] + ["x" * 256, "role\ud800"],
    ids=[*REFUSED_CHARACTERS.keys(), "256-characters", "lone-surrogate"],
)
async def test_a_role_no_record_can_hold_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, role: str
) -> None:
    """A role this version does not know grants nothing, and is logged with the subject
    ("token carries unknown roles"): "auditor\u202e" or a role of 256 characters and
    more was taken (200), granted nothing, and written into the log as it came. Now the
    token is invalid, whatever other roles it holds."""
    token = tokens(roles=["intake_clerk", role], regions=["620102"])
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("a role longer than 255 characters or not printable")
    assert role not in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize(
    "jti",
    [f"{c}jti-1" for c in REFUSED_CHARACTERS.values()] + ["j" * 256, "jti\x00", "jti\n"],
    ids=[*REFUSED_CHARACTERS.keys(), "256-characters", "nul", "newline"],
)
async def test_a_token_id_no_record_can_hold_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, jti: str
) -> None:
    """The token's id (jti) is logged with what the token did (intake's and audit's
    warnings about its regions): any string was taken (200), a NUL, an escape sequence,
    an override or 100 KB of it."""
    token = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims={"jti": jti})
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("jti longer than 255 characters or not printable")
    assert jti not in json.dumps(body, ensure_ascii=False)


@pytest.mark.parametrize(
    "jti",
    [7, 1.5, True, None, ["jti-1"], {"id": "jti-1"}],
    ids=["number", "float", "boolean", "null", "list", "object"],
)
async def test_a_token_id_that_is_no_string_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, jti: object
) -> None:
    """A jti present but no string (RFC 7519 4.1.7: a string) is an invalid token, the
    detail naming the claim, as a role that is no string is (ADR 0004, 3 Dec 2026). The
    kit's own check passed it over (the principal's token_id None): only PyJWT's
    default verify_jti refused it, as a "malformed token" naming nothing."""
    token = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims={"jti": jti})
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("jti is not a string")


@pytest.mark.parametrize(
    "sub",
    [7, 1.5, True, None, ["test-user"], {"id": "test-user"}],
    ids=["number", "float", "boolean", "null", "list", "object"],
)
async def test_a_subject_that_is_no_string_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, sub: object
) -> None:
    """A sub present but no string (RFC 7519 4.1.2: a StringOrURI) is an invalid token by
    the kit's own rule, the detail naming the claim, as a jti that is no string is (ADR
    0004, 3 Dec 2026, helper hBD). Before, only PyJWT refused it: its default verify_sub
    as "malformed token" (a number, a list...), its "require" as "missing claim sub" (a
    null, which is there); and the kit's own check would have said "empty subject"."""
    token = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims={"sub": sub})
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("sub is not a string")


@pytest.mark.parametrize(
    "region",
    [f"620102{c}" for c in REFUSED_CHARACTERS.values()] + ["6" * 300, "\u2067620102"],
    ids=[*REFUSED_CHARACTERS.keys(), "300-digits", "leading-isolate"],
)
async def test_a_region_with_a_control_or_an_override_is_an_invalid_token(
    client: AsyncClient, tokens: TokenFactory, region: str
) -> None:
    """Regions are recorded as the actor's region prefixes: they are division codes, digits
    only, 2 to 12 of them (so these were refused before 3 Dec 2026 too)."""
    token = tokens(roles=["intake_clerk"], regions=["620102", region])
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("regions must be a list of division-code prefixes")


async def test_identifiers_of_255_characters_in_any_script_are_taken(
    client: AsyncClient, auth_settings: AuthSettings, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    """What an identity provider issues stays taken: a role of another system (granting
    nothing) and a jti of up to 255 characters, a subject in a right-to-left script with
    its direction marks (U+200F, U+061C reorder only what is beside them). A claim the kit
    reads nothing of (``name``, ``email``) is not judged: nothing records it."""
    for role, jti, subject in (
        ("realm-management:view-users", "j" * 255, "\u0626\u0627\u0628\u200f-7"),
        ("r" * 255, "0193a5b2-7c41-7e8a-9f10-2b3c4d5e6f70", "clerk\u061c7"),
    ):
        token = tokens(
            roles=["auditor", role],
            regions=["620102"],
            subject=subject,
            extra_claims={"jti": jti, "name": "\u202e张三\x1b"},
        )
        response = await client.get("/whoami", headers=_bearer(token))
        assert response.status_code == 200, response.text
        assert response.json() == {"subject": subject, "roles": ["auditor"], "regions": ["620102"]}
    verifier = TokenVerifier(auth_settings, now=frozen.now)
    principal = await verifier.verify(
        tokens(roles=["auditor"], regions=["62"], extra_claims={"jti": "j" * 255})
    )
    assert principal.token_id == "j" * 255


async def test_a_token_past_16_kib_is_refused_before_it_is_decoded(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    """uvicorn takes an Authorization header of megabytes: a validly signed token of 2 MB
    was decoded, verified and kept among the verified tokens (200). Since 3 Dec 2026
    anything past 16 KiB is an invalid token; a token just under it is taken."""
    signed = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims={"pad": "x" * 20_000})
    for token in (signed, "a" * 8_000_000):
        body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
        assert body["detail"].endswith("token longer than 16384 characters")
    bare = tokens(roles=["intake_clerk"], regions=["620102"], extra_claims={"pad": ""})
    fits = tokens(
        roles=["intake_clerk"],
        regions=["620102"],
        extra_claims={"pad": "x" * ((16 * 1024 - len(bare)) * 3 // 4)},
    )
    assert len(fits) <= 16 * 1024
    response = await client.get("/whoami", headers=_bearer(fits))
    assert response.status_code == 200, response.text


def _signed_with_raw_json(header: bytes, payload: bytes) -> str:
    signing_input = f"{_b64url(header)}.{_b64url(payload)}"
    signature = TEST_SIGNING_KEY.sign(signing_input.encode())
    return f"{signing_input}.{_b64url(signature)}"


async def test_a_claim_or_header_parameter_given_twice_is_refused(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    """A signed token whose JSON names 'roles' (or 'regions', or the header's 'alg')
    twice: Python's JSON kept the last ('policy_admin' over 'auditor', 200) where another
    parser on the way may keep the first. Since 3 Dec 2026 an invalid token."""
    claims = jwt.decode(
        tokens(roles=["auditor"], regions=["620102"]), options={"verify_signature": False}
    )
    body = json.dumps(claims)[:-1]
    header = b'{"alg":"EdDSA","typ":"at+jwt"}'
    doubled = {
        "roles": (header, (body + ', "roles": ["policy_admin"]}').encode()),
        "regions": (header, (body + ', "regions": ["62"]}').encode()),
        "alg": (b'{"alg":"none","alg":"EdDSA","typ":"at+jwt"}', (body + "}").encode()),
    }
    for name, (head, payload) in doubled.items():
        token = _signed_with_raw_json(head, payload)
        response = await client.get("/whoami", headers=_bearer(token))
        problem = _unauthorized(response, "invalid-token")
        assert problem["detail"].endswith("a claim or header parameter given twice"), name
    # The same JSON without the repetition is taken.
    single = _signed_with_raw_json(header, (body + "}").encode())
    response = await client.get("/whoami", headers=_bearer(single))
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["auditor"]


@pytest.mark.parametrize(
    "typ", [None, "JWT", "jwt", "application/jwt", "JOSE", "id_token+jwt", "at+jwt+x", "", 1]
)
async def test_a_token_not_typed_as_an_access_token_is_refused(
    client: AsyncClient, tokens: TokenFactory, typ: Any
) -> None:
    """RFC 8725 section 3.11, RFC 9068 section 4: another JWT the issuer signs for the same
    audience (an ID token, typ JWT or none) must not pass for an access token. Until
    3 Dec 2026 the header's typ was not read: each of these was taken (200)."""
    claims = jwt.decode(
        tokens(roles=["intake_clerk"], regions=["620102"]), options={"verify_signature": False}
    )
    header = b'{"alg":"EdDSA"' + (b"" if typ is None else b',"typ":' + json.dumps(typ).encode())
    token = _signed_with_raw_json(header + b"}", json.dumps(claims).encode())
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith("token type (typ) is not at+jwt")


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"])
async def test_an_access_token_type_is_taken_in_either_spelling(
    client: AsyncClient, tokens: TokenFactory, typ: str
) -> None:
    """A media type's name is case-insensitive and "application/" may be left out (RFC
    7515 section 4.1.9, RFC 9068 section 2.1)."""
    token = tokens(roles=["intake_clerk"], regions=["620102"], typ=typ)
    assert jwt.get_unverified_header(token)["typ"] == typ
    response = await client.get("/whoami", headers=_bearer(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("lifetime", "issued_ago", "taken"),
    [
        (timedelta(hours=12), timedelta(0), True),
        (timedelta(hours=12, seconds=1), timedelta(0), False),
        (timedelta(days=365), timedelta(0), False),
        # Issued 20 hours ago, valid for one hour more: 21 hours in all.
        (timedelta(hours=21), timedelta(hours=20), False),
        (timedelta(hours=12), timedelta(hours=11), True),
    ],
)
async def test_a_token_living_longer_than_the_maximum_is_refused(
    client: AsyncClient,
    tokens: TokenFactory,
    frozen: FrozenClock,
    lifetime: timedelta,
    issued_ago: timedelta,
    taken: bool,
) -> None:
    """A stolen token works until it expires and nothing revokes it: since 3 Dec 2026 one
    whose exp lies more than DIBAO_JWT_MAX_LIFETIME_S (12 h) after its iat is refused,
    a year's token as well (taken until then: 200)."""
    token = tokens(
        roles=["intake_clerk"],
        regions=["620102"],
        issued_at=frozen.now() - issued_ago,
        expires_in=lifetime,
    )
    response = await client.get("/whoami", headers=_bearer(token))
    if taken:
        assert response.status_code == 200, response.text
        return
    body = _unauthorized(response, "invalid-token")
    assert body["detail"].endswith("lifetime (exp - iat) longer than 43200 seconds")


async def test_the_maximum_lifetime_is_a_setting(
    auth_settings: AuthSettings, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    settings = auth_settings.model_copy(update={"jwt_max_lifetime_s": 3600})
    verifier = TokenVerifier(settings, now=frozen.now)
    principal = await verifier.verify(tokens(roles=["auditor"], expires_in=3600))
    assert principal.roles == frozenset({Role.AUDITOR})
    with pytest.raises(Unauthorized) as refused:
        await verifier.verify(tokens(roles=["auditor"], expires_in=3601))
    assert str(refused.value.detail).endswith("lifetime (exp - iat) longer than 3600 seconds")


async def test_a_token_issued_beyond_the_leeway_in_the_future_is_refused(
    client: AsyncClient, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    """iat is the start of the lifetime measured: one in the future would stretch it."""
    within = tokens(roles=["auditor"], issued_at=frozen.now() + timedelta(seconds=30))
    assert (await client.get("/whoami", headers=_bearer(within))).status_code == 200
    beyond = tokens(roles=["auditor"], issued_at=frozen.now() + timedelta(seconds=31))
    body = _unauthorized(await client.get("/whoami", headers=_bearer(beyond)), "invalid-token")
    assert body["detail"].endswith("issued in the future")


async def test_every_level_of_division_code_is_a_region(
    client: AsyncClient, tokens: TokenFactory
) -> None:
    regions = ["62", "6201", "620102", "620102001", "620102001001"]
    response = await client.get("/whoami", headers=tokens.bearer(roles=[], regions=regions))
    assert response.status_code == 200, response.text
    assert response.json()["regions"] == regions


async def test_unknown_roles_grant_nothing(client: AsyncClient, tokens: TokenFactory) -> None:
    token = tokens(roles=["superuser", "auditor"], regions=["62"])
    response = await client.get("/whoami", headers=_bearer(token))
    assert response.json()["roles"] == ["auditor"]


def _pem_b64(private_key: Any) -> str:
    return public_key_b64(private_key)


@pytest.mark.parametrize(
    ("private_key", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
)
async def test_rs256_es256_and_eddsa_keys(
    frozen: FrozenClock, private_key: Any, algorithm: str
) -> None:
    settings = AuthSettings(
        jwt_public_key=_pem_b64(private_key), jwt_issuer="https://idp", jwt_audience="dibao"
    )
    factory = TokenFactory(
        private_key, algorithm=algorithm, issuer="https://idp", audience="dibao", now=frozen.now
    )
    async with api_client(auth_app(settings, frozen)) as client:
        good = await client.get("/whoami", headers=factory.bearer(roles=["auditor"]))
        assert good.status_code == 200, good.text
        # The same claims under the test Ed25519 key are refused by this issuer's key.
        other = TokenFactory(issuer="https://idp", audience="dibao", now=frozen.now)
        bad = await client.get("/whoami", headers=other.bearer(roles=["auditor"]))
        assert bad.status_code == 401
        assert bad.json()["detail"].endswith(
            "bad signature" if algorithm == "EdDSA" else "unexpected signing algorithm"
        )


async def test_verifier_raises_unauthorized_directly(
    auth_settings: AuthSettings, tokens: TokenFactory, frozen: FrozenClock
) -> None:
    verifier = TokenVerifier(auth_settings, now=frozen.now)
    principal = await verifier.verify(tokens(roles=["finance_officer"], regions=["6201", "6205"]))
    assert principal.roles == frozenset({Role.FINANCE_OFFICER})
    assert principal.regions == ("6201", "6205")
    assert principal.token_id is not None
    with pytest.raises(Unauthorized):
        await verifier.verify(tokens(roles=["finance_officer"], expires_in=-60))


def _signed_raw(claims_json: str) -> str:
    """A token signed by the test key whose payload is exactly ``claims_json``: Python's
    JSON reads ``NaN`` and ``Infinity``, and numbers too large for a float."""
    signing_input = _b64url(b'{"alg":"EdDSA","typ":"at+jwt"}') + "." + _b64url(claims_json.encode())
    return f"{signing_input}.{_b64url(TEST_SIGNING_KEY.sign(signing_input.encode()))}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1" + "0" * 400])
async def test_time_claims_must_be_finite_numbers(
    client: AsyncClient, tokens: TokenFactory, claim: str, value: str
) -> None:
    # An exp of NaN or Infinity would never expire; one past a float's range was a 500.
    claims = jwt.decode(tokens(roles=["auditor"]), options={"verify_signature": False})
    del claims[claim]
    token = _signed_raw(json.dumps(claims)[:-1] + f', "{claim}": {value}}}')
    body = _unauthorized(await client.get("/whoami", headers=_bearer(token)), "invalid-token")
    assert body["detail"].endswith(f"claim {claim} is not a number")
