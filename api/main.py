"""The ASGI app for `uvicorn api.main:app` (settings from the environment)."""

from __future__ import annotations

from api.app import create_app
from piaoxi.settings import get_settings

app = create_app(get_settings())
