"""Logging: JSON lines off a terminal, and every line carries the bound event ids."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from piaoxi.log import configure_logging, get_logger


def test_lines_carry_document_and_event_id_while_bound(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    log = get_logger("piaoxi.test")
    with structlog.contextvars.bound_contextvars(document_id="doc-1", event_id="ev-1"):
        log.info("page cleaned", page_number=3)
        logging.getLogger("some.library").warning("plain stdlib line")
    log.info("after the event")

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert [line["event"] for line in lines] == [
        "page cleaned",
        "plain stdlib line",
        "after the event",
    ]
    for line in lines[:2]:
        assert line["document_id"] == "doc-1"
        assert line["event_id"] == "ev-1"
        assert "timestamp" in line and "level" in line
    assert lines[0]["page_number"] == 3
    assert "document_id" not in lines[2]


def test_chinese_text_is_written_as_is(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    get_logger("piaoxi.test").info("清洗", text="為")
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "清洗" in line and json.loads(line)["text"] == "為"
