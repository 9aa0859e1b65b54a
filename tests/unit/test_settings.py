"""Settings: PIAOXI_* variables, derived endpoints, generated credentials, child env."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from piaoxi.settings import Settings, settings_table
from piaoxi.stack import isolated_settings


def test_environment_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIAOXI_KAFKA_PORT", "19092")
    monkeypatch.setenv("PIAOXI_TOPIC_PREFIX", "tenant1.")
    monkeypatch.setenv("PIAOXI_CLEANUP_TEMP_FILES", "false")
    settings = Settings(_env_file=None)
    assert settings.kafka_port == 19092
    assert settings.kafka_bootstrap == "127.0.0.1:19092"
    assert settings.topic("documents.uploaded") == "tenant1.documents.uploaded"
    assert settings.cleanup_temp_files is False


def test_endpoints_are_derived_from_ports_unless_set() -> None:
    settings = Settings(_env_file=None, s3_port=18333, search_port=19200)
    assert settings.s3_endpoint == "http://127.0.0.1:18333"
    assert settings.search_url == "http://127.0.0.1:19200"
    explicit = Settings(_env_file=None, kafka_bootstrap="kafka:9092", search_url="https://es:9200")
    assert explicit.kafka_bootstrap == "kafka:9092"
    assert explicit.search_url == "https://es:9200"


def test_home_is_made_absolute_and_credentials_are_read_from_it(tmp_path: Path) -> None:
    (tmp_path / "s3-credentials.json").write_text(
        json.dumps({"access_key": "AK", "secret_key": "SK"})
    )
    settings = Settings(_env_file=None, home=tmp_path)
    assert settings.home.is_absolute()
    assert (settings.s3_access_key, settings.s3_secret_key) == ("AK", "SK")
    assert Settings(_env_file=None, home=Path("rel")).home == Path.cwd() / "rel"


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("PIAOXI_API_PORT=18000\nPIAOXI_LOG_FORMAT=json\n")
    settings = Settings(_env_file=env_file)
    assert settings.api_port == 18000
    assert settings.log_format == "json"


def test_as_env_round_trips_through_a_child_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    original = Settings(_env_file=None, home=tmp_path, topic_prefix="tabc.", pool_size=3)
    for name, value in original.as_env().items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == original


def test_isolated_settings_differ_in_everything_shared() -> None:
    base = Settings(_env_file=None)
    one, two = isolated_settings(base), isolated_settings(base)
    for field in (
        "topic_prefix",
        "database_url",
        "search_index_prefix",
        "worker_group_id",
        "projector_group_id",
    ):
        assert getattr(one, field) != getattr(base, field)
        assert getattr(one, field) != getattr(two, field)
    assert one.topic_prefix.startswith("t") and one.topic_prefix.endswith(".")
    assert one.database_url.rsplit("/", 1)[1].startswith("piaoxi_t")
    assert one.kafka_bootstrap == base.kafka_bootstrap


def test_every_setting_is_documented() -> None:
    table = settings_table()
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no description"
        assert f"`PIAOXI_{name.upper()}`" in table
