"""CDS Hooks 2.0 wire models: requests, cards, discovery and feedback (the OpenAPI schema).

Requests are read leniently where the specification's own examples differ (extra fields are
kept, ``context`` and ``prefetch`` are free-form); responses are strict.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Action",
    "Card",
    "CdsRequest",
    "CdsResponse",
    "Coding",
    "Discovery",
    "FeedbackItem",
    "FeedbackRequest",
    "FhirAuthorization",
    "Link",
    "OverrideReason",
    "ServiceDescription",
    "Source",
    "Suggestion",
]


class _In(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FhirAuthorization(_In):
    access_token: Annotated[str, Field(min_length=1, repr=False)]
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class CdsRequest(_In):
    """A hook invocation. ``prefetch`` values are FHIR resources, or null for "no data"."""

    hook: Annotated[str, Field(min_length=1, max_length=200)]
    hookInstance: Annotated[str, Field(min_length=1, max_length=200)]
    fhirServer: str | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: dict[str, Any]
    prefetch: dict[str, dict[str, Any] | None] | None = None


class Coding(_Out):
    system: str | None = None
    code: str
    display: str | None = None


class OverrideReason(_Out):
    system: str | None = None
    code: str
    display: str


class Source(_Out):
    label: str
    url: str | None = None
    topic: Coding | None = None


class Action(_Out):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None
    resourceId: str | None = None


class Suggestion(_Out):
    label: str
    uuid: str
    isRecommended: bool = False
    actions: list[Action]


class Link(_Out):
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"
    appContext: str | None = None  # smart links only: passed on to the launched app


class Card(_Out):
    uuid: str
    summary: Annotated[str, Field(min_length=1, max_length=139)]
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None
    overrideReasons: list[OverrideReason] | None = None
    links: list[Link] | None = None


class CdsResponse(_Out):
    cards: list[Card]


class ServiceDescription(_Out):
    hook: str
    title: str
    description: str
    id: str
    prefetch: dict[str, str]
    usageRequirements: str | None = None


class Discovery(_Out):
    services: list[ServiceDescription]


class OverrideReasonIn(_In):
    reason: dict[str, Any] | None = None
    userComment: str | None = None


class AcceptedSuggestion(_In):
    id: Annotated[str, Field(min_length=1, max_length=200)]


class FeedbackItem(_In):
    card: Annotated[str, Field(min_length=1, max_length=200)]
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = []
    overrideReason: OverrideReasonIn | None = None
    outcomeTimestamp: str | None = None


class FeedbackRequest(_In):
    feedback: Annotated[list[FeedbackItem], Field(min_length=1, max_length=1000)]
