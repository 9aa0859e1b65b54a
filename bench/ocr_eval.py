"""OCR quality and speed of each engine, and cleaning throughput; prints a markdown report.

The test set is rendered here, the same way as `samples/` (bench/make_samples.py), from
chinese-poetry passages that are not in the samples: horizontal and vertical pages, each
clean and degraded (blur, noise, heavy JPEG). For every engine it reports the character
error rate (CER) before cleaning (raw OCR text against the printed text) and after
cleaning (cleaned OCR text against the cleaned printed text), with and without
punctuation, and the raw engine's pages/s called directly in this process. Cleaning
throughput is measured in characters/s over OCR-like pages of the whole corpus.

    .venv/bin/python bench/ocr_eval.py [--passages 3] [--engines rapidocr,tesseract]
        [--conditions clean,blur,noise,jpeg] [--json out.json]

For 古籍-like pages (woodblock, stains, rules, 版心, skew, curl, 白文, 雙行小注) see
`piaoxi eval ocr` (streams/ocr_evaluation.py), which also scores the raw engine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import make_samples

from streams import ocr
from streams.clean import clean_page
from streams.ocr_evaluation import cer, is_letter

# 孟子 chapters not used by the samples (those use mengzi0, mengzi1, mengzi4, 大學, 中庸).
PASSAGES = ("mengzi6", "mengzi8", "mengzi10", "mengzi7", "mengzi9", "mengzi11")
CHARS_PER_PAGE = 216


def degrade(image: Image.Image, condition: str, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if condition == "clean":
        return image
    if condition == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=1.6))
    if condition == "noise":
        pixels = np.asarray(image, dtype=np.float64)
        pixels = pixels + rng.normal(0.0, 40.0, pixels.shape)
        salt = rng.random(pixels.shape)
        pixels[salt < 0.01] = 0
        pixels[salt > 0.99] = 255
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="L")
    if condition == "jpeg":
        small = image.resize(
            (image.width * 2 // 3, image.height * 2 // 3), Image.Resampling.BILINEAR
        )
        buffer = io.BytesIO()
        small.save(buffer, format="JPEG", quality=15)
        return Image.open(io.BytesIO(buffer.getvalue())).convert("L")
    raise ValueError(f"unknown condition {condition!r}")


@dataclass
class Page:
    key: str
    layout: str
    condition: str
    truth: str
    image: Image.Image


def test_set(passages: int, conditions: list[str]) -> list[Page]:
    texts = make_samples.passages()
    pages: list[Page] = []
    for n, key in enumerate(PASSAGES[:passages]):
        text = texts[key].text
        horizontal, h_truth = make_samples.render_horizontal(
            text[:CHARS_PER_PAGE], font_name="serif-tc", size=36, per_line=18
        )
        vertical, v_truth = make_samples.render_vertical(
            text[CHARS_PER_PAGE : 2 * CHARS_PER_PAGE] or text[:CHARS_PER_PAGE],
            font_name="uming-tw" if n % 2 else "serif-tc",
        )
        for condition in conditions:
            pages.append(
                Page(key, "horizontal", condition, h_truth, degrade(horizontal, condition, n))
            )
            pages.append(Page(key, "vertical", condition, v_truth, degrade(vertical, condition, n)))
    return pages


@dataclass
class Score:
    engine: str
    layout: str
    condition: str
    pages: int
    cer_raw: float
    cer_clean: float
    cer_raw_letters: float
    cer_clean_letters: float
    layout_right: int
    seconds: float
    cpu_seconds: float


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (tesseract)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def evaluate(engine: str, pages: list[Page]) -> list[Score]:
    ocr.recognize(pages[0].image, engine=engine)  # load the models outside the timing
    rows: dict[tuple[str, str], list[tuple[float, float, float, float, bool, float, float]]] = {}
    for page in pages:
        started, cpu_started = time.perf_counter(), cpu_seconds()
        output = ocr.recognize(page.image, engine=engine, layout="auto")
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu_started
        cleaned_truth = clean_page(page.truth).cleaned_text
        cleaned = clean_page(output.text, layout=output.layout).cleaned_text
        rows.setdefault((page.layout, page.condition), []).append(
            (
                cer(page.truth, output.text),
                cer(cleaned_truth, cleaned),
                cer(page.truth, output.text, keep=is_letter),
                cer(cleaned_truth, cleaned, keep=is_letter),
                output.layout == page.layout,
                seconds,
                cpu,
            )
        )
    scores = []
    for (layout, condition), values in rows.items():
        n = len(values)
        scores.append(
            Score(
                engine,
                layout,
                condition,
                n,
                sum(v[0] for v in values) / n,
                sum(v[1] for v in values) / n,
                sum(v[2] for v in values) / n,
                sum(v[3] for v in values) / n,
                sum(v[4] for v in values),
                sum(v[5] for v in values),
                sum(v[6] for v in values),
            )
        )
    return scores


def cleaning_throughput(repeat: int = 3) -> dict[str, float]:
    """Characters/s of clean_page over the corpus cut into OCR-like pages (lines of 20)."""
    texts = make_samples.passages()
    corpus = "".join(p.text for p in texts.values())
    pages = []
    for start in range(0, len(corpus), 400):
        chunk = corpus[start : start + 400]
        pages.append("\n".join(chunk[i : i + 20] for i in range(0, len(chunk), 20)))
    chars = sum(len(p) for p in pages)
    clean_page(pages[0])  # load the tables and OpenCC
    best = best_cpu = float("inf")
    edits = 0
    for _ in range(repeat):
        started, cpu_started = time.perf_counter(), time.process_time()
        edits = sum(len(clean_page(p).edits) for p in pages)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu_started)
    return {
        "pages": len(pages),
        "chars": chars,
        "seconds": best,
        "chars_per_s": chars / best,
        "chars_per_cpu_s": chars / best_cpu,
        "edits": edits,
    }


def report(scores: list[Score], throughput: dict[str, float], engines: dict[str, str]) -> str:
    lines = [
        "## OCR character error rate (mean per page) and raw engine speed",
        "",
        f"Machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end;"
        " engines called directly, one page at a time, default threads. pages/s is wall"
        " clock (depends on what else runs); CPU s/page counts this process's threads and"
        " tesseract's processes.",
        "",
        "| engine | layout | condition | pages | CER raw | CER cleaned | CER raw (no punct.) "
        "| CER cleaned (no punct.) | layout detected | pages/s | CPU s/page |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in sorted(scores, key=lambda s: (s.engine, s.layout, s.condition)):
        lines.append(
            f"| {s.engine} | {s.layout} | {s.condition} | {s.pages} | {s.cer_raw:.1%} "
            f"| {s.cer_clean:.1%} | {s.cer_raw_letters:.1%} | {s.cer_clean_letters:.1%} "
            f"| {s.layout_right}/{s.pages} | {s.pages / s.seconds:.2f} "
            f"| {s.cpu_seconds / s.pages:.2f} |"
        )
    lines += [
        "",
        "| engine | version | pages | mean CER raw | mean CER cleaned | pages/s | CPU s/page |",
        "|---|---|---|---|---|---|---|",
    ]
    for engine, version in engines.items():
        mine = [s for s in scores if s.engine == engine]
        n = sum(s.pages for s in mine)
        raw = sum(s.cer_raw * s.pages for s in mine) / n
        clean = sum(s.cer_clean * s.pages for s in mine) / n
        speed = n / sum(s.seconds for s in mine)
        cpu = sum(s.cpu_seconds for s in mine) / n
        lines.append(
            f"| {engine} | {version} | {n} | {raw:.1%} | {clean:.1%} | {speed:.2f} | {cpu:.2f} |"
        )
    lines += [
        "",
        "## Cleaning throughput",
        "",
        f"{throughput['chars']:,} characters in {throughput['pages']:.0f} pages "
        f"({throughput['edits']:.0f} edits): {throughput['seconds']:.2f} s, "
        f"**{throughput['chars_per_s']:,.0f} characters/s** wall clock, "
        f"{throughput['chars_per_cpu_s']:,.0f} characters per CPU-second (one process, "
        "best of 3).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=3, help="passages (2 pages each)")
    parser.add_argument("--engines", default="rapidocr,tesseract")
    parser.add_argument("--conditions", default="clean,blur,noise,jpeg")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    args = parser.parse_args()
    pages = test_set(args.passages, args.conditions.split(","))
    scores: list[Score] = []
    versions = {}
    for engine in args.engines.split(","):
        versions[engine] = ocr.engine_version(engine)
        scores.extend(evaluate(engine, pages))
    throughput = cleaning_throughput()
    print(report(scores, throughput, versions))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "scores": [asdict(s) for s in scores],
                    "cleaning": throughput,
                    "engines": versions,
                },
                ensure_ascii=False,
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
