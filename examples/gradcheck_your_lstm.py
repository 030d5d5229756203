"""Check your own hand-written LSTM with ``bptt.gradcheck``.

A self-contained NumPy LSTM with a dense head and a mean squared error, written the way you would write it
yourself (batch-major per step, PyTorch's gate order i, f, g, o), with its backward pass derived by hand.
``bptt.gradcheck`` compares every gradient with central differences of the loss: the correct backward
passes, and each planted bug fails, with the report naming the tensors it got wrong.

    python examples/gradcheck_your_lstm.py

Exits 0 when the correct backward passes and every planted bug is caught and named, 1 otherwise.
"""

from __future__ import annotations

import sys

import numpy as np

import bptt


def sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))     # never overflows, unlike 1 / (1 + exp(-a))


def init_params(I, H, O, rng):
    """PyTorch's initialisation: every entry ~ U(-1/sqrt(H), 1/sqrt(H)) (the head's from its fan-in, H)."""
    k = 1.0 / np.sqrt(H)
    shapes = {"W_ih": (4 * H, I), "W_hh": (4 * H, H), "b": (4 * H,), "W_y": (O, H), "b_y": (O,)}
    return {name: rng.uniform(-k, k, size=shape) for name, shape in shapes.items()}


def forward(p, y):
    """Loss and cache for inputs ``p["x"] (T, N, I)``, targets ``y (T, N, O)``, zero initial states."""
    x, W_ih, W_hh, b = p["x"], p["W_ih"], p["W_hh"], p["b"]
    T, N, _ = x.shape
    H = W_hh.shape[1]
    h = np.zeros((T + 1, N, H))                # h[0] = c[0] = 0: the same start on every call
    c = np.zeros((T + 1, N, H))
    gates = np.empty((T, N, 4 * H))
    for t in range(T):
        z = x[t] @ W_ih.T + h[t] @ W_hh.T + b                               # (N, 4H)
        i, f, g, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), np.tanh(z[:, 2 * H:3 * H]), sigmoid(z[:, 3 * H:])
        c[t + 1] = f * c[t] + i * g
        h[t + 1] = o * np.tanh(c[t + 1])
        gates[t] = np.concatenate([i, f, g, o], axis=1)
    pred = h[1:] @ p["W_y"].T + p["b_y"]                                   # (T, N, O)
    loss = float(np.mean((pred - y) ** 2))
    return loss, (h, c, gates, pred)


def backward(p, y, cache, bug=None):
    """Hand-derived gradients of ``forward``'s loss; ``bug`` plants one of the mistakes below."""
    x, W_ih, W_hh = p["x"], p["W_ih"], p["W_hh"]
    h, c, gates, pred = cache
    T, N, _ = x.shape
    H = W_hh.shape[1]
    dpred = 2.0 * (pred - y) / pred.size                                   # the mean, not the sum
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    grads["W_y"] = np.einsum("tno,tnh->oh", dpred, h[1:])
    grads["b_y"] = dpred.sum(axis=(0, 1))
    dh_out = dpred @ p["W_y"]                                              # dL/dh_t through the head
    dh_next, dc_next = np.zeros((N, H)), np.zeros((N, H))
    for t in reversed(range(T)):
        i, f, g, o = (gates[t][:, k * H:(k + 1) * H] for k in range(4))
        dh = dh_out[t] + dh_next                                           # two paths reach h_t
        tanh_c = np.tanh(c[t + 1])
        do = dh * tanh_c                                                   # h = o tanh(c)
        dc = dc_next + dh * o * (1 - tanh_c**2)
        di, df, dg = dc * g, dc * c[t], dc * i                             # c = f c_prev + i g
        dc_next = dc if bug == "cell-carry-without-f" else dc * f
        dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g**2), do * o * (1 - o)], axis=1)
        grads["W_ih"] += dz.T @ x[t]
        grads["W_hh"] += dz.T @ (h[t + 1] if bug == "h-one-step-late" else h[t])
        grads["b"] += dz.sum(axis=0)
        grads["x"][t] = dz @ W_ih
        dh_next = dz @ W_hh
    return grads


def check(params, y, bug=None):
    loss, cache = forward(params, y)
    grads = backward(params, y, cache, bug)
    # f must compute the loss from the arrays in params, afresh: gradcheck perturbs them in place.
    return bptt.gradcheck(lambda p: forward(p, y)[0], params, grads, loss=loss)


def main() -> int:
    rng = np.random.default_rng(0)
    T, N, I, H, O = 6, 3, 2, 4, 1
    params = init_params(I, H, O, rng)
    params["x"] = rng.normal(size=(T, N, I))     # inputs are checked too: dL/dx feeds a layer below
    y = rng.normal(size=(T, N, O))

    report = check(params, y)
    print("correct backward:")
    print(report)
    ok = report.ok

    # Two classic mistakes, and the tensors they corrupt. The head's gradients (W_y, b_y) stay right.
    planted = {"h-one-step-late": ["W_hh"],                             # dW_hh += dz_t h_t^T instead of h_{t-1}
               "cell-carry-without-f": ["W_ih", "W_hh", "b", "x"]}      # forgot the forget gate on the carry
    for bug, expected in planted.items():
        report = check(params, y, bug)
        print(f"\nplanted bug {bug!r}:")
        print(report)
        print(f"planted bug {bug!r}: gradcheck names {report.failed}")
        ok = ok and not report.ok and report.failed == expected
    print("\nevery planted bug was caught and named" if ok else "\nUNEXPECTED: see the reports above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
