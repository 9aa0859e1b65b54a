"""Event records from what the stage functions return (their own dataclasses, dicts, or
the event records themselves) — shared by the worker and the reprocessing commands."""

from __future__ import annotations

from typing import Any

from events.records import EntitySpan, TextEdit


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """`obj.name` or `obj[name]` for a dict; `default` when missing."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def entity_span(span: Any) -> EntitySpan:
    """An EntitySpan from an entity finder's span."""
    if isinstance(span, EntitySpan):
        return span
    return EntitySpan(
        type=str(field_of(span, "type")),
        surface=str(field_of(span, "surface")),
        start=int(field_of(span, "start")),
        end=int(field_of(span, "end")),
        normalized=field_of(span, "normalized"),
        year_from=field_of(span, "year_from"),
        year_to=field_of(span, "year_to"),
        confidence=float(field_of(span, "confidence", 1.0)),
        source=field_of(span, "source", "gazetteer"),
    )


def text_edit(edit: Any) -> TextEdit:
    """A TextEdit from the cleaner's edit."""
    if isinstance(edit, TextEdit):
        return edit
    return TextEdit(
        raw_start=int(field_of(edit, "raw_start")),
        raw_end=int(field_of(edit, "raw_end")),
        clean_start=int(field_of(edit, "clean_start")),
        clean_end=int(field_of(edit, "clean_end")),
        kind=str(field_of(edit, "kind")),
        before=str(field_of(edit, "before")),
        after=str(field_of(edit, "after")),
        reason=field_of(edit, "reason"),
    )
