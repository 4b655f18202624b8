"""Bearer-token authentication, roles and region scoping for district-portal requests.

Tokens are JWTs signed by the identity provider with an asymmetric key (EdDSA/Ed25519,
RS256 or ES256), verified against a configured public key or a JWKS URL. Claims:
``sub``, ``roles``, ``regions`` (division-code prefixes), ``iss``, ``aud``, ``exp``,
``iat``, ``nbf``, ``jti``; the header's ``typ`` is ``at+jwt`` (RFC 9068) and ``exp`` is
at most ``jwt_max_lifetime_s`` after ``iat``. A principal sees only records under its
region prefixes; a record of another region answers 404, exactly as one that does not
exist.

    @router.get("/households/{household_id}", responses=problem_responses(401, 403, 404))
    async def get_household(
        household_id: UUID,
        principal: Annotated[Principal, Depends(require_roles(Role.INTAKE_CLERK))],
    ) -> HouseholdOut:
        household = await repository.get(session, household_id)   # NotFound if absent
        ensure_in_scope(principal, household.region_code)          # NotFound if foreign
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

import httpx
import jwt
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import ColumnElement, false, or_
from sqlalchemy.orm import InstrumentedAttribute

from dibao_common.errors import (
    RETRY_AFTER_OUTAGE_S,
    Forbidden,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)
from dibao_common.text import DIRECTION_CONTROLS

_log = structlog.get_logger("dibao_common.auth")

Now = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    """What a principal may do; a token carries one or more."""

    INTAKE_CLERK = "intake_clerk"
    INVESTIGATOR = "investigator"
    VILLAGE_COMMITTEE = "village_committee"
    TOWNSHIP_REVIEWER = "township_reviewer"
    COUNTY_APPROVER = "county_approver"
    PUBLICITY_OFFICER = "publicity_officer"
    FINANCE_OFFICER = "finance_officer"
    AUDITOR = "auditor"
    POLICY_ADMIN = "policy_admin"


# A division code down to one of its levels: province (2 digits), city (4), county (6),
# township (9), village (12). A prefix between levels ("62010") would cover part of a level.
_REGION = re.compile(r"[0-9]{2}(?:[0-9]{2}(?:[0-9]{2}(?:[0-9]{3}(?:[0-9]{3})?)?)?)?")


_LEVELS = ((0, 2), (2, 4), (4, 6), (6, 9), (9, 12))
"""Where each level's own part of a division code lies."""


def is_region_prefix(region: object) -> bool:
    """Whether ``region`` is what a token's ``regions`` may hold: a division code down to
    one of its levels (2, 4, 6, 9 or 12 digits), each level's part naming a division.

    A part of zeros names none: it is a higher level's code padded (GB/T 2260 and the
    statistical codes write a county as 620123000000, a township as 620123101000). Taken
    as a prefix, a township's padded code would pass for a village and match the
    township's own records (its staff roster) and none of its villages'; a county's
    (620123000) would match nothing: what the issuer meant is not known, so either is an
    invalid token rather than a silent guess (since 3 Dec 2026)."""
    if not isinstance(region, str) or _REGION.fullmatch(region) is None:
        return False
    return all(region[start:end].strip("0") for start, end in _LEVELS if end <= len(region))


def algorithm_of(key: Any) -> str:
    """The one JWS algorithm a public key may verify: EdDSA, RS256 or ES256.

    The algorithm follows from the key, never from the token (RFC 8725 §3.1)."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError("RSA keys shorter than 2048 bits are refused")
        return "RS256"
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("the JWT key must be Ed25519, RSA (>= 2048 bits) or EC P-256")


def load_public_key(value: str) -> Any:
    """A PEM public key given as base64 of the PEM (as in env files) or as the PEM itself."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        pem = text.encode()
    else:
        try:
            pem = base64.b64decode(text, validate=True)
        except binascii.Error as exc:
            raise ValueError("DIBAO_JWT_PUBLIC_KEY must be base64 of a PEM public key") from exc
    try:
        return serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise ValueError("DIBAO_JWT_PUBLIC_KEY is not a PEM public key") from exc


_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class AuthSettings(BaseSettings):
    """How bearer tokens are verified: one public key, or the issuer's JWKS URL."""

    model_config = SettingsConfigDict(env_prefix="DIBAO_", extra="ignore", frozen=True)

    jwt_public_key: str | None = Field(
        default=None, description="Base64 of the issuer's PEM public key (Ed25519, RSA, P-256)"
    )
    jwt_jwks_url: str | None = Field(default=None, description="The issuer's JWKS URL instead")
    jwt_issuer: str = Field(description="Expected `iss`")
    jwt_audience: str = Field(description="Expected `aud`")
    jwt_leeway_s: int = Field(default=30, ge=0, le=300, description="Clock skew allowed")
    jwt_max_lifetime_s: int = Field(
        default=12 * 3600,
        ge=60,
        le=24 * 3600,
        description="The longest lifetime (`exp` - `iat`) a token may have: a staff member's"
        " working day with overtime; a token issued for longer is refused (ADR 0004)",
    )
    jwt_jwks_cache_s: int = Field(default=300, ge=1, description="How long fetched keys are kept")
    jwt_jwks_min_refresh_s: int = Field(
        default=30,
        ge=1,  # 0 would let every forged `kid` make the service fetch the issuer's keys
        description="Unknown `kid`s refetch the JWKS at most this often",
    )

    @field_validator("jwt_public_key")
    @classmethod
    def _key_loads(cls, value: str | None) -> str | None:
        if value is not None:
            algorithm_of(load_public_key(value))
        return value

    @field_validator("jwt_jwks_url")
    @classmethod
    def _url_is_https(cls, value: str | None) -> str | None:
        # Keys fetched in clear could be swapped on the way, and the swapper could then
        # sign tokens for any role and region: plain http only from this machine.
        if value is None:
            return value
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL:
            url = httpx.URL()
        secure = url.scheme == "https" or (url.scheme == "http" and url.host in _LOOPBACK)
        if not (secure and url.host):
            raise ValueError(
                "DIBAO_JWT_JWKS_URL must be an https URL (http only to localhost or 127.0.0.1)"
            )
        return value

    @field_validator("jwt_issuer", "jwt_audience")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        if (self.jwt_public_key is None) == (self.jwt_jwks_url is None):
            raise ValueError("set exactly one of DIBAO_JWT_PUBLIC_KEY and DIBAO_JWT_JWKS_URL")
        return self


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's subject, roles and region-code prefixes."""

    subject: str
    roles: frozenset[Role]
    regions: tuple[str, ...]
    token_id: str | None = None

    def has(self, role: Role) -> bool:
        return role in self.roles

    def can_see(self, region_code: str) -> bool:
        """True when ``region_code`` lies under one of the principal's prefixes."""
        return any(region_code.startswith(prefix) for prefix in self.regions)


def ensure_in_scope(principal: Principal, region_code: str, detail: str | None = None) -> None:
    """Raise ``NotFound`` for a record outside the principal's regions (404, never 403).

    Pass the same ``detail`` the route uses for a record that does not exist, so the two
    answers cannot be told apart.
    """
    if not principal.can_see(region_code):
        raise NotFound(detail)


def region_filter(
    column: InstrumentedAttribute[str] | ColumnElement[str], principal: Principal
) -> ColumnElement[bool]:
    """A SQL condition keeping rows whose region code is under the principal's prefixes."""
    if not principal.regions:
        return false()
    return or_(*(column.startswith(prefix, autoescape=True) for prefix in principal.regions))


# --- verification ----------------------------------------------------------------------------


def _invalid(description: str) -> Unauthorized:
    return Unauthorized(
        f"The bearer token is not accepted: {description}",
        type_slug="invalid-token",
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


def authentication_unavailable() -> ServiceUnavailable:
    """503 ``authentication-unavailable``: the token issuer's keys (``jwks_url``) could not
    be fetched and none are known yet, so no token can be checked. Not a 401: the caller
    did nothing wrong (ADR 0004); it may send the request again after ``Retry-After``, the
    same 5 s as ``database-unavailable`` (ADR 0022). Every operation taking a token can
    answer it, and declares it (ADR 0020)."""
    return ServiceUnavailable(
        "The token issuer's keys cannot be fetched right now; nothing was done. Send the"
        " request again after Retry-After seconds",
        type_slug="authentication-unavailable",
        title="Authentication unavailable",
        headers={"Retry-After": str(RETRY_AFTER_OUTAGE_S)},
    )


class JwksCache:
    """The issuer's signing keys, fetched with httpx and kept for ``ttl``.

    A token naming an unknown ``kid`` refetches (key rotation), at most once per
    ``min_refresh`` so that forged tokens cannot make us hammer the issuer. When a refetch
    fails the keys already known stay in use.
    """

    def __init__(
        self,
        url: str,
        *,
        ttl: timedelta,
        min_refresh: timedelta,
        now: Now = _utc_now,
        timeout_s: float = 5.0,
    ) -> None:
        self._url = url
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._now = now
        self._timeout_s = timeout_s
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        """The key named ``kid`` (or the only key, when the token names none)."""
        if self._fetched_at is None or self._now() - self._fetched_at >= self._ttl:
            await self._refresh()
        found = self._find(kid)
        if found is None and self._may_refetch():
            await self._refresh()
            found = self._find(kid)
        if found is None:
            raise _invalid("unknown signing key")
        return found

    def _may_refetch(self) -> bool:
        return self._fetched_at is None or self._now() - self._fetched_at >= self._min_refresh

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return next((k for k in self._keys if k.key_id == kid), None)

    async def _refresh(self) -> None:
        seen = self._fetched_at
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while this one waited
            started = self._now()
            try:
                async with httpx.AsyncClient(timeout=self._timeout_s) as client:
                    response = await client.get(self._url, headers={"Accept": "application/json"})
                    response.raise_for_status()
                    jwks = jwt.PyJWKSet.from_dict(response.json())
            except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
                _log.warning("jwks fetch failed", url=self._url, error=type(exc).__name__)
                if not self._keys:
                    raise authentication_unavailable() from exc
                # Keep the old keys, and do not retry before min_refresh.
                self._fetched_at = started
                return
            self._keys = [k for k in jwks.keys if _usable(k)]
            self._fetched_at = started


def _usable(jwk: jwt.PyJWK) -> bool:
    """Whether a published key obeys the rules of a configured one (``algorithm_of``):
    PyJWT also takes RSA keys under 2048 bits (with a mere warning) and Ed448 as EdDSA."""
    try:
        return algorithm_of(jwk.key) == jwk.algorithm_name
    except ValueError:
        return False


_VERIFIED_TOKENS = 4096

ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a secret
"""The ``typ`` header a bearer token must carry: an OAuth 2.0 access token in JWT form
(RFC 9068 section 2.1; ``application/at+jwt`` is the same media type written in full).
Explicit typing (RFC 8725 section 3.11) keeps another JWT the issuer signs for the same
audience (an ID token, a logout token) from passing for an access token (since 3 Dec 2026)."""


def is_access_token_type(typ: object) -> bool:
    """Whether a JOSE header's ``typ`` names an access token: ``at+jwt`` or
    ``application/at+jwt``, in any case (a media type's name is case-insensitive, RFC 7515
    section 4.1.9). An absent ``typ`` is not one."""
    if not isinstance(typ, str):
        return False
    return typ.lower().removeprefix("application/") == ACCESS_TOKEN_TYPE


MAX_TOKEN_LENGTH = 16 * 1024
"""The longest bearer token verified, in characters: a staff member's claims take a few
hundred bytes, a province's regions listed county by county a few KiB. Longer is an
invalid token before anything of it is decoded (since 3 Dec 2026): uvicorn takes header
lines of megabytes, and each was base64-decoded and parsed, a signed one kept among the
verified tokens (4096 of them)."""


class TokenVerifier:
    """Verifies bearer tokens against ``AuthSettings``; one per application."""

    def __init__(self, settings: AuthSettings, *, now: Now = _utc_now) -> None:
        self._settings = settings
        self._now = now
        self._leeway = timedelta(seconds=settings.jwt_leeway_s)
        self._static_key: Any = None
        self._static_algorithm: str | None = None
        self._jwks: JwksCache | None = None
        # token -> claims, header, the key that verified it, and its (immutable) principal
        self._verified: OrderedDict[str, tuple[dict[str, Any], dict[str, Any], Any, Principal]] = (
            OrderedDict()
        )
        if settings.jwt_public_key is not None:
            self._static_key = load_public_key(settings.jwt_public_key)
            self._static_algorithm = algorithm_of(self._static_key)
        else:
            assert settings.jwt_jwks_url is not None
            self._jwks = JwksCache(
                settings.jwt_jwks_url,
                ttl=timedelta(seconds=settings.jwt_jwks_cache_s),
                min_refresh=timedelta(seconds=settings.jwt_jwks_min_refresh_s),
                now=now,
            )

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; ``Unauthorized`` (401) otherwise.

        A portal sends the same token with every request for its lifetime: a token whose
        signature and claims were checked is remembered (the most recent few thousand),
        and only its times are checked again, and, with a key set, that its key is
        still published. An Ed25519 verification and the JSON parsing cost more than the
        rest of the authentication together.
        """
        if len(token) > MAX_TOKEN_LENGTH:
            raise _invalid(f"token longer than {MAX_TOKEN_LENGTH} characters")
        known = self._verified.get(token)
        if known is not None:
            claims, header, verified_with, principal = known
            if self._jwks is not None and (await self._key_for(header))[0] is not verified_with:
                self._verified.pop(token, None)
                return await self.verify(token)
            self._check_times(claims)
            self._verified.move_to_end(token)
            return principal
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise _invalid("malformed token") from exc
        key, algorithm = await self._key_for(header)
        if header.get("alg") != algorithm:
            raise _invalid("unexpected signing algorithm")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self._settings.jwt_audience,
                issuer=self._settings.jwt_issuer,
                # Times are checked below against the injected clock; the sub and the jti
                # by the kit's own rules (_principal_of), not PyJWT's "malformed token"
                # (nor its "missing claim sub" for a sub that is there, null).
                options={
                    "require": ["iss", "aud", "exp", "iat"],
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidAudienceError as exc:
            raise _invalid("wrong audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise _invalid("untrusted issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise _invalid("bad signature") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"missing claim {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            raise _invalid("malformed token") from exc
        if _has_duplicate_members(token):
            raise _invalid("a claim or header parameter given twice")
        if not is_access_token_type(header.get("typ")):
            raise _invalid(f"token type (typ) is not {ACCESS_TOKEN_TYPE}")
        times = self._check_times(claims)
        if times["exp"] - times["iat"] > self._settings.jwt_max_lifetime_s:
            raise _invalid(
                f"lifetime (exp - iat) longer than {self._settings.jwt_max_lifetime_s} seconds"
            )
        principal = _principal_of(claims)
        self._verified[token] = (claims, header, key, principal)
        if len(self._verified) > _VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return principal

    async def _key_for(self, header: Mapping[str, Any]) -> tuple[Any, str]:
        if self._jwks is None:
            assert self._static_algorithm is not None
            return self._static_key, self._static_algorithm
        kid = header.get("kid")
        jwk = await self._jwks.key(kid if isinstance(kid, str) else None)
        return jwk.key, jwk.algorithm_name

    def _check_times(self, claims: Mapping[str, Any]) -> dict[str, float]:
        """``exp``, ``iat`` and ``nbf`` (when given) as numbers, checked against the clock."""
        now = self._now().timestamp()
        leeway = self._leeway.total_seconds()
        times: dict[str, float] = {}
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            # NaN or Infinity (which Python's JSON reads) would never expire; an integer
            # beyond a float's range would raise OverflowError (a 500).
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(f"claim {name} is not a number")
            try:
                times[name] = float(value)
            except OverflowError:
                raise _invalid(f"claim {name} is not a number") from None
            if not math.isfinite(times[name]):
                raise _invalid(f"claim {name} is not a number")
        if times["exp"] <= now - leeway:
            raise _invalid("expired")
        if times["iat"] > now + leeway:
            raise _invalid("issued in the future")
        if "nbf" in times and times["nbf"] > now + leeway:
            raise _invalid("not yet valid")
        return times


class _DuplicateMemberError(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise _DuplicateMemberError
    return members


def _has_duplicate_members(token: str) -> bool:
    """Whether the token's header or claims name a member twice (``{"roles": [...],
    "roles": [...]}``). Python's JSON keeps the last, another parser on the way (a
    gateway, a log pipeline, the portal) may keep the first and see other roles, regions
    or algorithm than we do: refused (RFC 7519 section 4 allows it; since 3 Dec 2026).
    Checked once the signature is verified, so only a token the issuer signed costs it."""
    for segment in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
            json.loads(raw, object_pairs_hook=_unique_members)
        except _DuplicateMemberError:
            return True
        except ValueError:
            continue  # PyJWT has read it: not reached for a token it took
    return False


SUBJECT_MAX_LENGTH = 255
"""OpenID Connect's bound on ``sub`` (Core 1.0, section 2), and on every other claim the
kit records or logs as the actor's (a role, the ``jti``)."""
_DIRECTION_CONTROLS = frozenset(DIRECTION_CONTROLS)


def is_claim_identifier(value: str) -> bool:
    """Whether ``value`` may stand in a record as who acted (a subject, a role, a token
    id): at most :data:`SUBJECT_MAX_LENGTH` characters, none a control character (NUL, a
    tab and a line break among them), a lone surrogate, or a direction embedding, override
    or isolate (U+202A-U+202E, U+2066-U+2069, ``dibao_common.text``).

    These claims are written as they are into the records a caller makes, the events, the
    access records and the logs: PostgreSQL's text holds no NUL, nor UTF-8 a surrogate (a
    500 on every write); a right-to-left override shows the rest of the subject reversed,
    so an auditor reads another actor than the one stored; a 100 KB one filled each row
    (each an invalid token since 3 Dec 2026). The direction marks (U+200E, U+200F,
    U+061C) are taken, as in free text: right-to-left scripts carry them."""
    return len(value) <= SUBJECT_MAX_LENGTH and not any(
        unicodedata.category(c) in ("Cc", "Cs") or c in _DIRECTION_CONTROLS for c in value
    )


def is_subject(subject: str) -> bool:
    """Whether ``subject`` may name who acts (:func:`is_claim_identifier`)."""
    return is_claim_identifier(subject)


def _principal_of(claims: Mapping[str, Any]) -> Principal:
    if "sub" not in claims:
        raise _invalid("missing claim sub")
    subject = claims["sub"]
    roles = claims.get("roles", [])
    regions = claims.get("regions", [])
    if not isinstance(subject, str):
        # RFC 7519 4.1.2: a string. A number, a list, an object or null names nobody:
        # refused by this rule, as a jti that is no string is (3 Dec 2026, helper hBD).
        raise _invalid("sub is not a string")
    if not subject.strip():
        raise _invalid("empty subject")
    if not is_subject(subject):
        raise _invalid(f"subject longer than {SUBJECT_MAX_LENGTH} characters or not printable")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise _invalid("roles must be a list of strings")
    if not all(is_claim_identifier(r) for r in roles):
        # Unknown roles grant nothing but are logged as they came (below).
        raise _invalid(f"a role longer than {SUBJECT_MAX_LENGTH} characters or not printable")
    if not isinstance(regions, list) or not all(is_region_prefix(r) for r in regions):
        raise _invalid("regions must be a list of division-code prefixes")
    known = {r.value for r in Role}
    unknown = [r for r in roles if r not in known]
    if unknown:
        # Roles this version does not know grant nothing; tokens may carry other systems' roles.
        _log.info("token carries unknown roles", subject=subject, roles=unknown)
    jti = claims.get("jti")
    if "jti" in claims and not isinstance(jti, str):
        # RFC 7519 4.1.7: a string. A number, a list, an object or null is no token id
        # to keep or log: refused as a subject or a role that is no string is (3 Dec 2026).
        raise _invalid("jti is not a string")
    if jti is not None and not is_claim_identifier(jti):
        # Logged with what the token did (a region the service does not know...).
        raise _invalid(f"jti longer than {SUBJECT_MAX_LENGTH} characters or not printable")
    return Principal(
        subject=subject,
        roles=frozenset(Role(r) for r in roles if r in known),
        regions=tuple(dict.fromkeys(regions)),
        token_id=jti,
    )


# --- FastAPI wiring --------------------------------------------------------------------------


def install_token_verifier(app: FastAPI, settings: AuthSettings, *, now: Now = _utc_now) -> None:
    """Make ``current_principal`` verify tokens of ``app`` with ``settings``."""
    app.state.token_verifier = TokenVerifier(settings, now=now)


_bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT from the district identity provider (`make token` locally)",
)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The verified caller (401 without a valid bearer token); also on ``request.state``."""
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("no token verifier: build the app with auth settings")
    if credentials is None:
        raise missing_token()
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def missing_token() -> Unauthorized:
    """401 ``missing-token``: a request without ``Authorization: Bearer``."""
    return Unauthorized("A bearer token is required", type_slug="missing-token")


def missing_role(wanted: Sequence[Role]) -> Forbidden:
    """403 ``missing-role``: the token holds none of ``wanted``."""
    return Forbidden(
        "This action needs one of the roles: " + ", ".join(r.value for r in wanted),
        type_slug="missing-role",
        required_roles=[r.value for r in wanted],
    )


_ROLES_REQUIRED: dict[Callable[..., Any], tuple[Role, ...]] = {}


def roles_required_by(dependency: Callable[..., Any]) -> tuple[Role, ...] | None:
    """The roles a dependency made by :func:`require_roles` asks for (None for another),
    for the OpenAPI document's example of its 403."""
    return _ROLES_REQUIRED.get(dependency)


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency giving the caller when it holds any of ``roles`` (403 otherwise)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted: Sequence[Role] = tuple(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not any(principal.has(r) for r in wanted):
            raise missing_role(wanted)
        return principal

    _ROLES_REQUIRED[dependency] = tuple(wanted)
    return dependency
