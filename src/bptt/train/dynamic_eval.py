r"""Dynamic evaluation: a language model that keeps learning from the text it is scored on.

Krause, Kahembwe, Murray and Renals (2018), *Dynamic Evaluation of Neural Sequence Models* (ICML): read the
test text as one stream in segments of :math:`k` characters; score each segment with the current weights and
the state carried from the previous one, then take one gradient step on that segment's loss, so that the
next segment is scored by a model that has adapted to the text just read. Every character is still scored
*before* any update that has seen it, so the figure is an honest bits per character (an arithmetic coder and
its decoder can make the same updates in the same order), and it stands beside the static figure, not in its
place: it measures a model plus an update rule.

With :math:`s_i` the :math:`i`-th segment, :math:`\theta_0` the trained weights and :math:`\theta_i` the
weights that score :math:`s_i`,

.. math::

    \mathrm{BPC} = -\frac{1}{n} \sum_i \sum_{t \in s_i} \log_2 p_{\theta_i}(c_t \mid c_{<t}), \qquad
    g_i = \nabla_\theta L(s_i; \theta_i), \quad v_i = \beta v_{i-1} + (1 - \beta) g_i^2, \quad
    \theta_{i+1} = \theta_i - \eta\, \frac{g_i}{\sqrt{v_i / (1 - \beta^{i+1})} + \epsilon}
                  + \lambda\, (\theta_0 - \theta_i),

where :math:`L(s_i; \theta)` is the mean cross-entropy (nats) of the segment's characters: each parameter's
step is scaled by the running root mean square of its own gradients on the text read so far (RMSprop, with
Adam's bias correction), and a decay :math:`\lambda` pulls the weights back towards the trained ones (Krause
et al.'s "global prior"), so that what one passage taught fades when the text moves on. Krause et al.
estimate the mean square on the training text; here it is estimated on the stream itself, so the function
needs nothing but the model and the text. Plain SGD (:math:`\theta_{i+1} = \theta_i - \eta g_i`) was
measured first: on the validation text of the standard-library corpus (1,500-step LSTM of 256, first 10,000
characters, static 2.006 bits) its best was 1.663 (segment 50, :math:`\eta = 0.3`), the RMS rule's 1.616 at
the same segment and 1.569 at segment 20 (:math:`\eta = 10^{-3}`): one learning rate fits every parameter
only after each is put on the scale of its own gradients. The gradient of a
segment stops at its first step (truncated BPTT: the state it starts from is carried, not differentiated).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from bptt._validation import as_array, check_positive_int
from bptt.layers.inference import inference_mode
from bptt.train.losses import cross_entropy

SEGMENT = 20
"""Characters per segment: one update after each (chosen on validation text, module docstring)."""

LR = 1e-3
"""Learning rate :math:`\\eta`: about the size of each parameter's step, the gradient being divided by its RMS."""

DECAY = 1e-3
"""Decay :math:`\\lambda` towards the trained weights at each update."""

BETA = 0.99
"""Forgetting factor :math:`\\beta` of the running mean square of the gradients (about 100 segments)."""

EPSILON = 1e-8
"""Added to the RMS before dividing, :math:`\\epsilon`."""


def _check_real(where: str, name: str, value: object, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, or TypeError / ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where}: expected {name} to be a real number, got {type(value).__name__}.")
    if not (math.isfinite(value) and low <= value <= high):
        raise ValueError(f"{where}: expected {name} in [{low:g}, {high:g}], got {value!r}.")
    return float(value)


def dynamic_bits_per_character(model, x: NDArray, y: NDArray, *, segment: int = SEGMENT, lr: float = LR,
                               decay: float = DECAY) -> float:
    r"""Bits per character of ``model`` on the stream ``x -> y`` under dynamic evaluation.

    Each segment of ``segment`` steps is scored with the current weights and the state carried from the one
    before, then one RMS-normalised step :math:`\theta \leftarrow \theta - \eta\, g / (\mathrm{RMS}(g) + \epsilon)
    + \lambda (\theta_0 - \theta)` is taken on its mean cross-entropy (module docstring; Krause et al. 2018).
    The work is done on a copy of the weights: ``model`` (its parameters, gradients and ``final_state``) is
    left unchanged. With ``lr = 0`` the result is the static bits per character of the same stream.

    Parameters
    ----------
    model : :class:`bptt.layers.models.LanguageModel`, or any module with its protocol: ``model(tokens, hx)``
        gives logits ``(T, N, V)`` and keeps ``final_state``, ``backward(dlogits)`` adds into ``grads``, and
        ``config()`` builds a twin.
    x : integer array ``(n, N)``, the tokens read, time-major (``N = 1`` for one stream).
    y : integer array ``(n, N)``, the next token at every step.
    segment : int >= 1, steps per segment (one update after each).
    lr : float >= 0, the learning rate :math:`\eta` (about each parameter's step size).
    decay : float in [0, 1], the pull :math:`\lambda` back towards the trained weights at each update.

    Returns
    -------
    float : the mean of :math:`-\log_2 p` over the ``n * N`` tokens of ``y``, each scored before any update
    that saw it.

    Examples
    --------
    >>> from bptt.layers.models import LanguageModel
    >>> model = LanguageModel(3, 4, 8, rng=0)
    >>> x = np.array([0, 1, 2] * 20)[:, None]
    >>> y = np.roll(x, -1, axis=0)
    >>> static = dynamic_bits_per_character(model, x, y, lr=0.0)
    >>> dynamic_bits_per_character(model, x, y, segment=6, lr=0.05) < static
    True
    """
    nats = 0.0
    checked = _checked("dynamic_bits_per_character", x, y, segment, lr, decay)
    for logits, _, targets in _segments(model, *checked):
        nats += cross_entropy(logits, targets)[0] * targets.size      # scored before the update that sees it
    return nats / np.size(y) / math.log(2)


def dynamic_segments(model, x: NDArray, y: NDArray, *, segment: int = SEGMENT, lr: float = LR,
                     decay: float = DECAY) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
    """The segments of :func:`dynamic_bits_per_character`, in order: for each, the logits ``(k, N, V)`` and the
    top layer's outputs ``(k, N, H)`` (``model.hidden``) it was scored with, before the update that sees it,
    and its targets ``(k, N)``. The arguments are those of :func:`dynamic_bits_per_character`; ``model`` is
    left unchanged."""
    return _segments(model, *_checked("dynamic_segments", x, y, segment, lr, decay))


def _checked(where: str, x: object, y: object, segment: object, lr: object,
             decay: object) -> tuple[NDArray, NDArray, int, float, float]:
    """The arguments of :func:`dynamic_segments`, checked; TypeError or ValueError naming ``where``."""
    segment = check_positive_int(where, "segment", segment)
    lr = _check_real(where, "lr", lr, 0.0, math.inf)
    decay = _check_real(where, "decay", decay, 0.0, 1.0)
    x, y = as_array(where, "x", x), as_array(where, "y", y)
    for name, tokens in (("x", x), ("y", y)):
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError(f"{where}: expected {name} to be integer token ids, got dtype {tokens.dtype}.")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected x of shape (n, N) with n, N >= 1, got {x.shape}. For one stream "
                         "pass tokens[:, None].")
    if y.shape != x.shape:
        raise ValueError(f"{where}: expected y of the shape of x {x.shape}, got {y.shape}.")
    return x, y, segment, lr, decay


def _segments(model, x: NDArray, y: NDArray, segment: int, lr: float,
              decay: float) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
    """:func:`dynamic_segments` on checked arguments."""
    twin = type(model)(**model.config(), rng=0)      # the weights are overwritten: any init does
    twin.load_state_dict(model.state_dict())
    twin.train(model.training)
    trained = twin.state_dict()                      # theta_0, for the decay
    mean_square = {name: np.zeros_like(theta) for name, theta in twin.params.items()}
    state, updates = None, 0
    for start in range(0, len(x), segment):
        with inference_mode(False):                  # the update below goes back through this pass
            logits = twin(x[start:start + segment], state)
        state = twin.final_state                     # carried on; the segment's gradient stops at its start
        yield logits, twin.hidden, y[start:start + segment]     # scored before the update that sees it
        if lr == 0.0 or start + segment >= len(x):
            continue
        dlogits = cross_entropy(logits, y[start:start + segment])[1]
        twin.zero_grad()
        twin.backward(dlogits)
        updates += 1
        correction = 1.0 - BETA**updates             # Adam's bias correction of a mean that starts at 0
        for name, theta in twin.params.items():
            # theta <- theta - lr g / (RMS(g) + eps) + decay (theta_0 - theta), in place (the twin's children
            # share the arrays)
            grad, v = twin.grads[name], mean_square[name]
            v *= BETA
            v += (1.0 - BETA) * grad * grad
            step = lr * grad / (np.sqrt(v / correction) + EPSILON)
            if decay:
                step -= decay * (trained[name] - theta)
            theta -= step

