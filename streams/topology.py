"""The one declaration of piaoxi's topics, stream agents and projections.

The faust app (`streams.app`) is built from `AGENTS` and `TOPICS`, and `piaoxi topology`
prints the same tables, so what is shown is what runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from events.topics import Topics
from piaoxi.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """A topic: its field in `events.topics.Topics` and the events it carries."""

    name: str
    events: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class AgentSpec:
    """A thin stream agent wrapping one pure stage function."""

    name: str
    source: str
    sinks: tuple[str, ...]
    consumes: tuple[str, ...]
    produces: tuple[str, ...]
    stage_function: str
    in_pool: bool
    description: str


@dataclass(frozen=True)
class ProjectionSpec:
    """A read model fed from topics (run by `piaoxi project`, see `projections/`)."""

    name: str
    sources: tuple[str, ...]
    target: str
    description: str


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        "uploaded",
        ("DocumentUploaded", "DocumentRetracted"),
        "One event per upload (blob in S3) or retraction, keyed by document_id.",
    ),
    TopicSpec("pages", ("PageText",), "Recognised or extracted text, one event per page."),
    TopicSpec("cleaned", ("PageCleaned",), "Washed text, search key and the edit map."),
    TopicSpec("entities", ("PageEntities",), "Entity spans found in the cleaned text."),
    TopicSpec("failed", ("ProcessingFailed",), "Dead letters: any stage failure, with source."),
)

AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        name="extract",
        source="uploaded",
        sinks=("pages", "failed"),
        consumes=("DocumentUploaded", "DocumentRetracted"),
        produces=("PageText", "ProcessingFailed"),
        stage_function="streams.extract.split_pages + streams.extract.process_page",
        in_pool=True,
        description="Fetch the blob, split it into pages, extract or OCR each page; "
        "page images are stored in S3 for the reading view. Retractions pass by.",
    ),
    AgentSpec(
        name="clean",
        source="pages",
        sinks=("cleaned", "failed"),
        consumes=("PageText",),
        produces=("PageCleaned", "ProcessingFailed"),
        stage_function="streams.clean.clean_page",
        in_pool=False,
        description="Wash the page text: variants, punctuation, broken lines, OCR noise; "
        "simplified search key; every edit recorded.",
    ),
    AgentSpec(
        name="entities",
        source="cleaned",
        sinks=("entities", "failed"),
        consumes=("PageCleaned",),
        produces=("PageEntities", "ProcessingFailed"),
        stage_function="streams.entities.find_entities",
        in_pool=True,
        description="Gazetteer, patterns and the character tagger: persons, places, "
        "dynasties, era dates (with Western years), titles, books.",
    ),
)

PROJECTIONS: tuple[ProjectionSpec, ...] = (
    ProjectionSpec(
        name="read-models",
        sources=("uploaded", "pages", "cleaned", "entities", "failed"),
        target="postgres",
        description="Documents, versions, pages, entities, processing status and log; "
        "checkpoint written in the same transaction.",
    ),
    ProjectionSpec(
        name="search-index",
        sources=("uploaded", "cleaned", "entities"),
        target="search",
        description="One search document per document and per page (cjk + ngram fields).",
    ),
)

STAGES: tuple[str, ...] = tuple(agent.name for agent in AGENTS)


def agent(name: str) -> AgentSpec:
    for spec in AGENTS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGES)}")


def parse_stages(text: str | None) -> tuple[str, ...]:
    """`"extract,clean"` → the stage names, validated; empty or None → all stages."""
    if not text:
        return STAGES
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    for name in names:
        agent(name)
    return names


def topic_name(topics: Topics, logical: str) -> str:
    """The full topic name of a logical topic ("pages") for one deployment."""
    name: str = getattr(topics, logical)
    return name


def describe(settings: Settings) -> dict[str, Any]:
    """The topology with this deployment's full topic names and consumer groups."""
    topics = Topics.from_settings(settings)
    return {
        "topics": [{**asdict(spec), "topic": topic_name(topics, spec.name)} for spec in TOPICS],
        "agents": [
            {
                **asdict(spec),
                "source_topic": topic_name(topics, spec.source),
                "sink_topics": [topic_name(topics, s) for s in spec.sinks],
                "group": settings.worker_group_id,
            }
            for spec in AGENTS
        ],
        "projections": [
            {
                **asdict(spec),
                "source_topics": [topic_name(topics, s) for s in spec.sources],
                "group": settings.projector_group_id,
            }
            for spec in PROJECTIONS
        ],
    }
