"""One typed settings object for the service, read from ``LEGSPASM_*`` environment variables.

Every surface that needs configuration takes a :class:`Settings` argument; nothing reads the
environment anywhere else. ``Settings()`` reads the environment; tests build one explicitly.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_DATABASE_URL", "Issuer", "Settings"]

DEFAULT_DATABASE_URL = "sqlite:///legspasm-audit.sqlite3"


class Issuer(BaseModel):
    """An EHR allowed to call the service: its JWT ``iss`` and where its public keys are."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iss: Annotated[str, Field(min_length=1)]
    jwks_url: str | None = None  # fetched with httpx and cached; a token's ``jku`` must equal it
    jwks_file: Path | None = None  # a JWKS document on disk
    tenant: str | None = None  # when set, the token's ``tenant`` claim must equal it

    @model_validator(mode="after")
    def _one_source(self) -> Issuer:
        if (self.jwks_url is None) == (self.jwks_file is None):
            raise ValueError(f"issuer {self.iss!r}: give exactly one of jwks_url or jwks_file")
        return self


class Settings(BaseSettings):
    """Service configuration. Environment: ``LEGSPASM_<FIELD>`` (lists and maps as JSON)."""

    model_config = SettingsConfigDict(env_prefix="LEGSPASM_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8000
    # The base URL the EHR calls (scheme, host, port and any path prefix, no trailing slash).
    # A token's ``aud`` must equal ``{public_url}/cds-services/{id}``. Required unless dev: the
    # request's Host header is the caller's to choose, so it never sets the audience.
    public_url: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    # Audit records are appended to a local journal (fdatasync'ed) before a request answers and
    # moved into the database in batches by a background thread; a restart loads what remains.
    # False: each request writes its row to the database itself (slower).
    audit_journal: bool = True
    # The journal's folder, one per database. Default: beside a SQLite file
    # (``<file>.journal``), or ``legspasm-journal/<db>-<hash>`` in the working directory.
    journal_dir: Path | None = None
    # How often the background thread moves the journal into the database (seconds).
    journal_interval_s: Annotated[float, Field(gt=0, le=60)] = 0.1
    # Worker threads for requests (CPU-bound under one interpreter lock; see the benchmark).
    threads: Annotated[int, Field(ge=1, le=200)] = 4
    # Worker processes serving the port (``legspasm serve --workers N``), each with its own
    # interpreter and ``threads`` request threads, all on the one database: PostgreSQL, or a
    # SQLite file on this machine's disk (WAL lets processes share it).
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    # Development mode: no JWT verification (a loud warning is logged at start-up).
    dev: bool = False
    issuers: list[Issuer] = []
    jwt_leeway_s: Annotated[float, Field(ge=0, le=300)] = 30.0
    jwt_max_lifetime_s: Annotated[float, Field(gt=0, le=86400)] = 3600.0
    jwks_cache_s: Annotated[float, Field(ge=0)] = 300.0
    # Reads from the EHR's FHIR server when a prefetch key is absent.
    fhir_timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    fhir_max_resources: Annotated[int, Field(ge=1)] = 2000
    # Browser-based CDS clients (e.g. the CDS Hooks sandbox) need CORS; "*" allows any origin.
    cors_origins: list[str] = ["*"]
    # Where the full plan is shown (the web page); patient-view cards link there.
    web_url: str | None = None
    # The clinician web pages that create or list assessments (intake, upload, history).
    # None: on with --dev, off otherwise. They have no login of their own: in production put
    # them behind the organisation's authenticating proxy, then set true. A plan page reached
    # by its unguessable id (the CDS Hooks card link) is always served.
    web_pages: bool | None = None
    max_upload_mb: Annotated[float, Field(gt=0, le=500)] = 25.0
    # Any request body: refused with 413 above this, before it is read, parsed or authenticated
    # (kept above max_upload_mb, so an upload's own limit answers with its page).
    max_body_mb: Annotated[float, Field(gt=0, le=1000)] = 50.0
    # The key plan links are signed with: a card links to /plan/{invocation}?t=TOKEN, a signed,
    # expiring capability for that one plan. Required unless dev (dev: a random key per process).
    # Give every worker and every restart the same secret (32 or more random characters).
    link_secret: SecretStr | None = None
    # SMART App Launch of the web page (EHR launch with PKCE): legspasm's client id at the
    # EHR's authorization server, the FHIR servers (iss) it may be launched from (an allowlist:
    # the browser names iss), and the scopes it asks for. No client id: no SMART launch.
    smart_client_id: str | None = None
    smart_issuers: list[str] = []
    smart_scope: str = "launch openid fhirUser patient/*.read"
    plan_link_hours: Annotated[float, Field(gt=0, le=168)] = 12.0
    # The assessment date: None means the date each request is received (demos and tests fix it).
    as_of: dt.date | None = None
    # The paper the patient handout PDF is laid out for (one page): US Letter or A4.
    handout_page_size: Literal["letter", "a4"] = "letter"

    @model_validator(mode="after")
    def _secret_long_enough(self) -> Settings:
        if self.link_secret is not None and len(self.link_secret.get_secret_value()) < 32:
            raise ValueError("link_secret must be at least 32 characters")
        return self

    @model_validator(mode="after")
    def _body_above_upload(self) -> Settings:
        if self.max_body_mb <= self.max_upload_mb:
            raise ValueError("max_body_mb must be larger than max_upload_mb")
        return self

    @property
    def web_pages_on(self) -> bool:
        """Whether the intake, upload and history pages are served (``web_pages``, else dev)."""
        return self.web_pages if self.web_pages is not None else self.dev
