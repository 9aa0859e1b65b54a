"""`piaoxi eval ocr`: character error rate per page class of the 古籍-like set
(`streams.ocr_pages`), for the raw engine and for the pipeline, on the same pages in one run.

- raw: rapidocr called once on the page as it is (no preparation, no re-reading of marks,
  no cleaning), its lines put in reading order by `streams.layout.order_lines`;
- pipeline: what the worker does — `streams.extract.process_page` (page preparation,
  recognition, reading order, notes) then `streams.clean.clean_page` with the OCR
  correction (`streams.correction`), as the clean agent runs it on OCR pages.

CER is the Levenshtein distance over non-space characters divided by the reference's
length, summed over the pages of a class (so long pages weigh more); ``letters`` leaves
punctuation out of both sides. Speed is pages per CPU-second of this process (the machine
is shared, so CPU time is steadier than wall clock), raw and pipeline timed page by page
alternately on the same pages, with one engine thread as in the worker's pool processes
(several threads spin while they wait, which a loaded machine turns into CPU time).
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rapidfuzz.distance import Levenshtein

from streams import ocr_pages


def edit_distance(truth: str, hypothesis: str) -> int:
    """Levenshtein distance between two strings (characters), by rapidfuzz."""
    return int(Levenshtein.distance(truth, hypothesis))


def is_letter(ch: str) -> bool:
    """Ideographs, letters and digits: everything but punctuation and symbols."""
    return unicodedata.category(ch)[0] in "LN"


def comparable(text: str, keep: Callable[[str], bool] | None = None) -> str:
    """`text` without whitespace (and, with `keep`, only the characters it keeps)."""
    return "".join(c for c in text if not c.isspace() and (keep is None or keep(c)))


def cer(truth: str, hypothesis: str, *, keep: Callable[[str], bool] | None = None) -> float:
    """Levenshtein distance / truth length over non-space characters (optionally filtered)."""
    ref, hyp = comparable(truth, keep), comparable(hypothesis, keep)
    return edit_distance(ref, hyp) / max(1, len(ref))


@dataclass
class Tally:
    """Errors and reference characters summed over pages."""

    errors: int = 0
    chars: int = 0
    letter_errors: int = 0
    letters: int = 0
    cpu_seconds: float = 0.0
    seconds: float = 0.0
    pages: int = 0

    def add(self, truth: str, hypothesis: str, cpu: float, wall: float) -> None:
        ref, hyp = comparable(truth), comparable(hypothesis)
        self.errors += edit_distance(ref, hyp)
        self.chars += len(ref)
        ref_l, hyp_l = comparable(truth, is_letter), comparable(hypothesis, is_letter)
        self.letter_errors += edit_distance(ref_l, hyp_l)
        self.letters += len(ref_l)
        self.cpu_seconds += cpu
        self.seconds += wall
        self.pages += 1

    def merge(self, other: Tally) -> None:
        for name in asdict(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def cer(self) -> float:
        return self.errors / max(1, self.chars)

    @property
    def cer_letters(self) -> float:
        return self.letter_errors / max(1, self.letters)


@dataclass
class ClassScore:
    page_class: str
    raw: Tally = field(default_factory=Tally)
    pipeline: Tally = field(default_factory=Tally)


def raw_text(page: ocr_pages.OcrPage) -> str:
    """The engine alone: rapidocr on the unprepared page, lines ordered by box."""
    from streams import ocr
    from streams.layout import order_lines

    lines, _ = ocr._rapidocr(ocr.to_rgb(page.image))
    return "\n".join(line.text for line in order_lines(lines, "vertical"))


def pipeline_text(page: ocr_pages.OcrPage) -> str:
    """What the worker publishes as the cleaned text of the page."""
    from streams import extract
    from streams.clean import clean_page

    source = extract.split_pages(page.image_bytes)[0]
    result = extract.process_page(source)
    return clean_page(result.text, layout=result.layout, correct=True).cleaned_text


def _timed(run: Callable[[], str]) -> tuple[str, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    text = run()
    return text, time.process_time() - cpu, time.perf_counter() - wall


def run(
    split: str = "tune",
    *,
    per_class: int = 2,
    classes: tuple[str, ...] = ocr_pages.PAGE_CLASSES,
    errors: int = 0,
) -> dict[str, Any]:
    """Score raw and pipeline on `per_class` pages of every class of `split`."""
    from streams import ocr

    ocr.set_threads(1)  # one thread per engine, as the worker's pool processes run it
    ocr._rapidocr_engine()  # load the models outside the timing
    scores = {c: ClassScore(c) for c in classes}
    examples: list[dict[str, str]] = []
    for page in ocr_pages.pages(split, per_class=per_class, classes=classes):
        raw, cpu_r, wall_r = _timed(lambda page=page: raw_text(page))  # type: ignore[misc]
        clean, cpu_p, wall_p = _timed(lambda page=page: pipeline_text(page))  # type: ignore[misc]
        score = scores[page.page_class]
        score.raw.add(page.text, raw, cpu_r, wall_r)
        score.pipeline.add(page.text, clean, cpu_p, wall_p)
        if len(examples) < errors:
            examples.append({"page": page.key, "truth": page.text, "raw": raw, "pipeline": clean})
    total_raw, total_pipe = Tally(), Tally()
    for score in scores.values():
        total_raw.merge(score.raw)
        total_pipe.merge(score.pipeline)

    def row(t: Tally) -> dict[str, Any]:
        return {
            "pages": t.pages,
            "chars": t.chars,
            "cer": t.cer,
            "cer_letters": t.cer_letters,
            "pages_per_cpu_s": t.pages / t.cpu_seconds if t.cpu_seconds else None,
            "pages_per_s": t.pages / t.seconds if t.seconds else None,
        }

    return {
        "split": split,
        "per_class": per_class,
        "engine_version": ocr.engine_version("rapidocr"),
        "classes": {c: {"raw": row(s.raw), "pipeline": row(s.pipeline)} for c, s in scores.items()},
        "overall": {"raw": row(total_raw), "pipeline": row(total_pipe)},
        "speed_ratio_cpu": (total_raw.cpu_seconds / total_pipe.cpu_seconds)
        if total_pipe.cpu_seconds
        else None,
        "speed_ratio_wall": (total_raw.seconds / total_pipe.seconds)
        if total_pipe.seconds
        else None,
        "examples": examples,
    }


TARGETS = {"overall": 0.05, "per_class": 0.08, "clean": 0.015, "speed_ratio": 0.8}


def table(report: dict[str, Any]) -> str:
    """The report as a plain-text table with the targets checked."""
    lines = [
        f"OCR on the 古籍-like set, split {report['split']} ({report['per_class']} pages a class);"
        f" engine {report['engine_version']}"
        + (
            f"; preparation without {', '.join(report['without'])}" if report.get("without") else ""
        ),
        f"  {'class':<10}{'pages':>6}{'raw CER':>10}{'pipeline':>10}"
        f"{'raw (no punct.)':>17}{'pipeline (no punct.)':>22}",
    ]
    rows = [*report["classes"].items(), ("overall", report["overall"])]
    for name, part in rows:
        raw, pipe = part["raw"], part["pipeline"]
        lines.append(
            f"  {name:<10}{raw['pages']:>6}{raw['cer']:>10.1%}{pipe['cer']:>10.1%}"
            f"{raw['cer_letters']:>17.1%}{pipe['cer_letters']:>22.1%}"
        )
    overall = report["overall"]
    lines.append(
        f"speed: raw {overall['raw']['pages_per_cpu_s']:.3f} pages/CPU-s, pipeline"
        f" {overall['pipeline']['pages_per_cpu_s']:.3f} pages/CPU-s: ratio"
        f" {report['speed_ratio_cpu']:.2f} (wall clock {report['speed_ratio_wall']:.2f})"
    )
    classes = report["classes"]
    met = {
        "overall ≤ 5 %": overall["pipeline"]["cer"] <= TARGETS["overall"],
        "every class ≤ 8 %": all(
            p["pipeline"]["cer"] <= TARGETS["per_class"] for p in classes.values()
        ),
        "never worse than raw": all(
            p["pipeline"]["cer"] <= p["raw"]["cer"] for p in classes.values()
        ),
        "speed ratio ≥ 0.8": (report["speed_ratio_cpu"] or 0) >= TARGETS["speed_ratio"],
    }
    if "clean" in classes:
        met["clean ≤ 1.5 %"] = classes["clean"]["pipeline"]["cer"] <= TARGETS["clean"]
    lines.append(
        "targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items())
    )
    for example in report.get("examples", []):
        lines += [f"--- {example['page']}", "truth:", example["truth"], "raw:", example["raw"]]
        lines += ["pipeline:", example["pipeline"]]
    return "\n".join(lines)
