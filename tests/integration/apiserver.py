"""A `piaoxi api` process serving the sample documents on its own isolated database,
search index and topics — shared by the API tests that need a real server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from api import sample_data as sample
from piaoxi.settings import Settings


@contextmanager
def sample_api_server(stack: Settings) -> Iterator[sample.ApiServer]:
    """Load the sample documents into fresh isolated settings, serve them, clean up."""
    from piaoxi.stack import create_database, drop_database, isolated_settings

    isolated = isolated_settings(stack)
    create_database(isolated)
    try:
        asyncio.run(sample.load(isolated))
        sample.put_sample_image(isolated)
        with sample.ApiServer(isolated) as server:
            yield server
    finally:
        asyncio.run(sample.drop_search_index(isolated))
        drop_database(isolated)
