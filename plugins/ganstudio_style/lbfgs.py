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
        self.old_dirs: list[torch.Tensor] = []   # y_i = g_{i+1} - g_i
        self.old_stps: list[torch.Tensor] = []   # s_i = t_i d_i
        self.ro: list[torch.Tensor] = []         # 1 / (y_i . s_i), or 0 for a rejected pair
        self.h_diag: torch.Tensor | None = None
        self.d: torch.Tensor | None = None
        self.t: torch.Tensor | None = None
        self.prev_grad: torch.Tensor | None = None

    def zero_grad(self, set_to_none: bool = True) -> None:
        if set_to_none:
            self.param.grad = None
        elif self.param.grad is not None:
            self.param.grad.zero_()

    @torch.no_grad()
    def _direction(self, g: torch.Tensor) -> torch.Tensor:
        """-H g by the two-loop recursion (every scalar stays on the device)."""
        q = g.neg()
        al: list[torch.Tensor] = [None] * len(self.old_dirs)  # type: ignore[list-item]
        for i in range(len(self.old_dirs) - 1, -1, -1):
            al[i] = torch.dot(self.old_stps[i], q) * self.ro[i]
            q.sub_(self.old_dirs[i] * al[i])
        r = q.mul_(self.h_diag)
        for i in range(len(self.old_dirs)):
            be_i = torch.dot(self.old_dirs[i], r) * self.ro[i]
            r.add_(self.old_stps[i] * (al[i] - be_i))
        return r

    def step(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            g = self.param.grad.detach().reshape(-1).float()
            self.n_iter += 1
            if self.n_iter == 1:
                self.d = g.neg()
                self.h_diag = torch.ones((), device=g.device)
            else:
                y = g - self.prev_grad
                s = self.d * self.t
                ys = torch.dot(y, s)
                ok = ys > 1e-10
                if len(self.old_dirs) == self.history_size:
                    self.old_dirs.pop(0)
                    self.old_stps.pop(0)
                    self.ro.pop(0)
                self.old_dirs.append(y)
                self.old_stps.append(s)
                self.ro.append(torch.where(ok, 1.0 / ys, torch.zeros_like(ys)))
                self.h_diag = torch.where(ok, ys / torch.dot(y, y), self.h_diag)
                self.d = self._direction(g)
            self.prev_grad = g.clone()
            if self.n_iter == 1:
                self.t = (1.0 / g.abs().sum()).clamp(max=1.0) * self.lr
            else:
                self.t = torch.full((), self.lr, device=g.device)
            move = (torch.dot(g, self.d) <= -self.tolerance_change) & (
                g.abs().max() > self.tolerance_grad)
            step = torch.where(move, self.t, torch.zeros_like(self.t))
            self.t = step  # the next pair's s is the move actually made
            self.param.add_((self.d * step).view_as(self.param).to(self.param.dtype))
        return loss
