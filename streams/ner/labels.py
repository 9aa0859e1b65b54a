"""The tag set shared by training and runtime: BIO over characters for six entity types."""

from __future__ import annotations

ENTITY_TYPES: tuple[str, ...] = (
    "PERSON",
    "PLACE",
    "DYNASTY",
    "ERA_DATE",
    "OFFICIAL_TITLE",
    "BOOK",
)

LABELS: tuple[str, ...] = ("O", *(f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")))
LABEL_INDEX: dict[str, int] = {label: i for i, label in enumerate(LABELS)}

PAD_ID = 0
UNK_ID = 1


def allowed_transition(previous: str, current: str) -> bool:
    """Whether tag ``current`` may follow ``previous`` in a well-formed BIO sequence."""
    if not current.startswith("I-"):
        return True
    return previous != "O" and previous[2:] == current[2:]


def allowed_start(label: str) -> bool:
    return not label.startswith("I-")
