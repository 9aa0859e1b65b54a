-- Read models of the piaoxi projections (owner: projections/postgres.py).
--
-- Applied by projections.migrate with `search_path = <schema>, public`: the names below
-- are unqualified so the same file builds the live schema (`readmodel`) and a shadow
-- schema during `piaoxi replay projections`. Every value comes from events (never now()),
-- so two projections of the same log are identical row for row.

-- One row per document: the metadata of its newest uploaded version. A retracted
-- document keeps a tombstone row (retracted = true, status 'retracted') and loses its
-- versions, pages, entities and history.
CREATE TABLE documents (
    document_id      text PRIMARY KEY,
    current_version  integer NOT NULL,
    title            text,
    filename         text,
    owner            text,
    visibility       text,                      -- private | public
    tags             text[] NOT NULL DEFAULT '{}',
    media_type       text,
    size_bytes       bigint,
    sha256           text,
    blob_key         text,
    layout           text,                      -- auto | horizontal | vertical (requested)
    ocr_engine       text,
    page_count       integer,                   -- of the current version, once known
    status           text NOT NULL DEFAULT 'processing',  -- processing | done | failed | retracted
    retracted        boolean NOT NULL DEFAULT false,
    retracted_reason text,
    retracted_at     timestamptz,
    uploaded_at      timestamptz,               -- occurred_at of the current version's upload
    upload_event_id  text
);
CREATE INDEX documents_owner_idx ON documents (owner);
CREATE INDEX documents_visibility_idx ON documents (visibility) WHERE NOT retracted;
CREATE INDEX documents_tags_idx ON documents USING gin (tags);
CREATE INDEX documents_title_trgm_idx ON documents USING gin (title gin_trgm_ops);

-- Every uploaded version of a document.
CREATE TABLE document_versions (
    document_id      text NOT NULL,
    document_version integer NOT NULL,
    title            text,
    filename         text,
    owner            text,
    visibility       text,
    tags             text[] NOT NULL DEFAULT '{}',
    media_type       text,
    size_bytes       bigint,
    sha256           text,
    blob_key         text,
    layout           text,
    ocr_engine       text,
    uploaded_at      timestamptz NOT NULL,
    event_id         text NOT NULL,
    PRIMARY KEY (document_id, document_version)
);

-- The latest state of each page of each document version: one column group per stage.
-- "Latest" = the stage event with the greatest (occurred_at, event_id); older ones are
-- kept in page_versions.
CREATE TABLE pages (
    document_id          text NOT NULL,
    document_version     integer NOT NULL,
    page_number          integer NOT NULL,
    page_count           integer NOT NULL,
    -- extract / OCR (PageText)
    raw_text             text,
    lines                jsonb,                 -- [{text, confidence, box:{x0,y0,x1,y1}, order}]
    engine               text,
    engine_version       text,
    layout               text,                  -- horizontal | vertical
    source               text,                  -- ocr | text-layer | docx | text
    encoding             text,
    encoding_uncertain   boolean,
    image_blob_key       text,
    mean_confidence      real,                  -- over lines; NULL when no lines
    min_confidence       real,
    text_stage_version   text,
    text_event_id        text,
    text_at              timestamptz,
    -- cleaning (PageCleaned)
    cleaned_text         text,
    search_key           text,                  -- simplified, variant-folded search key
    edits                jsonb,                 -- [{raw_start, raw_end, clean_start, clean_end, kind, before, after}]
    clean_stage_version  text,
    clean_event_id       text,
    cleaned_at           timestamptz,
    -- entities (PageEntities); the spans are in `entities`
    entity_count         integer,
    entity_model_version text,
    entities_stage_version text,
    entities_event_id    text,
    entities_at          timestamptz,
    PRIMARY KEY (document_id, document_version, page_number)
);
CREATE INDEX pages_search_key_trgm_idx ON pages USING gin (search_key gin_trgm_ops);


-- History: every stage result ever applied to a page (one row per event).
CREATE TABLE page_versions (
    event_id         text PRIMARY KEY,
    document_id      text NOT NULL,
    document_version integer NOT NULL,
    page_number      integer NOT NULL,
    stage            text NOT NULL,             -- extract | clean | entities
    stage_version    text NOT NULL,
    model_version    text,                      -- entities only
    occurred_at      timestamptz NOT NULL,
    causation_id     text,
    body             jsonb NOT NULL             -- extract: {text, engine, engine_version, source}
                                                -- clean: {cleaned_text, search_key}
                                                -- entities: {entities: [...]}
);
CREATE INDEX page_versions_page_idx
    ON page_versions (document_id, document_version, page_number, stage, occurred_at);

-- Entities of the latest PageEntities of each page (offsets into pages.cleaned_text).
CREATE TABLE entities (
    document_id      text NOT NULL,
    document_version integer NOT NULL,
    page_number      integer NOT NULL,
    ordinal          integer NOT NULL,          -- position in the event's list
    type             text NOT NULL,             -- PERSON | PLACE | DYNASTY | ERA_DATE | OFFICIAL_TITLE | BOOK
    surface          text NOT NULL,
    normalized       text,
    start_offset     integer NOT NULL,
    end_offset       integer NOT NULL,
    year_from        integer,
    year_to          integer,
    confidence       real NOT NULL,
    source           text NOT NULL,             -- gazetteer | model | pattern
    model_version    text NOT NULL,
    event_id         text NOT NULL,
    PRIMARY KEY (document_id, document_version, page_number, ordinal)
);
CREATE INDEX entities_type_normalized_idx ON entities (type, normalized);
CREATE INDEX entities_type_surface_idx ON entities (type, surface);
CREATE INDEX entities_years_idx ON entities (year_from, year_to) WHERE year_from IS NOT NULL;

-- Every ProcessingFailed event (the dead letters, as the read side sees them).
CREATE TABLE failures (
    event_id         text PRIMARY KEY,
    document_id      text NOT NULL,
    document_version integer NOT NULL,
    failed_stage     text NOT NULL,
    error_class      text NOT NULL,
    message          text NOT NULL,
    attempt          integer NOT NULL,
    retryable        boolean NOT NULL,
    page_number      integer,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL,
    source_event_id  text,
    stage_version    text NOT NULL,
    occurred_at      timestamptz NOT NULL
);
CREATE INDEX failures_document_idx ON failures (document_id, failed_stage, occurred_at);

-- Status per document (current version) per stage: extract | clean | entities.
-- failed when the newest failure of the stage is newer than its newest page result;
-- done when every page has the stage's result; else pending.
CREATE TABLE processing_status (
    document_id      text NOT NULL,
    stage            text NOT NULL,
    document_version integer NOT NULL,
    status           text NOT NULL,             -- pending | done | failed
    pages_total      integer,
    pages_done       integer NOT NULL,
    error_class      text,
    error_message    text,
    failed_page      integer,
    failed_at        timestamptz,
    updated_at       timestamptz,               -- occurred_at of the newest event counted
    PRIMARY KEY (document_id, stage)
);
CREATE INDEX processing_status_status_idx ON processing_status (stage, status);

-- The processing log: one line per event applied (append-only, keyed by event_id).
CREATE TABLE processing_log (
    event_id         text PRIMARY KEY,
    document_id      text NOT NULL,
    document_version integer NOT NULL,
    event_type       text NOT NULL,             -- DocumentUploaded | PageText | ...
    stage            text NOT NULL,
    stage_version    text NOT NULL,
    page_number      integer,
    occurred_at      timestamptz NOT NULL,
    causation_id     text,
    topic            text NOT NULL,
    partition        integer NOT NULL,
    "offset"         bigint NOT NULL,
    summary          text NOT NULL
);
CREATE INDEX processing_log_document_idx ON processing_log (document_id, occurred_at);

-- Retractions seen (events of these documents up to `document_version` are ignored).
CREATE TABLE retractions (
    document_id      text PRIMARY KEY,
    document_version integer NOT NULL,
    reason           text NOT NULL,
    owner            text NOT NULL,
    event_id         text NOT NULL,
    occurred_at      timestamptz NOT NULL
);

-- Tracking records: the last offset each projection applied, per topic partition,
-- written in the same transaction as the read-model change.
CREATE TABLE tracking (
    projection       text NOT NULL,
    topic            text NOT NULL,
    partition        integer NOT NULL,
    "offset"         bigint NOT NULL,           -- last applied offset; -1 = none yet
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Lag per projection and topic partition, refreshed by the running projectors.
-- high_watermark comes from fetch responses (never from ListOffsets 'latest').
CREATE TABLE projection_lag (
    projection       text NOT NULL,
    topic            text NOT NULL,
    partition        integer NOT NULL,
    position         bigint NOT NULL,           -- next offset to apply
    high_watermark   bigint NOT NULL,           -- offset after the last message in the log
    lag              bigint NOT NULL,           -- high_watermark - position (>= 0)
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Documents whose search-index copy is stale (transactional outbox, drained by the
-- search projector; one row per change, so no change is lost while one is indexed).
CREATE TABLE search_outbox (
    id               bigserial PRIMARY KEY,
    document_id      text NOT NULL,
    enqueued_at      timestamptz NOT NULL DEFAULT now()
);
