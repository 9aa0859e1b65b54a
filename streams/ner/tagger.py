"""Runtime of the entity model: onnxruntime emissions + constrained Viterbi in numpy.

Needs only onnxruntime and numpy. ``Tagger.load()`` is cached per process and runs
onnxruntime single-threaded (the worker's process pool provides the parallelism).
Decoding forbids ill-formed BIO sequences (no I- after O or after another type), so
every returned span is well formed.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_VERSION = "0.1.0"
MODEL_DIR = Path(__file__).parent / "model"
DEFAULT_MODEL = MODEL_DIR / "ner.onnx"

MAX_CHUNK = 160
BATCH_CHARS = 16_384
_NEG = np.float32(-1e4)
_SENTENCE_END = re.compile(r"[。！？；!?;\n]+")
_SOFT_BREAK = "，、：,）」』"
# Variant forms the cleaning stage folds, mapped back if the vocabulary lacks one side.
_VARIANTS = {"爲": "為", "為": "爲", "眞": "真", "真": "眞", "衆": "眾", "眾": "衆"}


@dataclass(frozen=True)
class Span:
    """One entity found by the model: half-open character offsets into the tagged text."""

    type: str
    start: int
    end: int
    surface: str
    confidence: float


class Tagger:
    """A loaded model. Use ``Tagger.load()``; instances are immutable and process-local."""

    def __init__(self, model_path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        folder = model_path.parent
        vocab: list[str] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        self.labels: list[str] = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        self.index = {ch: i for i, ch in enumerate(vocab)}
        for a, b in _VARIANTS.items():
            if a not in self.index and b in self.index:
                self.index[a] = self.index[b]
        self.model_path = model_path
        self.version = MODEL_VERSION
        self._transitions, self._start = _constraints(self.labels)
        self._is_begin = np.array([lab.startswith("B-") for lab in self.labels])
        self._is_inside = np.array([lab.startswith("I-") for lab in self.labels])

    @classmethod
    def load(cls, path: str | Path | None = None) -> Tagger:
        return _load_cached(str(Path(path or DEFAULT_MODEL).resolve()))

    def encode(self, text: str) -> np.ndarray:
        """Character ids; characters outside the vocabulary map to <unk> (id 1)."""
        get = self.index.get
        return np.fromiter((get(ch, 1) for ch in text), dtype=np.int64, count=len(text))

    def tag(self, text: str) -> list[Span]:
        return self.tag_many([text])[0]

    def tag_many(self, texts: list[str]) -> list[list[Span]]:
        """Tag several texts at once (chunks of all of them share batches)."""
        chunks: list[tuple[int, int, int]] = []  # (text index, start, end)
        for t, text in enumerate(texts):
            chunks.extend((t, s, e) for s, e in chunk_bounds(text))
        results: list[list[Span]] = [[] for _ in texts]
        order = sorted(range(len(chunks)), key=lambda i: chunks[i][2] - chunks[i][1])
        i = 0
        while i < len(order):
            width = chunks[order[i]][2] - chunks[order[i]][1]
            group = [order[i]]
            i += 1
            while i < len(order):
                w = chunks[order[i]][2] - chunks[order[i]][1]
                if w * (len(group) + 1) > BATCH_CHARS:
                    break
                group.append(order[i])
                width = w
                i += 1
            ids = np.zeros((len(group), width), dtype=np.int64)
            for row, c in enumerate(group):
                t, s, e = chunks[c]
                ids[row, : e - s] = self.encode(texts[t][s:e])
            scores = self.session.run(None, {"ids": ids})[0]
            lengths = np.array([chunks[c][2] - chunks[c][1] for c in group])
            paths, probs = self._decode(scores, lengths)
            for row, c in enumerate(group):
                t, s, e = chunks[c]
                results[t].extend(self._spans(texts[t], s, paths[row, : e - s], probs[row]))
        for r in results:
            r.sort(key=lambda sp: sp.start)
        return results

    def _decode(self, scores: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Constrained Viterbi over log-softmax scores, vectorised over the batch."""
        scores = scores.astype(np.float32, copy=False)
        shifted = scores - scores.max(axis=2, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=2, keepdims=True))
        # The constraints are hard (0 or -1e4), so where the per-character argmax is already
        # well formed it is the Viterbi path: decode only the other rows.
        path = logp.argmax(axis=2)
        trans = self._transitions
        bad = self._start[path[:, 0]] < 0
        if path.shape[1] > 1:
            broken = trans[path[:, :-1], path[:, 1:]] < 0
            inside = np.arange(1, path.shape[1])[None, :] < lengths[:, None]
            bad |= (broken & inside).any(axis=1)
        if bad.any():
            path[bad] = self._viterbi(logp[bad], lengths[bad])
        probs = np.exp(np.take_along_axis(logp, path[:, :, None], axis=2)[:, :, 0])
        return path, probs

    def _viterbi(self, logp: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        batch, width, n = logp.shape
        back = np.zeros((batch, width, n), dtype=np.int16)
        delta = logp[:, 0, :] + self._start
        trans = self._transitions
        for t in range(1, width):
            cand = delta[:, :, None] + trans[None, :, :]
            best = cand.argmax(axis=1)
            new = np.take_along_axis(cand, best[:, None, :], axis=1)[:, 0, :] + logp[:, t, :]
            active = (t < lengths)[:, None]
            delta = np.where(active, new, delta)
            back[:, t, :] = np.where(active, best, np.arange(n)[None, :])
        path = np.zeros((batch, width), dtype=np.int64)
        last = delta.argmax(axis=1)
        for t in range(width - 1, -1, -1):
            path[:, t] = last
            if t > 0:
                last = np.take_along_axis(back[:, t, :], last[:, None], axis=1)[:, 0]
        return path

    def _spans(self, text: str, offset: int, path: np.ndarray, probs: np.ndarray) -> list[Span]:
        out: list[Span] = []
        labels = self.labels
        starts = np.flatnonzero(self._is_begin[path])
        for b in starts:
            kind = labels[path[b]][2:]
            e = b + 1
            while e < len(path) and self._is_inside[path[e]] and labels[path[e]][2:] == kind:
                e += 1
            s0, e0 = offset + int(b), offset + int(e)
            confidence = float(probs[b:e].mean())
            out.append(Span(kind, s0, e0, text[s0:e0], round(confidence, 4)))
        return out


@functools.cache
def _load_cached(path: str) -> Tagger:
    return Tagger(Path(path))


def _constraints(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    n = len(labels)
    trans = np.zeros((n, n), dtype=np.float32)
    start = np.zeros(n, dtype=np.float32)
    for j, cur in enumerate(labels):
        if cur.startswith("I-"):
            start[j] = _NEG
            for i, prev in enumerate(labels):
                if prev == "O" or prev[2:] != cur[2:]:
                    trans[i, j] = _NEG
    return trans, start


def chunk_bounds(text: str, limit: int = MAX_CHUNK) -> list[tuple[int, int]]:
    """Cut text into pieces of at most ``limit`` characters, preferring sentence ends."""
    out: list[tuple[int, int]] = []
    start = 0
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    ends.append(len(text))
    for end in ends:
        while end - start > limit:
            window = text[start : start + limit]
            cut = max(window.rfind(ch) for ch in _SOFT_BREAK)
            stop = start + (cut + 1 if cut >= limit // 3 else limit)
            out.append((start, stop))
            start = stop
        if end > start:
            if text[start:end].strip():
                out.append((start, end))
            start = end
    return out
