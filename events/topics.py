"""The one place that knows topic names and how many partitions a topic gets. Every topic
is keyed by document_id."""

from __future__ import annotations

from dataclasses import dataclass

from piaoxi.settings import Settings

# Partitions of every event topic piaoxi creates (the uploader, the worker, the projector
# and the tests create missing topics with this count; existing topics keep theirs). It is
# the most worker processes that can share one stage, and the events of one document stay
# in one partition (keyed by document_id). On the local broker every partition written in
# a produce request costs a few object-store writes, so more partitions cost more there.
TOPIC_PARTITIONS = 8


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
