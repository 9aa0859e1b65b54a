"""Response models: the API's documentation. Every route returns one of these."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DocumentSummary(BaseModel):
    """One document as listed: its latest version's metadata and processing status."""

    document_id: str
    title: str
    owner: str
    visibility: str = Field(description="`public` or `private`.")
    tags: list[str] = []
    status: str = Field(description="Processing status of the latest version.")
    version: int = Field(description="Latest document version.")
    filename: str | None = None
    media_type: str | None = None
    page_count: int | None = None
    uploaded_at: datetime | None = None
    updated_at: datetime | None = None


class DocumentPage(BaseModel):
    """A page of a cursor-paginated document list."""

    items: list[DocumentSummary]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page.")
    limit: int


class DocumentVersion(BaseModel):
    version: int
    blob_key: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    media_type: str | None = None
    filename: str | None = None
    layout: str | None = None
    ocr_engine: str | None = None
    uploaded_at: datetime | None = None


class StageStatus(BaseModel):
    """How far one pipeline stage got with the latest version."""

    stage: str
    status: str = Field(description="pending | running | done | failed")
    pages_done: int = 0
    page_count: int | None = None
    stage_version: str | None = None
    model_version: str | None = Field(
        None, description="entities only: the gazetteer and model that found the entities"
    )
    updated_at: datetime | None = None


class ProcessingError(BaseModel):
    """A ProcessingFailed event recorded for the document."""

    stage: str
    error_class: str
    message: str
    attempt: int | None = None
    page_number: int | None = None
    retryable: bool | None = None
    occurred_at: datetime | None = None


class EntityCount(BaseModel):
    type: str
    value: str = Field(description="The normalised value (the surface form if none).")
    mentions: int
    documents: int | None = None


class PageInfo(BaseModel):
    page_number: int
    has_text: bool
    has_cleaned: bool
    has_entities: bool
    has_image: bool


class DocumentDetail(DocumentSummary):
    """A document with its versions, per-stage status, errors and an entity summary."""

    versions: list[DocumentVersion] = []
    stages: list[StageStatus] = []
    errors: list[ProcessingError] = []
    entities: list[EntityCount] = []
    pages: list[PageInfo] = []


class TextEdit(BaseModel):
    """One cleaning edit: raw[raw_start:raw_end] became cleaned[clean_start:clean_end]."""

    raw_start: int
    raw_end: int
    clean_start: int
    clean_end: int
    kind: str
    before: str
    after: str


class EntitySpan(BaseModel):
    """An entity in the cleaned text, by character offsets [start, end)."""

    type: str
    surface: str
    start: int
    end: int
    normalized: str | None = None
    year_from: int | None = None
    year_to: int | None = None
    confidence: float | None = None
    source: str | None = None


class Box(BaseModel):
    x0: float
    y0: float
    x1: float
    y1: float


class OcrLine(BaseModel):
    text: str
    confidence: float | None = None
    box: Box | None = None
    order: int | None = None


class PageDetail(BaseModel):
    """One page: raw and cleaned text, the edit map, entities, OCR lines and its image."""

    document_id: str
    version: int
    page_number: int
    page_count: int | None = None
    raw_text: str | None = None
    cleaned_text: str | None = None
    search_key: str | None = None
    edits: list[TextEdit] = []
    entities: list[EntitySpan] = []
    lines: list[OcrLine] = []
    engine: str | None = None
    layout: str | None = None
    source: str | None = None
    image_url: str | None = Field(None, description="Streams the page image, when there is one.")


class FacetBucket(BaseModel):
    value: str
    count: int


class EntityFacetBucket(BaseModel):
    type: str
    value: str
    count: int


class SearchFacets(BaseModel):
    dynasty: list[FacetBucket] = []
    entity_type: list[FacetBucket] = []
    entity: list[EntityFacetBucket] = []
    tag: list[FacetBucket] = []


class SearchHit(BaseModel):
    document_id: str
    page_number: int | None = Field(None, description="None for a document-level hit.")
    version: int | None = None
    title: str | None = None
    owner: str | None = None
    visibility: str | None = None
    tags: list[str] = []
    score: float | None = None
    highlights: list[str] = Field(
        [], description="Fragments of the cleaned text; matches wrapped in <mark>…</mark>."
    )


class SearchResponse(BaseModel):
    query: str
    phrase: bool = Field(description="True when the query was an exact phrase in quotes.")
    total: int
    page: int
    size: int
    hits: list[SearchHit]
    facets: SearchFacets
    facets_sampled: bool = Field(
        False, description="True when the facet counts cover only the best-scoring pages."
    )


class EntityList(BaseModel):
    items: list[EntityCount]
    limit: int


class EntityDocuments(BaseModel):
    type: str
    value: str
    items: list[DocumentSummary]
    next_cursor: str | None = None
    limit: int


class ProjectionLag(BaseModel):
    projection: str = Field(description="`postgres`, `search`, …")
    topic: str = Field(description="The topic (`search_outbox` for the search projection).")
    events_behind: int | None = Field(
        None, description="Events (search: documents) not yet applied; admins only."
    )
    updated_at: datetime | None = None


class StatusReport(BaseModel):
    """Pipeline state, as far as the caller may see it (counts respect visibility)."""

    projections: list[ProjectionLag]
    failures_per_stage: dict[str, int]
    documents_per_status: dict[str, int]
    documents: int
    pages: int


class HealthCheck(BaseModel):
    name: str
    ok: bool
    detail: str | None = None


class Health(BaseModel):
    status: str = Field(description="`ok` or `unavailable`.")
    checks: list[HealthCheck] = []
