"""The one place that knows topic names and how many partitions a topic gets (from the
settings). Every topic is keyed by document_id."""

from __future__ import annotations

from dataclasses import dataclass

from piaoxi.settings import Settings


@dataclass(frozen=True)
class Topics:
    """Full topic names for one deployment (the settings' topic_prefix applied), and the
    partitions of each event topic piaoxi creates (`settings.topic_partitions`: the
    uploader, the worker, the projector and the tests create missing topics with it;
    existing topics keep theirs), replicated `settings.topic_replication_factor` times.
    The partition count is the most worker processes that
    can share one stage; the events of one document stay in one partition (keyed by
    document_id). On the local broker every partition written in a produce request costs
    a few object-store writes, so more partitions cost more there."""

    uploaded: str
    pages: str
    cleaned: str
    entities: str
    failed: str
    schemas: str
    partitions: int = 8
    replication_factor: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(
            uploaded=settings.topic("documents.uploaded"),
            pages=settings.topic("documents.pages"),
            cleaned=settings.topic("documents.cleaned"),
            entities=settings.topic("documents.entities"),
            failed=settings.topic("documents.failed"),
            schemas=settings.topic("_schemas"),
            partitions=settings.topic_partitions,
            replication_factor=settings.topic_replication_factor,
        )

    def event_topics(self) -> tuple[str, ...]:
        """The topics that carry domain events (all but the schema log)."""
        return (self.uploaded, self.pages, self.cleaned, self.entities, self.failed)
