"""Held-out checks of the entity model: Tang biography subjects, and a gold JSONL file.

    python -m streams.ner.heldout [--gold tests/data/gold_entities.jsonl] [--json]

The Tang author biographies of chinese-poetry are never used for training. The subject
of each biography is known, so the recall of the subject's name (as a PERSON span at its
first occurrence) measures how well the model finds names it has never seen. The
official evaluation is ``piaoxi eval entities`` (streams/evaluation.py); this module is
the model owner's quick check, used for the model card.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from streams.ner.tagger import Tagger


def subject_recall(tagger: Tagger, bios: list[tuple[str, str]]) -> dict[str, Any]:
    """Share of biographies whose subject's first mention is tagged exactly as PERSON."""
    usable = [(n, d) for n, d in bios if len(n) >= 2 and n in d]
    found = 0
    missed: list[str] = []
    results = tagger.tag_many([d for _, d in usable])
    for (name, desc), spans in zip(usable, results, strict=True):
        first = desc.index(name)
        if any(
            s.type == "PERSON" and s.start == first and s.end == first + len(name) for s in spans
        ):
            found += 1
        elif len(missed) < 30:
            missed.append(name)
    return {
        "biographies": len(usable),
        "subject_found": found,
        "recall": round(found / max(1, len(usable)), 4),
        "missed_examples": missed,
    }


def _read_gold(path: Path) -> list[tuple[str, set[tuple[int, int, str]]]]:
    """Gold JSONL: {"text": ..., "entities": [{"type", "start", "end"} ...]} per line."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if not row.get("text"):
            continue  # the header line
        ents = row.get("entities") or row.get("spans") or []
        gold = set()
        for e in ents:
            if isinstance(e, dict):
                gold.add((int(e["start"]), int(e["end"]), str(e["type"])))
            else:
                gold.add((int(e[0]), int(e[1]), str(e[2])))
        out.append((row["text"], gold))
    return out


def gold_scores(tagger: Tagger, path: Path) -> dict[str, Any]:
    """Exact-span precision, recall and F1 per type and micro-averaged (model alone)."""
    data = _read_gold(path)
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    predictions = tagger.tag_many([text for text, _ in data])
    for (_, gold), spans in zip(data, predictions, strict=True):
        got = {(s.start, s.end, s.type) for s in spans}
        for s in got & gold:
            tp[s[2]] += 1
        for s in got - gold:
            fp[s[2]] += 1
        for s in gold - got:
            fn[s[2]] += 1
    types = sorted(set(tp) | set(fp) | set(fn))
    per_type = {t: _prf(tp[t], fp[t], fn[t]) for t in types}
    micro = _prf(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return {"sentences": len(data), "micro": micro, "per_type": per_type}


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": tp + fn}


def main() -> None:
    from streams import corpora
    from streams.ner import silver

    parser = argparse.ArgumentParser(description="Held-out checks of the entity model")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--gold", type=Path, default=Path("tests/data/gold_entities.jsonl"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    tagger = Tagger.load(args.model)
    report: dict[str, Any] = {
        "tang_subject": subject_recall(tagger, silver.tang_biographies(corpora.poetry_root()))
    }
    if args.gold.exists():
        report["gold"] = gold_scores(tagger, args.gold)
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    tang = report["tang_subject"]
    print(
        f"Tang subject recall: {tang['recall']:.4f} ({tang['subject_found']}/{tang['biographies']})"
    )
    if "gold" in report:
        g = report["gold"]
        print(f"gold ({g['sentences']} sentences) micro F1 {g['micro']['f1']:.4f}")
        for t, v in g["per_type"].items():
            print(
                f"  {t:15} P {v['precision']:.3f} R {v['recall']:.3f} "
                f"F1 {v['f1']:.3f} n={v['support']}"
            )


if __name__ == "__main__":
    main()
