-- Entities are looked up by the value readers show: coalesce(normalized, surface).
-- One expression index replaces (type, normalized) and (type, surface); the trigram index
-- on pages.cleaned_text (in an early 001) is dropped: searching goes through the
-- simplified key (pages.search_key) or the search index.
DROP INDEX IF EXISTS entities_type_normalized_idx;
DROP INDEX IF EXISTS entities_type_surface_idx;
DROP INDEX IF EXISTS pages_cleaned_text_trgm_idx;
CREATE INDEX IF NOT EXISTS entities_type_value_idx
    ON entities (type, (coalesce(normalized, surface)));
