"""What the sequence-to-sequence tasks share (``addition`` and ``dates``): strings of two alphabets
turned into padded id batches, the loss that skips padding, exact-match accuracy by greedy decoding, and the
model (:class:`bptt.layers.seq2seq.Seq2Seq`).

A subclass gives its alphabets, draws one problem (a source string and its target) from a generator, and
keeps a validation and a test set of problems that training never draws. Ids: 0 pads both vocabularies; the
target's 1 and 2 are ``<s>`` and ``</s>``; the characters follow in their alphabet's order.

The model's input is a :class:`Batch` of three arrays, so the task gives ``fit`` its call
(:meth:`Seq2SeqTask.forward`, teacher forcing); the target compared with the logits is ``target_out``, the
target followed by ``</s>``, padded with 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from bptt.layers.seq2seq import PAD, Seq2Seq
from bptt.train.losses import cross_entropy
from bptt.train.tasks._common import check_split

BOS, EOS = 1, 2
"""The target vocabulary's start and end ids (0 is padding)."""


def recipe() -> dict[str, object]:
    """The sequence-to-sequence tasks' default model and training settings, chosen on ``addition``."""
    # Measured on 2 cores (addition): LSTM 64 in float64 reached 23.7 % after 500 steps (51 ms a step); LSTM
    # 128 in float32, 3,000 steps of 128 (384,000 problems): seed 0 97.1 %, seed 1 99.2 %; 3,900 steps
    # (499,200 problems, a tenth of Keras' 5 million): seeds 0-4 99.2, 99.7, 99.6, 98.2, 99.7 % in 183-193 s
    # each; the same problems in 7,800 steps of 64: seeds 0-4 100, 100, 99.9, 99.8, 99.9 % (docs/seq2seq.md).
    return {"hidden_size": 128, "num_layers": 1, "dtype": "float32", "steps": 7800, "batch_size": 64, "lr": 3e-3,
            "final_lr": 1e-4, "warmup_steps": 50, "eval_every": 500, "clip_norm": 1.0}


class Batch(NamedTuple):
    """The model's input: ``source (S, N)`` ids, ``lengths (N,)``, ``target_in (T, N)`` (``<s>`` first)."""

    source: NDArray
    lengths: NDArray
    target_in: NDArray


class Seq2SeqTask:
    """The shared part (module docstring). A subclass sets ``source_alphabet``, ``target_alphabet``,
    ``attention`` and ``embedding_dim`` and defines :meth:`problem` and the held-out ``problems``."""

    source_alphabet: str
    target_alphabet: str
    attention: str = "general"
    embedding_dim: int = 32
    problems: dict[str, list[tuple[str, str]]]      # "validation" and "test"

    @property
    def input_size(self) -> int:
        return len(self.source_alphabet) + 1

    @property
    def output_size(self) -> int:
        return len(self.target_alphabet) + 3

    def problems_for_training(self, rng: np.random.Generator,
                              count: int) -> list[tuple[str, str]]:  # pragma: no cover - every subclass has one
        """``count`` training problems ``(source, target)``, never a held-out one."""
        raise NotImplementedError

    def problem(self, rng: np.random.Generator) -> tuple[str, str]:
        """One training problem."""
        return self.problems_for_training(rng, 1)[0]

    # -- strings and ids -------------------------------------------------------------------------------------

    def encode_sources(self, texts: list[str]) -> tuple[NDArray, NDArray]:
        """``source (S, N)`` ids padded with 0 and ``lengths (N,)``; ValueError names a character outside the
        source alphabet."""
        return _encode(texts, self.source_alphabet, 1, "source")

    def encode_targets(self, texts: list[str]) -> tuple[NDArray, NDArray]:
        """``target_in`` (``<s>`` then the target) and ``target_out`` (the target then ``</s>``), ``(T, N)``
        each, padded with 0."""
        ids, lengths = _encode(texts, self.target_alphabet, 3, "target")
        T = ids.shape[0] + 1
        target_in, target_out = np.zeros((T, len(texts)), dtype=np.int64), np.zeros((T, len(texts)), dtype=np.int64)
        target_in[0], target_in[1:] = BOS, ids
        target_out[:-1] = ids
        target_out[lengths, np.arange(len(texts))] = EOS
        return target_in, target_out

    def normalized_source(self, text: str) -> str:
        """The source a person's ``text`` stands for (``bptt translate``): the text as given."""
        return text

    def decode_target(self, tokens: list[int]) -> str:
        """The target string of output ids (the specials left out)."""
        return "".join(self.target_alphabet[t - 3] for t in tokens if t >= 3)

    def batch_of(self, pairs: list[tuple[str, str]]) -> tuple[Batch, NDArray]:
        """The model's input and ``target_out`` for ``(source, target)`` string pairs."""
        source, lengths = self.encode_sources([s for s, _ in pairs])
        target_in, target_out = self.encode_targets([t for _, t in pairs])
        return Batch(source, lengths, target_in), target_out

    # -- the trainer's interface -----------------------------------------------------------------------------

    def batch(self, rng: np.random.Generator, size: int, dtype: object = None) -> tuple[Batch, NDArray]:
        """``size`` fresh training problems (never a held-out one)."""
        return self.batch_of(self.problems_for_training(rng, size))

    def held_out(self, split: str, rng: np.random.Generator | None = None,
                 dtype: object = None) -> tuple[Batch, NDArray]:
        """The fixed ``"validation"`` or ``"test"`` problems (``rng`` is not used: they were drawn with the
        task)."""
        check_split(f"{type(self).__name__}.held_out", split)
        return self.batch_of(self.problems[split])

    def forward(self, model: Seq2Seq, batch: Batch) -> NDArray:
        """The logits ``(T, N, V)`` of ``batch``, teacher forcing."""
        return model(*batch)

    def loss(self, pred: NDArray, target: NDArray) -> tuple[float, NDArray]:
        """Mean cross-entropy over the target tokens that are not padding (``</s>`` included)."""
        return cross_entropy(pred, target, ignore_index=PAD)

    def translate(self, model: Seq2Seq, sources: list[str], beam: int = 1) -> list:
        """The model's outputs (:class:`bptt.layers.decoding.Decoded`) for source strings."""
        source, lengths = self.encode_sources(sources)
        return model.decode(source, lengths, bos=BOS, eos=EOS, max_length=self.max_target_length, beam=beam)

    @property
    def max_target_length(self) -> int:  # pragma: no cover - every subclass has one
        raise NotImplementedError

    def metrics(self, model: Seq2Seq, data: tuple[Batch, NDArray]) -> dict[str, float]:
        """``test_accuracy``: the share of held-out problems whose greedy output is exactly the target;
        ``test_problems``, how many."""
        batch, target_out = data
        decoded = model.decode(batch.source, batch.lengths, bos=BOS, eos=EOS, max_length=self.max_target_length)
        truth = [column[:np.flatnonzero(column == EOS)[0]].tolist() for column in target_out.T]
        correct = sum(d.tokens == t for d, t in zip(decoded, truth, strict=True))
        return {"test_accuracy": correct / len(truth), "test_problems": len(truth)}

    def progress_note(self, model: Seq2Seq) -> str:
        """The first three validation problems and the model's greedy answers, shown at each evaluation."""
        pairs = self.problems["validation"][:3]
        outputs = self.translate(model, [s for s, _ in pairs])
        return "   ".join(f"{s} -> {self.decode_target(d.tokens)} {'ok' if self.decode_target(d.tokens) == t else 'x'}"
                           for (s, t), d in zip(pairs, outputs, strict=True))

    def build_model(self, hidden_size: int, num_layers: int = 1, *, cell: str = "lstm", dtype: object = np.float64,
                    rng: object = None) -> Seq2Seq:
        return Seq2Seq(self.input_size, self.output_size, self.embedding_dim, hidden_size, cell=cell,
                       attention=self.attention, num_layers=num_layers, dtype=dtype, rng=rng)


def hashed_share(keys: object, seed: int, share: float) -> NDArray:
    """Whether each of the non-negative integer ``keys`` falls in a fixed ``share`` of all keys: a
    multiplicative hash of the key and ``seed``, modulo :math:`2^{32}`, below ``share`` of :math:`2^{32}`.
    The same key and seed always answer the same; about ``share`` of any large set of keys answers True."""
    salt = np.uint64(seed * 0x85EBCA6B % 2**32)
    mixed = (np.asarray(keys, dtype=np.uint64) * np.uint64(0x9E3779B1) + salt) % np.uint64(2**32)  # modulo 2^64 first
    return mixed < np.uint64(share * 2**32)


def _encode(texts: list[str], alphabet: str, offset: int, what: str) -> tuple[NDArray, NDArray]:
    """Ids ``(L, N)`` of ``texts`` (character ``alphabet[k]`` is ``k + offset``), padded with 0, and their
    lengths."""
    table = {c: k + offset for k, c in enumerate(alphabet)}
    lengths = np.array([len(text) for text in texts], dtype=np.int64)
    ids = np.zeros((max(lengths.max(), 1), len(texts)), dtype=np.int64)
    for n, text in enumerate(texts):
        try:
            ids[:len(text), n] = [table[c] for c in text]
        except KeyError as error:
            raise ValueError(f"expected a {what} of the characters {alphabet!r}, got {text!r} with "
                             f"{error.args[0]!r}.") from None
    return ids, lengths
