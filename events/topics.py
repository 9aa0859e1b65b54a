"""The one place that knows topic names. Every topic is keyed by document_id."""

from __future__ import annotations

from dataclasses import dataclass

from piaoxi.settings import Settings


@dataclass(frozen=True)
class Topics:
    """Full topic names for one deployment (the settings' topic_prefix applied)."""

    uploaded: str
    pages: str
    cleaned: str
    entities: str
    failed: str
    schemas: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            uploaded=settings.topic("documents.uploaded"),
            pages=settings.topic("documents.pages"),
            cleaned=settings.topic("documents.cleaned"),
            entities=settings.topic("documents.entities"),
            failed=settings.topic("documents.failed"),
            schemas=settings.topic("_schemas"),
        )

    def event_topics(self) -> tuple[str, ...]:
        """The topics that carry domain events (all but the schema log)."""
        return (self.uploaded, self.pages, self.cleaned, self.entities, self.failed)
