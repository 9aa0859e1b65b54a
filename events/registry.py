"""Schema registries: where schema ids are registered and resolved.

- `EmbeddedRegistry` (default): the source of truth is the compacted topic `_schemas` in our
  own broker, in the record format of Confluent's registry (key
  `{"keytype":"SCHEMA","subject":S,"version":V,"magic":1}`, value
  `{"subject":S,"version":V,"id":ID,"schema":TEXT,"deleted":false}`). Ids need no
  coordination: id = `schemas.schema_id(text)` (a hash of the schema), version = the `vN`
  of the kept `.avsc` file. Any producer may (re-)register; duplicates are identical
  records under one key, so compaction folds them. A reader resolves an unknown id by
  reading `_schemas` from the earliest offset up to a marker record it wrote itself (the
  broker's 'latest' offsets are not trusted).
- `ConfluentRegistry`: a real Confluent-compatible registry at `settings.schema_registry_url`
  (Confluent, Karapace, Redpanda, Apicurio) through confluent-kafka's SchemaRegistryClient.
- `InMemoryRegistry`: the embedded rules without a broker, for pure tests and benchmarks.

Subject naming is RecordNameStrategy: the subject is the record's full name, e.g.
`piaoxi.events.DocumentUploaded`, because one topic carries several event types
(DocumentRetracted travels on the uploaded topic; ProcessingFailed may carry anything).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from events.schemas import SchemaCatalog, default_catalog, normalize_schema, schema_id
from piaoxi.log import get_logger

if TYPE_CHECKING:
    from piaoxi.settings import Settings

log = get_logger(__name__)


class SchemaNotFound(LookupError):
    """No schema is registered under this id (or subject/version)."""


class RegistryUnavailable(RuntimeError):
    """The registry's backing store (broker or HTTP registry) could not be reached."""


@dataclass(frozen=True)
class RegisteredSchema:
    subject: str
    version: int
    id: int
    schema: str  # the schema text (JSON)

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "version": self.version,
            "id": self.id,
            "schema": self.schema,
        }


class SchemaRegistry(Protocol):
    """What the codec needs: register a schema under a subject, resolve an id."""

    def register(self, subject: str, schema_text: str, version: int | None = None) -> int: ...

    def schema_text(self, schema_id: int) -> str: ...


class BrowsableRegistry(SchemaRegistry, Protocol):
    """What the read-only HTTP surface and `piaoxi schemas list` need."""

    def subjects(self) -> list[str]: ...

    def versions(self, subject: str) -> list[int]: ...

    def get_version(self, subject: str, version: int | str) -> RegisteredSchema: ...


class _SchemaTable:
    """Registered schemas by id and by (subject, version); shared by embedded flavours."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.by_subject: dict[str, dict[int, RegisteredSchema]] = {}
        self.lock = threading.RLock()

    def add(self, entry: RegisteredSchema) -> None:
        with self.lock:
            self.by_id[entry.id] = entry.schema
            self.by_subject.setdefault(entry.subject, {})[entry.version] = entry

    def remove(self, subject: str, version: int) -> None:
        with self.lock:
            entry = self.by_subject.get(subject, {}).pop(version, None)
            if entry is not None and not self.by_subject[subject]:
                del self.by_subject[subject]

    def subjects(self) -> list[str]:
        with self.lock:
            return sorted(self.by_subject)

    def versions(self, subject: str) -> list[int]:
        with self.lock:
            found = self.by_subject.get(subject)
            if not found:
                raise SchemaNotFound(f"Subject '{subject}' not found.")
            return sorted(found)

    def get_version(self, subject: str, version: int | str) -> RegisteredSchema:
        with self.lock:
            found = self.by_subject.get(subject)
            if not found:
                raise SchemaNotFound(f"Subject '{subject}' not found.")
            number = max(found) if version in ("latest", -1) else int(version)
            entry = found.get(number)
            if entry is None:
                raise SchemaNotFound(f"Version {version} not found.")
            return entry


def _entry_for(
    subject: str, schema_text: str, version: int | None, table: _SchemaTable
) -> RegisteredSchema:
    text = normalize_schema(schema_text)
    id_ = schema_id(text)
    if version is None:
        existing = table.by_subject.get(subject, {})
        same = [e.version for e in existing.values() if e.id == id_]
        version = same[0] if same else max(existing, default=0) + 1
    return RegisteredSchema(subject=subject, version=version, id=id_, schema=text)


class InMemoryRegistry:
    """The embedded registry's rules (hash ids, file versions) kept in memory only."""

    def __init__(self, catalog: SchemaCatalog | None = None) -> None:
        self.catalog = catalog or default_catalog()
        self.table = _SchemaTable()

    def register(self, subject: str, schema_text: str, version: int | None = None) -> int:
        entry = _entry_for(subject, schema_text, version, self.table)
        existing = self.table.by_id.get(entry.id)
        if existing is not None and existing != entry.schema:
            raise ValueError(f"schema id collision on {entry.id}")
        self.table.add(entry)
        return entry.id

    def schema_text(self, schema_id: int) -> str:
        found = self.table.by_id.get(schema_id)
        if found is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return found

    def subjects(self) -> list[str]:
        return self.table.subjects()

    def versions(self, subject: str) -> list[int]:
        return self.table.versions(subject)

    def get_version(self, subject: str, version: int | str) -> RegisteredSchema:
        return self.table.get_version(subject, version)


def schema_record(entry: RegisteredSchema) -> tuple[bytes, bytes]:
    """The `_schemas` key and value of a registration, as Confluent's registry writes them."""
    key = {"keytype": "SCHEMA", "subject": entry.subject, "version": entry.version, "magic": 1}
    value = {**entry.as_json(), "deleted": False}
    return (
        json.dumps(key, separators=(",", ":")).encode(),
        json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
    )


NOOP_KEY = json.dumps({"keytype": "NOOP", "magic": 0}, separators=(",", ":")).encode()


class EmbeddedRegistry:
    """Registry backed by the compacted `_schemas` topic of our broker (see module doc)."""

    read_timeout_s = 20.0

    def __init__(self, settings: Settings, catalog: SchemaCatalog | None = None) -> None:
        from events.topics import Topics

        self.settings = settings
        self.topic = Topics.from_settings(settings).schemas
        self.catalog = catalog or default_catalog()
        self.table = _SchemaTable()
        self._registered: set[tuple[str, int, int]] = set()
        self._producer: Any = None
        self._topic_ready = False
        self._lock = threading.RLock()
        self._loaded_at = 0.0

    # -- plumbing ------------------------------------------------------------------------

    def _client_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self.settings.kafka_bootstrap}

    def _ensure_topic(self) -> None:
        if self._topic_ready:
            return
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({**self._client_config(), "log_level": 3})
        topic = NewTopic(
            self.topic,
            num_partitions=1,
            replication_factor=self.settings.topic_replication_factor,
            config={"cleanup.policy": "compact"},
        )
        try:
            admin.create_topics([topic], request_timeout=10)[self.topic].result(timeout=15)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if getattr(error, "code", lambda: None)() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise RegistryUnavailable(
                    f"cannot create schema topic {self.topic}: {exc}"
                ) from exc
        self._topic_ready = True

    def _get_producer(self) -> Any:
        if self._producer is None:
            from confluent_kafka import Producer

            self._producer = Producer(
                {
                    **self._client_config(),
                    "acks": "all",
                    "enable.idempotence": False,
                    "logger": logging.getLogger("kafka.rdkafka"),
                    "linger.ms": 0,
                    "message.timeout.ms": 15000,
                }
            )
        return self._producer

    def _produce(self, key: bytes, value: bytes | None) -> int:
        """Write one record and wait for it; returns its offset."""
        producer = self._get_producer()
        result: dict[str, Any] = {}

        def on_delivery(err: Any, msg: Any) -> None:
            result["err"] = err
            result["offset"] = msg.offset() if err is None else None

        producer.produce(self.topic, key=key, value=value, partition=0, on_delivery=on_delivery)
        remaining = producer.flush(20)
        if remaining or "err" not in result:
            raise RegistryUnavailable(f"schema topic {self.topic}: write not acknowledged")
        if result["err"] is not None:
            raise RegistryUnavailable(f"schema topic {self.topic}: {result['err']}")
        return int(result["offset"])

    # -- the registry ----------------------------------------------------------------------

    def register(self, subject: str, schema_text: str, version: int | None = None) -> int:
        """Register (idempotently) and return the id; writes `_schemas` once per process."""
        with self._lock:
            entry = _entry_for(subject, schema_text, version, self.table)
            marker = (entry.subject, entry.version, entry.id)
            if marker in self._registered:
                return entry.id
            known = self.table.by_subject.get(entry.subject, {}).get(entry.version)
            if known is not None and known.id != entry.id:
                log.warning(
                    "schema_version_conflict",
                    subject=subject,
                    version=entry.version,
                    registered_id=known.id,
                    new_id=entry.id,
                )
            self._ensure_topic()
            key, value = schema_record(entry)
            self._produce(key, value)
            self.table.add(entry)
            self._registered.add(marker)
            return entry.id

    def refresh(self) -> None:
        """Read `_schemas` from the earliest offset up to a marker written just now."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        with self._lock:
            self._ensure_topic()
            marker_offset = self._produce(NOOP_KEY, None)
            consumer = Consumer(
                {
                    **self._client_config(),
                    "group.id": f"piaoxi-schema-reader-{uuid.uuid4().hex}",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "session.timeout.ms": 6000,
                }
            )
            try:
                consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
                deadline = time.monotonic() + self.read_timeout_s
                while True:
                    if time.monotonic() > deadline:
                        raise RegistryUnavailable(
                            f"schema topic {self.topic}: marker not reached in "
                            f"{self.read_timeout_s:.0f}s"
                        )
                    msg = consumer.poll(0.5)
                    if msg is None:
                        continue
                    if msg.error():
                        log.warning("schema_topic_read_error", error=str(msg.error()))
                        continue
                    self._apply(msg.key(), msg.value())
                    if (msg.offset() or 0) >= marker_offset:
                        break
            finally:
                consumer.close()
            self._loaded_at = time.monotonic()

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        try:
            k = json.loads(key) if key else {}
        except ValueError:
            return
        if k.get("keytype") != "SCHEMA":
            return
        if value is None:  # tombstone: a hard delete
            self.table.remove(str(k.get("subject")), int(k.get("version", 0)))
            return
        try:
            v = json.loads(value)
            entry = RegisteredSchema(
                subject=str(v["subject"]),
                version=int(v["version"]),
                id=int(v["id"]),
                schema=str(v["schema"]),
            )
        except (ValueError, KeyError, TypeError):
            log.warning("schema_record_unreadable", key=key)
            return
        if v.get("deleted"):
            self.table.remove(entry.subject, entry.version)
        else:
            self.table.add(entry)

    def schema_text(self, schema_id: int) -> str:
        # An id is the hash of its schema, so a locally kept schema with that id *is* it.
        local = self.catalog.by_id(schema_id)
        if local is not None:
            return local.text
        found = self.table.by_id.get(schema_id)
        if found is None:
            self.refresh()
            found = self.table.by_id.get(schema_id)
        if found is None:
            raise SchemaNotFound(f"Schema {schema_id} not found")
        return found

    def refresh_if_older(self, max_age_s: float) -> None:
        if time.monotonic() - self._loaded_at > max_age_s or not self._loaded_at:
            self.refresh()

    def subjects(self) -> list[str]:
        return self.table.subjects()

    def versions(self, subject: str) -> list[int]:
        return self.table.versions(subject)

    def get_version(self, subject: str, version: int | str) -> RegisteredSchema:
        return self.table.get_version(subject, version)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(5)
            self._producer = None


class ConfluentRegistry:
    """A real Confluent-compatible registry (ids assigned by it)."""

    def __init__(self, url: str) -> None:
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as exc:  # the extra pulls authlib, httpx2, cachetools
            raise RuntimeError(
                "PIAOXI_SCHEMA_REGISTRY_URL needs confluent-kafka[schemaregistry] installed"
            ) from exc

        self.url = url
        self.client = SchemaRegistryClient({"url": url})

    def register(self, subject: str, schema_text: str, version: int | None = None) -> int:
        from confluent_kafka.schema_registry import Schema

        try:
            return int(self.client.register_schema(subject, Schema(schema_text, "AVRO")))
        except Exception as exc:
            raise RegistryUnavailable(f"registry {self.url}: {exc}") from exc

    def _not_found(self, exc: Exception) -> bool:
        return getattr(exc, "http_status_code", None) == 404

    def schema_text(self, schema_id: int) -> str:
        try:
            return str(self.client.get_schema(schema_id).schema_str)
        except Exception as exc:
            if self._not_found(exc):
                raise SchemaNotFound(f"Schema {schema_id} not found") from exc
            raise RegistryUnavailable(f"registry {self.url}: {exc}") from exc

    def subjects(self) -> list[str]:
        return sorted(self.client.get_subjects())

    def versions(self, subject: str) -> list[int]:
        try:
            return sorted(self.client.get_versions(subject))
        except Exception as exc:
            if self._not_found(exc):
                raise SchemaNotFound(f"Subject '{subject}' not found.") from exc
            raise

    def get_version(self, subject: str, version: int | str) -> RegisteredSchema:
        try:
            found = self.client.get_version(subject, version)  # type: ignore[arg-type]
        except Exception as exc:
            if self._not_found(exc):
                raise SchemaNotFound(f"Version {version} not found.") from exc
            raise
        return RegisteredSchema(
            subject=subject,
            version=int(found.version or 0),
            id=int(found.schema_id or 0),
            schema=str(found.schema.schema_str if found.schema else ""),
        )


_registries: dict[tuple[str, str, str], BrowsableRegistry] = {}
_registries_lock = threading.Lock()


def registry_for(settings: Settings) -> BrowsableRegistry:
    """The registry these settings name: the real one at `schema_registry_url`, if set,
    else the embedded one on the `_schemas` topic. One instance per target per process."""
    key = (settings.schema_registry_url, settings.kafka_bootstrap, settings.topic("_schemas"))
    with _registries_lock:
        registry = _registries.get(key)
        if registry is None:
            if settings.schema_registry_url:
                registry = ConfluentRegistry(settings.schema_registry_url)
            else:
                registry = EmbeddedRegistry(settings)
            _registries[key] = registry
        return registry
