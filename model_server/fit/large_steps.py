"""The Large Steps core (Nicolet et al. 2021, *Large Steps in Inverse Rendering*).

The optimised variable is ``u = (I + lam L) x`` with ``L`` the mesh's uniform graph
Laplacian; positions come back through ``solve(u, system)``, whose gradient is again a
solve with the same symmetric matrix, so every gradient step is smoothed over the
surface. ``UniformAdam`` scales all coordinates by one second moment, which keeps that
smoothing instead of undoing it per coordinate.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse
from scipy.sparse import linalg as splinalg

from model_server.geometry.mesh import laplacian

CG_ITERATIONS = 50
CG_TOLERANCE = 1e-5


class UniformAdam:
    """Adam with one second-moment scale for all coordinates (Nicolet et al.'s AdamUniform).

    Per-coordinate scaling would undo the smoothing that the u-parametrisation gives the
    gradient; a uniform scale keeps its direction. (Written here rather than taken from
    torch.optim, whose first use imports torch's compiler stack for seconds.)"""

    def __init__(self, parameter: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.parameter, self.lr, self.betas, self.eps = parameter, lr, betas, eps
        self.m = torch.zeros_like(parameter)
        self.v = torch.zeros_like(parameter)
        self.t = 0

    @torch.no_grad()
    def step(self) -> None:
        grad, (b1, b2) = self.parameter.grad, self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1.0 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
        m_hat = self.m / (1.0 - b1 ** self.t)
        scale = torch.sqrt(self.v.max() / (1.0 - b2 ** self.t))
        self.parameter.sub_(self.lr * m_hat / (scale + self.eps))


class _Solve(torch.autograd.Function):
    """x = A^-1 u for the symmetric positive definite smoothing system A (gradient: A^-1 g)."""

    @staticmethod
    def forward(ctx, u, system):
        ctx.system = system
        return system.solve(u, "forward")

    @staticmethod
    def backward(ctx, grad):
        return ctx.system.solve(grad, "backward"), None


def _conjugate_gradient(system: SmoothingSystem, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Jacobi-preconditioned CG on every column of ``b`` at once."""
    inverse_diagonal = 1.0 / system.diagonal
    r = b - system @ x
    z = r * inverse_diagonal[:, None]
    p = z.clone()
    rz = (r * z).sum(dim=0)
    threshold = (CG_TOLERANCE * b.norm(dim=0)) ** 2
    for _ in range(CG_ITERATIONS):
        if bool(((r * r).sum(dim=0) <= threshold).all()):
            break
        ap = system @ p
        alpha = rz / (p * ap).sum(dim=0).clamp_min(1e-30)
        x = x + alpha * p
        r = r - alpha * ap
        z = r * inverse_diagonal[:, None]
        rz_next = (r * z).sum(dim=0)
        p = z + (rz_next / rz.clamp_min(1e-30)) * p
        rz = rz_next
    return x


class SmoothingSystem:
    """Sparse I + lam L, with L = D - A the uniform graph Laplacian of the mesh's edges.

    ``solve`` factorises it once (sparse LU, SciPy) on the CPU, where a direct solve costs
    a few milliseconds; on a GPU it runs warm-started Jacobi-preconditioned conjugate
    gradients on the CSR matrix, which stays on the device."""

    def __init__(self, count: int, edges: np.ndarray, lam: float, device):
        matrix = (sparse.identity(count, format="csr") + lam * laplacian(count, edges)).tocsr()
        diagonal = matrix.diagonal()
        self.device, self.scipy_matrix = torch.device(device), matrix
        if self.device.type == "cpu":
            self.factor = splinalg.splu(matrix.tocsc(), permc_spec="COLAMD")
        else:
            self.matrix = torch.sparse_csr_tensor(
                torch.as_tensor(matrix.indptr, dtype=torch.long), torch.as_tensor(matrix.indices, dtype=torch.long),
                torch.as_tensor(matrix.data, dtype=torch.float32), (count, count),
                check_invariants=False).to(self.device)
            self.diagonal = torch.as_tensor(diagonal, dtype=torch.float32, device=self.device)
        self.guesses: dict[str, torch.Tensor] = {}

    def solve(self, b: torch.Tensor, slot: str) -> torch.Tensor:
        """A^-1 b for every column of ``b``. ``slot`` names a stream of related right-hand
        sides (forward positions, backward gradients) whose last answer warm-starts CG."""
        if self.device.type == "cpu":
            return torch.as_tensor(self.factor.solve(b.detach().double().numpy()), dtype=b.dtype)
        guess = self.guesses.get(slot)
        x = _conjugate_gradient(self, b.detach(), guess if guess is not None else torch.zeros_like(b))
        self.guesses[slot] = x
        return x

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cpu":
            return torch.as_tensor(self.scipy_matrix @ x.detach().double().numpy(), dtype=x.dtype)
        return self.matrix @ x


def solve(u: torch.Tensor, system: SmoothingSystem) -> torch.Tensor:
    """x = (I + lam L)^-1 u, differentiable in ``u``."""
    return _Solve.apply(u, system)
