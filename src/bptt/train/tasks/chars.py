r"""A character language model on real text: predict every next character, scored in bits per character.

The text is any UTF-8 file (``text``), or by default a corpus that every Python installation ships: the
source files of the standard-library modules in :data:`CORPUS_FILES`, concatenated in that order (so its
size and :func:`hashlib.sha256` differ between Python versions; both are reported). The vocabulary is every
character of the text, sorted. The text is split in order, without shuffling: the first 90 % trains, the
next 5 % validates, the last 5 % tests.

Training batches are windows of ``seq_len + 1`` characters at random places of the training text: the
model reads the first ``seq_len`` and predicts the next character at each of them. The loss is the mean
softmax cross-entropy over every step and sequence. The test metric is the bits per character of the test
text read as one stream, the state carried from each character to the next:

.. math::

    \mathrm{BPC} = -\frac{1}{n} \sum_{t=1}^{n} \log_2 p(c_t \mid c_{<t})
               = \frac{\text{mean cross-entropy in nats}}{\ln 2},
    \qquad \text{perplexity per character} = 2^{\mathrm{BPC}}.

Beside it the task reports two baselines fitted on the training text only (:mod:`bptt.train.baselines`):
the add-one unigram and the interpolated Kneser-Ney n-gram whose order is chosen on the validation text; and
the model's BPC under dynamic evaluation (:mod:`bptt.train.dynamic_eval`: one gradient step after each
segment of the test stream is scored) and with a neural cache (:mod:`bptt.train.neural_cache`: the model
mixed with a lookup of its own recent hidden states), each reported beside the static figure, never in its
place.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from bptt._validation import check_dropout, check_positive_int, check_shape
from bptt.train.baselines import best_ngram, unigram_bpc
from bptt.train.losses import cross_entropy
from bptt.train.neural_cache import bits_alone_and_cached, choose_cache
from bptt.train.tasks._common import check_split

CORPUS_FILES = (
    "argparse.py", "textwrap.py", "string.py", "json/decoder.py", "json/encoder.py", "collections/__init__.py",
    "functools.py", "dataclasses.py", "inspect.py", "typing.py", "enum.py", "logging/__init__.py", "csv.py",
    "heapq.py", "random.py", "statistics.py", "fractions.py", "calendar.py", "difflib.py", "shutil.py",
    "tempfile.py", "contextlib.py", "copy.py", "pprint.py", "glob.py", "fnmatch.py", "queue.py", "weakref.py",
    "operator.py", "numbers.py", "configparser.py", "gettext.py", "traceback.py",
)
"""The default corpus: these files of the standard library's source folder (``sysconfig``'s ``stdlib``
path), in this order; a file a Python version lacks is skipped. About 1.3 million characters on 3.11."""

SPLIT = (0.90, 0.05, 0.05)
"""Shares of the text for training, validation and test, in the text's order."""

VALIDATION_STREAMS = 32
"""The validation text is read as this many contiguous streams side by side, each from a zero state."""

PROGRESS_SAMPLE = 72
"""Characters of the sample shown at each evaluation."""

CACHE_VALIDATION = 30_000
"""Characters of the validation text, from its start, read as one stream to choose the neural cache's
settings (:func:`bptt.train.neural_cache.choose_cache`)."""


@functools.cache
def default_corpus() -> str:
    """The standard-library corpus of :data:`CORPUS_FILES`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    return "".join((root / name).read_text(encoding="utf-8") for name in CORPUS_FILES if (root / name).is_file())


def read_text(path: str | os.PathLike) -> str:
    """A UTF-8 text file, or ValueError naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"chars: expected a UTF-8 text file, got {os.fspath(path)!r}, which does not exist.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"chars: expected a UTF-8 text file, got {os.fspath(path)!r}, whose byte {error.start} "
                         f"({error.object[error.start:error.start + 1]!r}) is not UTF-8.") from error


def _defaults() -> dict[str, object]:
    # Measured on the default corpus (2 cores, float32, about 95 ms a step): validation BPC 1.93 after 666
    # steps, 1.67 after 2,000 and 1.62 after 4,000, where the test BPC was 1.94 against the n-gram's 2.00.
    # The task's dropout (0.2) was chosen on three corpora (docs/text.md): it took the test BPC to 1.91 here.
    return {"hidden_size": 256, "num_layers": 1, "dtype": "float32", "steps": 4000, "batch_size": 32,
            "lr": 3e-3, "final_lr": 1e-4, "warmup_steps": 50, "eval_every": 500, "clip_norm": 1.0}


@dataclass(frozen=True)
class CharsTask:
    """Next-character prediction on ``text`` (a file path; None: the standard-library corpus).

    Shapes: tokens ``x (T, N)`` and targets ``y (T, N)``, integer character ids; the model's logits
    ``(T, N, V)``; ``T = seq_len`` for training batches.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
    >>> _ = path.write_text("abcabcabc" * 200)
    >>> task = CharsTask(text=str(path), seq_len=8)
    >>> task.vocabulary, task.input_size
    ('abc', 3)
    >>> x, y = task.batch(np.random.default_rng(0), 2)
    >>> x.shape, bool((x[1:] == y[:-1]).all())
    ((8, 2), True)
    """

    text: str | None = None
    seq_len: int = 128
    embedding_dim: int = 32
    dropout: float = 0.2
    """Dropout on the model's non-recurrent connections in training (Zaremba et al. 2014): measured on three
    corpora, 0.2 gained on the standard library and prose and cost on pip's sources (docs/text.md)."""
    name: str = field(default="chars", init=False)
    input_size: int = field(init=False)
    output_size: int = field(init=False)
    vocabulary: str = field(init=False, repr=False)
    corpus_chars: int = field(init=False)
    corpus_sha256: str = field(init=False, repr=False)
    splits: dict = field(init=False, repr=False, compare=False)
    defaults: dict[str, object] = field(default_factory=_defaults, compare=False, repr=False)
    per_step_loss: ClassVar[bool] = True
    goals: ClassVar[dict] = {"bpc_margin": (">", 0.0)}

    def __post_init__(self) -> None:
        check_positive_int("CharsTask", "seq_len", self.seq_len)
        check_positive_int("CharsTask", "embedding_dim", self.embedding_dim)
        check_dropout("CharsTask", self.dropout)
        corpus = default_corpus() if self.text is None else read_text(self.text)
        source = "the standard-library corpus" if self.text is None else repr(self.text)
        if not corpus:
            raise ValueError(f"chars: expected a text with characters, got an empty {source}.")
        train_end = int(len(corpus) * SPLIT[0])
        validation_end = train_end + int(len(corpus) * SPLIT[1])
        needed = self.seq_len + 1
        # each split holds one sequence of seq_len + 1, and the validation split one step of every stream
        sizes = (train_end - 1, validation_end - train_end, len(corpus) - validation_end)
        needs = (needed, max(needed, VALIDATION_STREAMS + 1), needed)
        if any(size < need for size, need in zip(sizes, needs, strict=True)):
            minimum = max(int(np.ceil(need / share)) for need, share in zip(needs, SPLIT, strict=True))
            raise ValueError(f"chars: expected a text of at least {minimum} characters (each of the splits "
                             f"{SPLIT} must hold one training sequence of seq_len + 1 = {needed}, the "
                             f"validation split {VALIDATION_STREAMS + 1} characters for its "
                             f"{VALIDATION_STREAMS} streams), got {len(corpus)} characters in {source}.")
        vocabulary = "".join(sorted(set(corpus)))
        ids = np.frombuffer(corpus.encode("utf-32-le"), dtype=np.uint32)
        lookup = np.zeros(int(ids.max()) + 1, dtype=np.int64)
        lookup[[ord(c) for c in vocabulary]] = np.arange(len(vocabulary))
        tokens = lookup[ids]
        set_ = functools.partial(object.__setattr__, self)
        set_("vocabulary", vocabulary)
        set_("input_size", len(vocabulary))
        set_("output_size", len(vocabulary))
        set_("corpus_chars", len(corpus))
        set_("corpus_sha256", hashlib.sha256(corpus.encode("utf-8")).hexdigest())
        set_("splits", {"train": tokens[:train_end], "validation": tokens[train_end:validation_end],
                        "test": tokens[validation_end:]})

    # -- the model and the data ------------------------------------------------------------------------------

    def build_model(self, hidden_size: int, num_layers: int, *, cell: str, dtype: object, rng: object):
        """A :class:`bptt.layers.models.LanguageModel` over this vocabulary, with the task's ``dropout`` on its
        non-recurrent connections in training."""
        from bptt.layers.models import LanguageModel

        return LanguageModel(self.input_size, self.embedding_dim, hidden_size, num_layers, cell=cell,
                             dropout=self.dropout, dtype=dtype, rng=rng)

    def encode(self, text: str) -> NDArray:
        """Character ids of ``text``; ValueError naming every character outside the vocabulary."""
        unknown = sorted(set(text) - set(self.vocabulary))
        if unknown:
            raise ValueError(f"chars: expected characters of the vocabulary, got {len(unknown)} outside it: "
                             f"{''.join(unknown)!r}.")
        table = {c: k for k, c in enumerate(self.vocabulary)}
        return np.array([table[c] for c in text], dtype=np.int64)

    def decode(self, ids: NDArray) -> str:
        """The text of character ids."""
        return "".join(self.vocabulary[int(k)] for k in np.ravel(ids))

    def batch(self, rng: np.random.Generator, size: int, dtype: object = None) -> tuple[NDArray, NDArray]:
        """``size`` windows at random places of the training text: tokens and next-character targets, both
        ``(seq_len, size)`` (``dtype`` is the model's and unused: the inputs are ids)."""
        size = check_positive_int("CharsTask.batch", "size", size)
        train = self.splits["train"]
        starts = rng.integers(0, len(train) - self.seq_len, size=size)
        windows = train[starts[None, :] + np.arange(self.seq_len + 1)[:, None]]     # (seq_len + 1, size)
        return windows[:-1], windows[1:]

    def held_out(self, split: str, rng: np.random.Generator | None = None,
                 dtype: object = None) -> tuple[NDArray, NDArray]:
        """The validation text as :data:`VALIDATION_STREAMS` contiguous streams side by side, ``(L, 32)``;
        the test text as one stream, ``(n - 1, 1)``. Both are fixed: ``rng`` is unused."""
        check_split("CharsTask.held_out", split)
        tokens = self.splits[split]
        if split == "test":
            return tokens[:-1, None], tokens[1:, None]
        length = (len(tokens) - 1) // VALIDATION_STREAMS
        x = tokens[:length * VALIDATION_STREAMS].reshape(VALIDATION_STREAMS, length).T
        y = tokens[1:length * VALIDATION_STREAMS + 1].reshape(VALIDATION_STREAMS, length).T
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    def checkpoint_metadata(self) -> dict[str, object]:
        """What a checkpoint needs to read and write text (the vocabulary), and which text it learned."""
        return {"vocabulary": self.vocabulary, "corpus_chars": self.corpus_chars, "corpus_sha256": self.corpus_sha256}

    def progress_note(self, model) -> str:
        """A short sample of the model's text (temperature 0.7, a fixed seed), shown at each evaluation."""
        from bptt.layers.sampling import sample

        prime = "\n" if "\n" in self.vocabulary else self.vocabulary[0]
        text = self.decode(sample(model, self.encode(prime), PROGRESS_SAMPLE, temperature=0.7, rng=0))
        return f"sample {text!r}"

    # -- loss and metrics ------------------------------------------------------------------------------------

    def loss(self, pred: NDArray, target: NDArray, start: int = 0) -> tuple[float, NDArray]:
        """Mean cross-entropy (nats) over every step and sequence, and its gradient. ``start`` (the chunk's
        first step under truncated BPTT) changes nothing: every step is scored."""
        pred, target = np.asarray(pred), np.asarray(target)
        check_shape("CharsTask.loss", "pred", pred, (*target.shape, self.output_size),
                    "The model's logits at every step, time-major.")
        return cross_entropy(pred, target)

    @functools.cached_property
    def baselines(self) -> dict[str, float]:
        """The unigram's and the best Kneser-Ney n-gram's test BPC, and that n-gram's order (fitted on the
        training text, the order chosen on the validation text)."""
        train, validation, test = (self.decode(self.splits[s]) for s in ("train", "validation", "test"))
        order, ngram_bpc, _ = best_ngram(train, validation, test, self.vocabulary)
        return {"baseline_bpc": ngram_bpc, "baseline_order": order,
                "unigram_bpc": unigram_bpc(train, test[1:], self.vocabulary)}

    def metrics(self, model, data: tuple[NDArray, NDArray]) -> dict[str, float]:
        """``test_bpc`` on the test stream, the baselines on the same characters, ``bpc_margin`` (the best
        n-gram's BPC minus the model's: above 0 the model is better); ``test_bpc_dynamic`` and
        ``bpc_margin_dynamic``, the same two under dynamic evaluation with its default segment and learning
        rate (:func:`bptt.train.dynamic_eval.dynamic_bits_per_character`); ``test_bpc_cache`` and
        ``bpc_margin_cache`` with a neural cache (:mod:`bptt.train.neural_cache`) whose ``cache_flatness`` and
        ``cache_weight`` were chosen on the first :data:`CACHE_VALIDATION` characters of the validation text;
        ``test_bpc_dynamic_cache`` and ``bpc_margin_dynamic_cache``, the cache under dynamic evaluation, its
        ``dynamic_cache_flatness`` and ``dynamic_cache_weight`` chosen on the same characters read that way;
        ``vocab_size`` and ``corpus_chars``. ``model`` is left unchanged."""
        x, y = data
        validation = self.splits["validation"][:CACHE_VALIDATION + 1]
        cache = choose_cache(model, validation[:-1, None], validation[1:, None])[0]
        bpc, cached = bits_alone_and_cached(model, x, y, cache)
        dynamic_cache = choose_cache(model, validation[:-1, None], validation[1:, None], dynamic=True)[0]
        dynamic, dynamic_cached = bits_alone_and_cached(model, x, y, dynamic_cache, dynamic=True)
        figures = {"test_bpc": bpc, "test_bpc_dynamic": dynamic, "test_bpc_cache": cached,
                   "test_bpc_dynamic_cache": dynamic_cached}
        ngram = self.baselines["baseline_bpc"]
        margins = {key.replace("test_bpc", "bpc_margin"): ngram - value for key, value in figures.items()}
        return {**figures, **self.baselines, **margins, "cache_flatness": cache.flatness,
                "cache_weight": cache.weight, "dynamic_cache_flatness": dynamic_cache.flatness,
                "dynamic_cache_weight": dynamic_cache.weight, "vocab_size": self.input_size,
                "corpus_chars": self.corpus_chars}
