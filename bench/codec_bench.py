"""Codec throughput: events encoded + decoded per second (Confluent framing, fastavro).

    .venv/bin/python bench/codec_bench.py [--seconds 2] [--json]

Uses the example event of each type (events.examples) with an in-memory registry (ids
cached after the first event, as in a running process) and prints a report.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

from events import EventCodec
from events.examples import example_events
from events.records import Event
from events.registry import InMemoryRegistry


def measure(codec: EventCodec, events: list[Event], seconds: float) -> dict[str, float]:
    frames = [codec.encode(e) for e in events]
    size = sum(len(f) for f in frames) / len(frames)

    def rate(step: Any) -> float:
        done, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            for _ in range(50):
                step()
            done += 50 * len(events)
        return done / elapsed

    encode = rate(lambda: [codec.encode(e) for e in events])
    decode = rate(lambda: [codec.decode(f) for f in frames])
    both = rate(lambda: [codec.decode(codec.encode(e)) for e in events])
    return {
        "encode_per_s": encode,
        "decode_per_s": decode,
        "round_trip_per_s": both,
        "bytes_per_event": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per measurement")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    codec = EventCodec(InMemoryRegistry())
    examples = example_events()
    report: dict[str, Any] = {"python": platform.python_version(), "types": {}}
    for event in examples:
        report["types"][type(event).__name__] = measure(codec, [event], args.seconds)
    report["mix"] = measure(codec, list(examples), args.seconds)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"codec benchmark (python {report['python']}, {args.seconds:.1f} s per figure)")
    print(f"{'event type':<20}{'bytes':>7}{'encode/s':>12}{'decode/s':>12}{'enc+dec/s':>12}")
    rows = [*report["types"].items(), ("all types mixed", report["mix"])]
    for name, r in rows:
        print(
            f"{name:<20}{r['bytes_per_event']:>7.0f}{r['encode_per_s']:>12,.0f}"
            f"{r['decode_per_s']:>12,.0f}{r['round_trip_per_s']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
