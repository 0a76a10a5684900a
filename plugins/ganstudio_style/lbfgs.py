"""L-BFGS for one image tensor without host synchronisation (Nocedal, 1980; Liu and Nocedal, 1989).

The same iteration as ``torch.optim.LBFGS(max_iter=1, line_search_fn=None)``
called once per step: the two-loop recursion over the last ``history`` curvature
pairs, the step ``t = min(1, 1/|g|_1) * lr`` on the first iteration and ``lr``
after, and no move when the direction is not a descent direction. What differs
is that nothing comes back to the host: torch's version reads the loss
(``float(closure())``), tests tolerances with Python ``if`` on tensors and
passes tensor ``alpha=`` values to ``add_`` (two host reads per stored pair
and iteration, about a hundred per iteration with a history of 50). On a GPU
each of those reads waits for the device to drain, so the iteration ran at the
speed of the kernel launches rather than of the VGG passes. Here every scalar
(dot products, step size, the descent and curvature tests) stays a 0-d device
tensor and the tests become masks:

* a pair with ``y.s <= 1e-10`` is still stored but with ``rho = 0``, which makes
  its terms in both loops exactly zero (as if skipped; it only takes a slot);
* a non-descent direction (``g.d > -tolerance``) or a vanishing gradient
  (``max|g| <= tolerance_grad``) gives step length 0 (torch's version returns
  without moving).

Only the number of stored pairs is host state, and it never depends on values.

The two-loop recursion is evaluated in matrix form so that an iteration is a
handful of kernels whatever the history: the pairs live in two (m, N) buffers
S and Y (a ring), the products s_i.y_j are kept in an (m, m) matrix updated by
two matrix-vector products per new pair, and each loop of the recursion (a
sequential substitution over the pairs) becomes one small triangular solve:

* loop 1, ``a_i = rho_i s_i.(-g - sum_{j>i} a_j y_j)``:
  ``(I + diag(rho) triu(SY, 1)) a = -diag(rho) S g``, then ``q = -g - Y^T a``;
* loop 2, ``c_i = a_i - rho_i y_i.(r0 + sum_{j<i} c_j s_j)`` with ``r0 = h q``:
  ``(I + diag(rho) tril(SY^T, -1)) c = a - diag(rho) Y r0``, then ``r = r0 + S^T c``.

Both systems have a unit diagonal, so they are always solvable, and the
arithmetic is the recursion's own (forward/back substitution).
"""
from __future__ import annotations

from typing import Callable

import torch


class DeviceLBFGS:
    """L-BFGS on one tensor ``param`` (any shape); ``step(closure)`` is one iteration,
    one loss evaluation. ``closure`` zeroes the gradient, computes the loss, calls
    ``backward()`` and returns the loss."""

    def __init__(self, param: torch.Tensor, lr: float = 1.0, history_size: int = 50,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9):
        if history_size < 1:
            raise ValueError("history_size must be at least 1")
        self.param = param
        self.lr = float(lr)
        self.history_size = int(history_size)
        self.tolerance_grad = float(tolerance_grad)
        self.tolerance_change = float(tolerance_change)
        self.n_iter = 0
        self.count = 0          # pairs stored (host state; never depends on values)
        self.head = 0           # slot of the oldest pair once the ring is full
        self.S: torch.Tensor | None = None    # (m, N) steps s_i
        self.Y: torch.Tensor | None = None    # (m, N) gradient changes y_i
        self.SY: torch.Tensor | None = None   # (m, m) s_a . y_b by slot
        self.rho: torch.Tensor | None = None  # (m,) 1/(y.s), 0 for a rejected pair
        self.h_diag: torch.Tensor | None = None
        self.d: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.prev_grad: torch.Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if set_to_none:
            self.param.grad = None
        elif self.param.grad is not None:
            self.param.grad.zero_()

    def _order(self, device: torch.device) -> torch.Tensor:
        """Slots of the stored pairs, oldest first (computed on the device)."""
        m = self.history_size
        return (torch.arange(self.count, device=device) + self.head) % m

    def _store(self, s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor) -> None:
        m = self.history_size
        if self.S is None:
            n = s.numel()
            self.S = torch.zeros(m, n, device=s.device)
            self.Y = torch.zeros(m, n, device=s.device)
            self.SY = torch.zeros(m, m, device=s.device)
            self.rho = torch.zeros(m, device=s.device)
        if self.count < m:
            slot = self.count
            self.count += 1
        else:
            slot = self.head
            self.head = (self.head + 1) % m
        ok = ys > 1e-10
        self.S[slot] = s
        self.Y[slot] = y
        self.rho[slot] = torch.where(ok, 1.0 / ys, torch.zeros_like(ys))
        self.SY[slot, :] = self.Y @ s
        self.SY[:, slot] = self.S @ y
        self.h_diag = torch.where(ok, ys / torch.dot(y, y), self.h_diag)

    @torch.no_grad()
    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g: the two-loop recursion in matrix form (see the module notes)."""
        m, k = self.history_size, self.count
        idx = self._order(g.device)
        rho = self.rho[idx]
        sy = self.SY[idx][:, idx]                      # sy[i, j] = s_i . y_j, oldest first
        eye = torch.eye(k, device=g.device)

        def to_slots(v: torch.Tensor) -> torch.Tensor:
            return torch.zeros(m, device=g.device).index_copy_(0, idx, v)

        sg = (self.S @ g)[idx]
        a = torch.linalg.solve_triangular(eye + rho[:, None] * torch.triu(sy, 1),
                                          (-rho * sg)[:, None], upper=True).squeeze(1)
        r = (-g - self.Y.t() @ to_slots(a)).mul_(self.h_diag)
        yr = (self.Y @ r)[idx]
        c = torch.linalg.solve_triangular(eye + rho[:, None] * torch.tril(sy.t(), -1),
                                          (a - rho * yr)[:, None], upper=False).squeeze(1)
        return r.add_(self.S.t() @ to_slots(c))

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        # Full fp32 products: TF32 (when enabled for matmuls) would round the dot
        # products the curvature pairs depend on.
        precision = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            self._update()
        finally:
            torch.set_float32_matmul_precision(precision)
        return loss

    @torch.no_grad()
    def _update(self) -> None:
        g = self.param.grad.detach().reshape(-1).float()
        self.n_iter += 1
        if self.n_iter == 1:
            self.d = g.neg()
            self.h_diag = torch.ones((), device=g.device)
        else:
            y = g - self.prev_grad
            s = self.d * self.t
            self._store(s, y, torch.dot(y, s))
            self.d = self._direction(g)
        self.prev_grad = g.clone()
        if self.n_iter == 1:
            self.t = (1.0 / g.abs().sum()).clamp(max=1.0) * self.lr
        else:
            self.t = torch.full((), self.lr, device=g.device)
        move = (torch.dot(g, self.d) <= -self.tolerance_change) & (
            g.abs().max() > self.tolerance_grad)
        self.t = torch.where(move, self.t, torch.zeros_like(self.t))  # s of the next pair
        self.param.add_((self.d * self.t).view_as(self.param).to(self.param.dtype))
