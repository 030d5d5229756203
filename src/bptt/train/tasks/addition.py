r"""Addition as translation: ``"535+61"`` to ``"596"``, the exercise of Keras' addition example.

Each operand has a number of digits drawn uniformly from 1 to ``digits`` and then each digit uniformly, as
Keras draws them (so small numbers are frequent: one operand in three has one digit). With ``reverse`` the
source is read backwards (``"16+535"``), as Keras' ``REVERSE`` does: the digits that decide the answer's first
digits then come last, next to the decoder.

The test problems are sums the model has never seen. A fixed tenth of all problems (:data:`HELD_OUT_SHARE`,
chosen by a hash of the two operands, either order, and the seed) is held out: training draws from the other
nine tenths, and the validation (1,000) and test (2,000) problems are distinct problems drawn, the same way,
from the held-out tenth. Holding out a tenth of every kind of problem, rather than the first problems drawn,
matters: the first 3,000 distinct problems drawn hold nearly all the 55 sums of two one-digit numbers, and a
model that never trained on one of them fails them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bptt._validation import check_bool, check_positive_int
from bptt.train.tasks._seq2seq import Seq2SeqTask, hashed_share, recipe

HELD_OUT = {"validation": 1_000, "test": 2_000}
"""How many distinct problems each held-out split has, at most (fewer with fewer digits)."""

HELD_OUT_SHARE = 0.1
"""The share of all problems that training never draws."""


@dataclass(frozen=True)
class AdditionTask(Seq2SeqTask):
    """``a+b`` to its sum, operands of 1 to ``digits`` digits (module docstring)."""

    digits: int = 3
    reverse: bool = False
    seed: int = 0
    name: str = field(default="addition", init=False)
    source_alphabet: str = field(default="0123456789+", init=False)
    target_alphabet: str = field(default="0123456789", init=False)
    defaults: dict[str, object] = field(default_factory=recipe, compare=False, repr=False)
    goals: dict = field(default_factory=lambda: {"test_accuracy": (">=", 0.99)}, init=False, compare=False,
                        repr=False)
    problems: dict = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_positive_int("AdditionTask", "digits", self.digits)
        check_bool("AdditionTask", "reverse", self.reverse)
        rng = np.random.default_rng([self.seed, 23])
        held_out = (10**self.digits) * (10**self.digits + 1) // 2 * HELD_OUT_SHARE   # about, up to the order
        scale = min(1.0, held_out / 2 / sum(HELD_OUT.values()))
        sizes = {name: max(1, int(size * scale)) for name, size in HELD_OUT.items()}      # 1,000 and 2,000
        pairs: dict[tuple[int, int], None] = {}
        while len(pairs) < sum(sizes.values()):
            drawn = self._operands(rng, 4096)
            for a, b in drawn[self.is_held_out(drawn[:, 0], drawn[:, 1])].tolist():
                if (b, a) not in pairs and len(pairs) < sum(sizes.values()):
                    pairs[a, b] = None
        ordered = list(pairs)        # one in three to validation, so that both splits get the rare small sums
        validation = set(ordered[::3][:sizes["validation"]])
        split = {"validation": [p for p in ordered if p in validation],
                 "test": [p for p in ordered if p not in validation]}
        object.__setattr__(self, "problems", {name: [self._strings(a, b) for a, b in chosen]
                                              for name, chosen in split.items()})

    def is_held_out(self, a: object, b: object) -> object:
        """Whether ``a+b`` (and ``b+a``) is in the held-out share: a hash of the smaller operand and the larger
        (:func:`~bptt.train.tasks._seq2seq.hashed_share`). Ints or arrays of them."""
        a, b = np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)
        return hashed_share(np.minimum(a, b) * np.uint64(1_000_003) + np.maximum(a, b), self.seed, HELD_OUT_SHARE)

    @property
    def max_target_length(self) -> int:
        return self.digits + 2                                  # every digit of the sum, and </s>

    def _operands(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` problems ``(count, 2)``: each operand's number of digits uniform in 1..digits, then each
        digit uniform (an integer uniform below 10 to that power)."""
        return rng.integers(0, 10 ** rng.integers(1, self.digits + 1, size=(count, 2)))

    def _strings(self, a: int, b: int) -> tuple[str, str]:
        source = f"{a}+{b}"
        return (source[::-1] if self.reverse else source), str(a + b)

    def problems_for_training(self, rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
        """``count`` training problems, never a held-out one."""
        chosen: list[tuple[str, str]] = []
        while len(chosen) < count:
            drawn = self._operands(rng, 2 * (count - len(chosen)) + 8)
            kept = drawn[~self.is_held_out(drawn[:, 0], drawn[:, 1])][:count - len(chosen)]
            chosen += [self._strings(a, b) for a, b in kept.tolist()]
        return chosen
