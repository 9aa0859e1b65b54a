"""Entity browsing: values with counts, and the documents that mention one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api import queries
from api.deps import ENTITY_TYPE, NO_CONTROL, Caller, Conn
from api.errors import INVALID_CURSOR_RESPONSE
from api.models import EntityCount, EntityDocuments, EntityList
from api.routers.documents import summary_from_row

router = APIRouter(prefix="/entities", tags=["entities"])

MAX_LIMIT = 200


@router.get("", response_model=EntityList, summary="Entity values with mention/document counts")
async def list_entities(
    conn: Conn,
    caller: Caller,
    type: Annotated[
        str | None, Query(pattern=ENTITY_TYPE, description="PERSON, PLACE, DYNASTY, …")
    ] = None,
    q: Annotated[
        str | None, Query(max_length=50, pattern=NO_CONTROL, description="Value prefix.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
) -> EntityList:
    """Counts cover the current version of documents the caller may see, nothing else."""
    rows = await queries.browse_entities(
        conn, caller, entity_type=type, prefix=q or None, limit=limit
    )
    return EntityList(
        items=[
            EntityCount(
                type=r["type"], value=r["value"], mentions=r["mentions"], documents=r["documents"]
            )
            for r in rows
        ],
        limit=limit,
    )


@router.get(
    "/{entity_type}/{value}/documents",
    response_model=EntityDocuments,
    summary="Visible documents mentioning one entity",
    responses=INVALID_CURSOR_RESPONSE,
)
async def entity_documents(
    conn: Conn,
    caller: Caller,
    entity_type: Annotated[str, Path(pattern=ENTITY_TYPE)],
    value: Annotated[str, Path(min_length=1, max_length=100, pattern=NO_CONTROL)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=1000, pattern=NO_CONTROL)] = None,
) -> EntityDocuments:
    filters = queries.DocumentFilters(entity_type=entity_type, entity_value=value)
    result = await queries.list_documents(conn, caller, filters, limit=limit, cursor=cursor)
    return EntityDocuments(
        type=entity_type,
        value=value,
        items=[summary_from_row(r) for r in result.rows],
        next_cursor=result.next_cursor,
        limit=limit,
    )
