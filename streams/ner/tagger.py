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

MODEL_VERSION = "0.6.1"  # pre-Qin silver data (issue 15); int8 (streams/ner/quantize.py)
MODEL_DIR = Path(__file__).parent / "model"
DEFAULT_MODEL = MODEL_DIR / "ner.onnx"

MAX_CHUNK = 160
ROW_WIDTH = 512
BATCH_ROWS = 32
GAP = 8  # >= the widest dilation of the network (see train.CharTagger)
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
        # A lookup table by code point (the last entry, <unk>, catches everything above).
        table = np.ones(max(ord(ch) for ch in self.index if len(ch) == 1) + 2, dtype=np.int64)
        for ch, i in self.index.items():
            if len(ch) == 1:
                table[ord(ch)] = i
        self._by_codepoint = table
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
        points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        return self._by_codepoint[np.minimum(points, len(self._by_codepoint) - 1)]

    def tag(self, text: str) -> list[Span]:
        return self.tag_many([text])[0]

    def tag_many(self, texts: list[str]) -> list[list[Span]]:
        """Tag several texts at once (their chunks share batches)."""
        chunks: list[tuple[int, int, int]] = []  # (text index, start, end)
        for t, text in enumerate(texts):
            chunks.extend((t, s, e) for s, e in chunk_bounds(text))
        results: list[list[Span]] = [[] for _ in texts]
        if not chunks:
            return results
        # Pack chunks into rows separated by GAP padding positions. Padding is zeroed after
        # every layer and GAP exceeds the widest dilation, so packed chunks do not see each
        # other: the scores equal those of tagging each chunk alone, with little padding.
        placed: list[tuple[int, int]] = []  # (row, offset) per chunk
        row, offset = 0, 0
        for _, s, e in chunks:
            if offset and offset + (e - s) > ROW_WIDTH:
                row, offset = row + 1, 0
            placed.append((row, offset))
            offset += e - s + GAP
        ids = np.zeros((row + 1, ROW_WIDTH), dtype=np.int64)
        encoded = [self.encode(text) for text in texts]
        for (t, s, e), (r, o) in zip(chunks, placed, strict=True):
            ids[r, o : o + e - s] = encoded[t][s:e]
        used = max(o + e - s for (_, s, e), (_, o) in zip(chunks, placed, strict=True))
        ids = ids[:, :used] if row == 0 else ids
        scores = np.concatenate(
            [
                self.session.run(None, {"ids": ids[i : i + BATCH_ROWS]})[0]
                for i in range(0, ids.shape[0], BATCH_ROWS)
            ]
        )
        lengths = np.array([e - s for _, s, e in chunks])
        per_chunk = np.zeros((len(chunks), int(lengths.max()), scores.shape[2]), np.float32)
        for c, (r, o) in enumerate(placed):
            per_chunk[c, : lengths[c]] = scores[r, o : o + lengths[c]]
        paths, probs = self._decode(per_chunk, lengths)
        valid = np.arange(paths.shape[1])[None, :] < lengths[:, None]
        text_of = np.repeat([t for t, _, _ in chunks], lengths)
        char_at = np.concatenate([np.arange(s, e) for _, s, e in chunks])
        self._collect(texts, paths[valid], probs[valid], text_of, char_at, results)
        return results

    def _collect(
        self,
        texts: list[str],
        path: np.ndarray,
        probs: np.ndarray,
        text_of: np.ndarray,
        char_at: np.ndarray,
        results: list[list[Span]],
    ) -> None:
        """Spans from the decoded tags of all chunks laid end to end.

        Decoding is constrained, so an I- tag always continues the span before it; a chunk
        always starts with O or B-, so no span runs across two chunks.
        """
        begins = np.flatnonzero(self._is_begin[path])
        if begins.size == 0:
            return
        stops = np.flatnonzero(~self._is_inside[path])
        stops = np.append(stops, len(path))
        ends = stops[np.searchsorted(stops, begins + 1)]
        cumulative = np.concatenate([[0.0], np.cumsum(probs, dtype=np.float64)])
        confidence = (cumulative[ends] - cumulative[begins]) / (ends - begins)
        kinds = [self.labels[i][2:] for i in range(len(self.labels))]
        for b, e, conf in zip(begins.tolist(), ends.tolist(), confidence.tolist(), strict=True):
            t = int(text_of[b])
            s0 = int(char_at[b])
            e0 = s0 + (e - b)
            results[t].append(Span(kinds[path[b]], s0, e0, texts[t][s0:e0], round(conf, 4)))

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
            new = cand.max(axis=1) + logp[:, t, :]
            active = (t < lengths)[:, None]
            delta = np.where(active, new, delta)
            back[:, t, :] = np.where(active, best, np.arange(n)[None, :])
        path = np.zeros((batch, width), dtype=np.int64)
        last = delta.argmax(axis=1)
        rows = np.arange(batch)
        for t in range(width - 1, -1, -1):
            path[:, t] = last
            if t > 0:
                last = back[rows, t, last]
        return path


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
