"""A read-only Confluent-compatible Schema Registry HTTP surface over our registry.

Enough of the Confluent REST API for ordinary clients to decode our topics
(confluent-kafka's SchemaRegistryClient + AvroDeserializer, `kcat -s value=avro -r URL`):

    GET /schemas/ids/{id}                         {"schema": "..."}
    GET /schemas/ids/{id}/schema                  the schema itself
    GET /schemas/ids/{id}/versions                [{"subject", "version"}]
    GET /schemas/types                            ["AVRO"]
    GET /subjects                                 ["piaoxi.events.PageText", ...]
    GET /subjects/{subject}/versions              [1, 2]
    GET /subjects/{subject}/versions/{version}    {"subject","version","id","schema"}
    GET /subjects/{subject}/versions/{version}/schema
    GET /config                                   {"compatibilityLevel": "BACKWARD_TRANSITIVE"}

Responses are `application/vnd.schemaregistry.v1+json`; errors carry Confluent's body
`{"error_code": 40403, "message": "..."}` (no app-level exception handler needed). Mount
with `app.include_router(registry_router(settings))`, at the root or under a prefix
(clients then use that prefix as the registry URL).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from events.registry import (
    BrowsableRegistry,
    EmbeddedRegistry,
    RegistryUnavailable,
    SchemaNotFound,
    registry_for,
)

if TYPE_CHECKING:
    from piaoxi.settings import Settings

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# How stale the list of subjects may be before `_schemas` is read again.
REFRESH_AFTER_S = 5.0

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
INVALID_VERSION = 42202
BACKEND_ERROR = 50001


class RegistryJSON(JSONResponse):
    media_type = CONTENT_TYPE


class RegistryError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: int, message: str) -> RegistryJSON:
    return RegistryJSON({"error_code": code, "message": message}, status_code=status)


class RegistryErrorBody(BaseModel):
    """A registry error, as Confluent's Schema Registry writes it (not piaoxi's format)."""

    error_code: int
    message: str


def _registry_error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {CONTENT_TYPE: {"schema": RegistryErrorBody.model_json_schema()}},
    }


REGISTRY_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _registry_error("Unknown schema id (40403), subject (40401) or version (40402)."),
    422: _registry_error("Not a version number nor `latest` (42202)."),
    500: _registry_error("The schema log cannot be read (50001)."),
}


# A version number or `latest`: stated in the schema, checked by the route itself so that a
# bad one gets the registry's own 42202 answer (FastAPI's validation would answer in
# piaoxi's error format, which registry clients do not read).
VersionParam = Annotated[
    str,
    Path(
        description='1..2^31-1, -1 or "latest".',
        json_schema_extra={"pattern": r"^(latest|-1|[1-9][0-9]{0,9})$"},
    ),
]


def registry_router(
    settings: Settings | None = None, *, registry: BrowsableRegistry | None = None
) -> APIRouter:
    """The registry endpoints for `settings` (or an explicit registry), resolved lazily.
    Errors are Confluent's `{"error_code", "message"}` (documented per route)."""
    router = APIRouter(
        default_response_class=RegistryJSON, tags=["schema registry"], responses=REGISTRY_ERRORS
    )
    holder: dict[str, BrowsableRegistry] = {}

    def get_registry() -> BrowsableRegistry:
        if "r" not in holder:
            if registry is not None:
                holder["r"] = registry
            else:
                from piaoxi.settings import get_settings

                holder["r"] = registry_for(settings or get_settings())
        return holder["r"]

    def fresh() -> BrowsableRegistry:
        found = get_registry()
        if isinstance(found, EmbeddedRegistry):
            try:
                found.refresh_if_older(REFRESH_AFTER_S)
            except RegistryUnavailable as exc:
                raise RegistryError(500, BACKEND_ERROR, f"Error in the backend: {exc}") from exc
        return found

    def schema_text(id_: int) -> str:
        try:
            return get_registry().schema_text(id_)
        except SchemaNotFound:
            raise RegistryError(404, SCHEMA_NOT_FOUND, f"Schema {id_} not found") from None
        except RegistryUnavailable as exc:
            raise RegistryError(500, BACKEND_ERROR, f"Error in the backend: {exc}") from exc

    def versions_of(subject: str) -> list[int]:
        try:
            return fresh().versions(subject)
        except SchemaNotFound:
            raise RegistryError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.") from None

    def version_of(subject: str, version: str) -> dict[str, Any]:
        if version != "latest":
            try:
                number = int(version)
            except ValueError:
                number = 0
            if number < 1 and number != -1:
                raise RegistryError(
                    422,
                    INVALID_VERSION,
                    f"The specified version '{version}' is not a valid version id. Allowed "
                    'values are between [1, 2^31-1] and the string "latest"',
                )
        versions_of(subject)  # 40401 before 40402
        try:
            return get_registry().get_version(subject, version).as_json()
        except SchemaNotFound:
            raise RegistryError(404, VERSION_NOT_FOUND, f"Version {version} not found.") from None

    def respond(make: Callable[[], Any]) -> RegistryJSON:
        try:
            return RegistryJSON(make())
        except RegistryError as exc:
            return error_response(exc.status, exc.code, exc.message)

    def parse_id(schema_id: str) -> int:
        try:
            return int(schema_id)
        except ValueError:
            raise RegistryError(404, SCHEMA_NOT_FOUND, f"Schema {schema_id} not found") from None

    @router.get("/schemas/ids/{schema_id}", summary="The schema with this id")
    def get_schema(schema_id: str) -> RegistryJSON:
        return respond(lambda: {"schema": schema_text(parse_id(schema_id))})

    @router.get("/schemas/ids/{schema_id}/schema", summary="Only the schema with this id")
    def get_schema_only(schema_id: str) -> RegistryJSON:
        return respond(lambda: json.loads(schema_text(parse_id(schema_id))))

    @router.get("/schemas/ids/{schema_id}/versions", summary="Subject-versions of an id")
    def get_schema_versions(schema_id: str) -> RegistryJSON:
        def make() -> list[dict[str, Any]]:
            id_ = parse_id(schema_id)
            schema_text(id_)  # 40403 for an unknown id
            found = fresh()
            return [
                {"subject": subject, "version": number}
                for subject in found.subjects()
                for number in found.versions(subject)
                if found.get_version(subject, number).id == id_
            ]

        return respond(make)

    @router.get("/schemas/types", summary="Schema types this registry serves")
    def get_types() -> RegistryJSON:
        return respond(lambda: ["AVRO"])

    @router.get("/subjects", summary="All subjects (record full names)")
    def get_subjects() -> RegistryJSON:
        return respond(lambda: fresh().subjects())

    @router.get("/subjects/{subject}/versions", summary="The versions of a subject")
    def get_versions(subject: str) -> RegistryJSON:
        return respond(lambda: versions_of(subject))

    @router.get("/subjects/{subject}/versions/{version}", summary="One version of a subject")
    def get_version(subject: str, version: VersionParam) -> RegistryJSON:
        return respond(lambda: version_of(subject, version))

    @router.get(
        "/subjects/{subject}/versions/{version}/schema", summary="Only the schema of a version"
    )
    def get_version_schema(subject: str, version: VersionParam) -> RegistryJSON:
        return respond(lambda: json.loads(version_of(subject, version)["schema"]))

    @router.get("/config", summary="The global compatibility level")
    def get_config() -> RegistryJSON:
        return respond(lambda: {"compatibilityLevel": "BACKWARD_TRANSITIVE"})

    return router


def registry_app(
    settings: Settings | None = None, *, registry: BrowsableRegistry | None = None
) -> FastAPI:
    """A standalone registry service (what `piaoxi schemas serve` runs)."""
    app = FastAPI(title="piaoxi schema registry (read-only)", version="1")
    app.include_router(registry_router(settings, registry=registry))
    return app
