"""Train the character tagger on silver data and export it to ONNX.

    python -m streams.ner.train --seed 13 [--epochs N] [--minutes N] [--out DIR]

Reproducible for a seed and epoch count (data order, init and dropout are seeded; torch
runs with 2 threads). ``--minutes`` is only a safety cap: if it cuts training short the
report says so. torch is needed here only; the runtime (``tagger.py``) needs onnxruntime.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from streams import corpora
from streams.ner import silver
from streams.ner.labels import LABEL_INDEX, LABELS, PAD_ID, UNK_ID
from streams.ner.quantize import FLOAT_NAME, calibration_texts, quantize

MODEL_DIR = Path(__file__).parent / "model"
ENTITY_WEIGHT = 1.6


class CharTagger(nn.Module):
    """Embeddings + residual dilated 1-D convolutions -> per-character tag scores.

    Padding (id 0) is masked after every layer so a sentence's scores never depend on
    what it was batched with.
    """

    def __init__(
        self,
        vocab_size: int,
        n_labels: int,
        dim: int = 96,
        channels: int = 128,
        dilations: tuple[int, ...] = (1, 2, 4, 8),
        dropout: float = 0.15,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.inp = nn.Conv1d(dim, channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            nn.Conv1d(channels, channels, 3, padding=d, dilation=d) for d in dilations
        )
        self.drop = nn.Dropout(dropout)
        self.out = nn.Conv1d(channels, n_labels, 1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        mask = (ids != PAD_ID).unsqueeze(1).to(torch.float32)
        x = self.drop(self.embed(ids)).transpose(1, 2)
        x = torch.nn.functional.gelu(self.inp(x)) * mask
        for conv in self.blocks:
            x = x + self.drop(torch.nn.functional.gelu(conv(x))) * mask
        return self.out(x).transpose(1, 2)


def build_vocab(examples: list[silver.Example], min_count: int = 2) -> list[str]:
    counts = Counter(ch for e in examples for ch in e.text)
    chars = sorted(ch for ch, n in counts.items() if n >= min_count and not ch.isspace())
    return ["<pad>", "<unk>", *chars]


def encode(examples: list[silver.Example], vocab: list[str]) -> list[tuple[list[int], list[int]]]:
    index = {ch: i for i, ch in enumerate(vocab)}
    out = []
    for e in examples:
        ids = [index.get(ch, UNK_ID) for ch in e.text]
        tags = [LABEL_INDEX[t] for t in silver.bio_tags(e)]
        out.append((ids, tags))
    return out


def batches(
    data: list[tuple[list[int], list[int]]], rng: random.Random, max_tokens: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Length-bucketed batches (less padding), in a seeded random order."""
    order = sorted(range(len(data)), key=lambda i: (len(data[i][0]), rng.random()))
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max(len(data[j][0]) for j in [*current[-1:], i])
        if current and longest * (len(current) + 1) > max_tokens:
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    rng.shuffle(out)
    tensors = []
    for group in out:
        width = max(len(data[i][0]) for i in group)
        ids = torch.zeros((len(group), width), dtype=torch.long)
        tags = torch.full((len(group), width), -100, dtype=torch.long)
        for row, i in enumerate(group):
            n = len(data[i][0])
            ids[row, :n] = torch.tensor(data[i][0])
            tags[row, :n] = torch.tensor(data[i][1])
        tensors.append((ids, tags))
    return tensors


def spans_of(tags: list[str]) -> set[tuple[int, int, str]]:
    spans = set()
    start, kind = -1, ""
    for i, t in enumerate([*tags, "O"]):
        if start >= 0 and not (t.startswith("I-") and t[2:] == kind):
            spans.add((start, i, kind))
            start = -1
        if t.startswith("B-") or (t.startswith("I-") and start < 0):
            start, kind = i, t[2:]
    return spans


def silver_f1(model: CharTagger, data: list[tuple[list[int], list[int]]]) -> float:
    model.eval()
    tp = fp = fn = 0
    with torch.no_grad():
        for ids, tags in batches(data, random.Random(0), 8000):
            pred = model(ids).argmax(-1)
            for row in range(ids.shape[0]):
                n = int((ids[row] != PAD_ID).sum())
                gold = spans_of([LABELS[int(t)] for t in tags[row, :n]])
                got = spans_of([LABELS[int(t)] for t in pred[row, :n]])
                tp += len(gold & got)
                fp += len(got - gold)
                fn += len(gold - got)
    model.train()
    return 2 * tp / max(1, 2 * tp + fp + fn)


def export_onnx(model: CharTagger, path: Path) -> None:
    model.eval()
    example = torch.ones((2, 17), dtype=torch.long)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=["ids"],
        output_names=["scores"],
        dynamic_axes={"ids": {0: "batch", 1: "length"}, "scores": {0: "batch", 1: "length"}},
        opset_version=17,
        dynamo=False,
    )


def train(seed: int, epochs: int, minutes: float, out: Path, synthetic: int) -> dict[str, Any]:
    started = time.monotonic()
    cpu_started = time.process_time()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = random.Random(seed)

    examples = silver.build_dataset(seed, synthetic=synthetic)
    dev_size = max(200, len(examples) // 50)
    dev, train_examples = examples[:dev_size], examples[dev_size:]
    vocab = build_vocab(train_examples)
    train_data = encode(train_examples, vocab)
    dev_data = encode(dev, vocab)
    print(f"examples {len(train_data)} train, {len(dev_data)} dev; vocab {len(vocab)}", flush=True)

    model = CharTagger(len(vocab), len(LABELS))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    epoch_batches = [batches(train_data, rng, 6000) for _ in range(epochs)]
    total = sum(len(b) for b in epoch_batches)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=3e-3, total_steps=total, pct_start=0.1
    )
    # Recall is what the merged stage lacks: entity tags weigh more than O (span-aware in
    # the cheap sense: missing a name costs more than a stray O).
    weights = torch.full((len(LABELS),), ENTITY_WEIGHT)
    weights[LABEL_INDEX["O"]] = 1.0
    loss_fn = nn.CrossEntropyLoss(weight=weights, ignore_index=-100)
    deadline = started + minutes * 60
    step = 0
    cut_short = False
    history = []
    for epoch, epoch_data in enumerate(epoch_batches):
        running = 0.0
        for ids, tags in epoch_data:
            scores = model(ids)
            loss = loss_fn(scores.reshape(-1, len(LABELS)), tags.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            running += float(loss.detach())
            step += 1
            if step % 200 == 0:
                elapsed = time.monotonic() - started
                print(f"step {step}/{total} loss {running / 200:.4f} {elapsed:.0f}s", flush=True)
                running = 0.0
            if time.monotonic() > deadline:
                cut_short = True
                break
        f1 = silver_f1(model, dev_data)
        history.append({"epoch": epoch + 1, "silver_dev_f1": round(f1, 4)})
        print(f"epoch {epoch + 1}: silver dev F1 {f1:.4f}", flush=True)
        if cut_short:
            break

    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / FLOAT_NAME)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (out / "labels.json").write_text(json.dumps(list(LABELS)), encoding="utf-8")
    # the shipped ner.onnx: int8, calibrated on the first training sentences
    quantization = quantize(out, calibration_texts())
    report = {
        "seed": seed,
        "epochs_planned": epochs,
        "epochs_run": len(history),
        "cut_short_by_time_cap": cut_short,
        "steps": step,
        "train_examples": len(train_data),
        "train_chars": sum(len(ids) for ids, _ in train_data),
        "synthetic_examples": synthetic,
        "entity_weight": ENTITY_WEIGHT,
        "vocab_size": len(vocab),
        "parameters": sum(p.numel() for p in model.parameters()),
        "history": history,
        "train_seconds": round(time.monotonic() - started, 1),
        # CPU seconds of this process (all threads): the figure a loaded machine does not skew
        # much; wall time on 2 idle cores is about cpu_seconds / 2.
        "train_cpu_seconds": round(time.process_time() - cpu_started, 1),
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "onnx_bytes": (out / "ner.onnx").stat().st_size,
        "quantization": quantization,
    }
    report["heldout_float"] = heldout_report(out / FLOAT_NAME)
    report["heldout"] = heldout_report(out / "ner.onnx")
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def heldout_report(model_path: Path) -> dict[str, Any]:
    """Scores of the exported model on data it never saw (evaluation only)."""
    from streams.ner import heldout
    from streams.ner.tagger import Tagger

    tagger = Tagger(model_path)
    report: dict[str, Any] = {
        "tang_subject": heldout.subject_recall(
            tagger, silver.tang_biographies(corpora.poetry_root())
        )
    }
    gold = Path(__file__).resolve().parents[2] / "tests" / "data" / "gold_entities.jsonl"
    if gold.exists():
        report["gold_model_only"] = heldout.gold_scores(tagger, gold)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=45.0, help="safety cap on wall time")
    parser.add_argument("--synthetic", type=int, default=70_000)
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    args = parser.parse_args()
    report = train(args.seed, args.epochs, args.minutes, args.out, args.synthetic)
    print(json.dumps(report, indent=2))
    if not math.isfinite(report["history"][-1]["silver_dev_f1"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
