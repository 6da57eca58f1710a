"""Guidance through the clean estimate: Tweedie's moments; DPS, PiGDM, TMPD, MMPS and energy guidance as wrappers.

Tweedie's formula turns any eps-model into a denoiser, x0_hat = E[x_0 | x_t] = (x_t - sqrt(1 - ab_t) eps) / sqrt(ab_t),
and the Jacobian of that denoiser is the posterior covariance up to a factor,
Cov[x_0 | x_t] = ((1 - ab_t) / sqrt(ab_t)) d x0_hat / d x_t. A likelihood of the *clean* data, p(y | x_0),
then guides a sampler through x0_hat, with no noise-aware predictor: the gradient of log p(y | x0_hat(x_t))
is the Jacobian's transpose applied to the clean gradient, one backward pass through the eps-network.
DPS (Chung et al. 2023) plugs x0_hat into the likelihood; MMPS (Rozet et al. 2024) also keeps the posterior
covariance, which makes it exact for a Gaussian prior and a linear-Gaussian likelihood. Between them, the
ladder of covariance closures of a linear-Gaussian observation, C_t = sigma_y^2 I + A Sigma_t A^T: DPS drops
A Sigma_t A^T, PiGDM (Song et al. 2023) takes Sigma_t = (1 - ab_t) I, TMPD (Boys et al. 2023) keeps the row
sums of A Sigma_t A^T on its diagonal, MMPS keeps all of it; one, one, two and dy backward passes per step.

The wrappers are :class:`tutorial_pkg.models.Wrapper` s, so they run in every sampler and stack with the
others. :func:`affine_sampler_moments` pushes a Gaussian through a sampler whose eps is affine in x_t (any
such wrapper around an exact Gaussian model) and gives the sampler's exact output moments.

Derived in chapter 9 (``book/09_guidance_through_x0``), eqs. ``tweedie-mean``, ``tweedie-jacobian``,
``clean-gradient``, ``dps``, ``mmps`` and ``energy-mmps``.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from . import _checks, guidance, models, sampling
from .schedules import NoiseSchedule

Tensor = torch.Tensor

__all__ = ["tweedie_vjp", "posterior_covariance", "DPSModel", "dps_model", "MMPSModel", "mmps_model",
           "energy_guided_model", "affine_sampler_moments", "PiGDMModel", "pigdm_model", "TMPDModel", "tmpd_model"]


def _schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def _callable(name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")


def tweedie_vjp(eps_model, x_t: Tensor, t, cond, schedule: NoiseSchedule):
    """Tweedie's x0_hat of an eps-model and the vector-Jacobian product of that denoiser. Chapter 9,
    eqs. (tweedie-mean) and (tweedie-jacobian).

    Returns ``(eps, x0_hat, vjp)``: ``eps`` and ``x0_hat`` ``(B, D)`` (detached), and ``vjp(v) = J^T v`` for
    ``v`` ``(B, D)``, with J = d x0_hat / d x_t per sample; each call is one backward pass through the model
    (the graph is kept, so ``vjp`` may be called again). Rows are independent, so one pass serves the batch.
    """
    _callable("eps_model", eps_model)
    _schedule(schedule)
    _checks.tensor("x_t", x_t, floating=True, finite=False)
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        eps = eps_model(x, t, cond)
        x0 = schedule.predict_x0(x, t, eps.to(x.dtype))

    def vjp(v: Tensor) -> Tensor:
        with torch.enable_grad():
            (g,) = torch.autograd.grad(x0, x, grad_outputs=v.to(x0.dtype), retain_graph=True)
        return g

    return eps.detach(), x0.detach(), vjp


def posterior_covariance(eps_model, x_t: Tensor, t, cond, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """Tweedie's mean and covariance of p(x_0 | x_t): ``(x0_hat (B, D), ((1 - ab_t) / sqrt(ab_t)) J (B, D, D))``,
    J symmetrised (exact denoisers have a symmetric J; a learned one nearly). Chapter 9, eq. (tweedie-jacobian).
    Costs D backward passes (one row of J each): for low-dimensional data, such as the chapter's checks."""
    _schedule(schedule)
    _, x0, vjp = tweedie_vjp(eps_model, x_t, t, cond, schedule)
    eye = torch.eye(x0.shape[1], dtype=x0.dtype, device=x0.device)
    J = torch.stack([vjp(eye[i].expand_as(x0)) for i in range(x0.shape[1])], dim=1)   # J[b, i, :] = row i
    ab = schedule.alpha_bar(t, x0)
    factor = ((1 - ab) / ab.sqrt()).reshape(-1, 1, 1) if ab.ndim else (1 - ab) / ab.sqrt()
    return x0, factor * 0.5 * (J + J.transpose(1, 2))


def _guide(eps: Tensor, grad: Tensor, t, schedule: NoiseSchedule, scale) -> Tensor:
    """eps - scale sqrt(1 - ab_t) grad: a likelihood score in eps form (chapter 3, eq. ``guided-eps``)."""
    dtype = _checks.compute_dtype(eps)
    eps, grad = eps.to(dtype), grad.to(dtype)
    scale = _checks.per_sample("scale", guidance._at(scale, t), eps)
    return eps - scale * (1 - schedule.alpha_bar(t, eps)).sqrt() * grad


class _ThroughX0(models.Wrapper):
    """What DPS, PiGDM, TMPD and MMPS share: the eps-model sees ``cond`` only with ``model_cond=True``, and then
    its null condition and its condition check are passed on; a scale (a number or a schedule ``scale(t)``, such as
    :func:`tutorial_pkg.guidance.guidance_interval` with ``outside=0``) that is 0 at a step skips the
    backward pass there."""

    def _setup(self, schedule, scale, model_cond) -> None:
        if not isinstance(model_cond, bool):
            raise TypeError(f"model_cond must be True or False, got {type(model_cond).__name__} {model_cond!r}")
        self.schedule, self.scale = _schedule(schedule), guidance._check_scale("scale", scale)
        self.model_cond = model_cond

    @property
    def null_value(self):
        return models.null_value(self.inner_model) if self.model_cond else None

    def check_condition(self, cond) -> None:
        """The eps-model checks the condition only if it sees it."""
        inner = getattr(self.inner_model, "check_condition", None)
        if self.model_cond and callable(inner):
            inner(cond)

    def _tweedie(self, x_t: Tensor, t, cond, what: str):
        """``(eps, x0_hat, vjp)`` of :func:`tweedie_vjp` at a guided step; ``(eps, None, None)`` where the scale at
        ``t`` is 0, with no graph recorded. ``cond`` (``what`` names it in the error) must be given."""
        if cond is None:
            raise ValueError(f"cond must be given: {what}")
        model_cond = cond if self.model_cond else None
        scale = guidance._at(self.scale, t)
        if not isinstance(scale, Tensor) and scale == 0:
            with torch.no_grad():
                return self.inner_model(x_t, t, model_cond), None, None
        return tweedie_vjp(self.inner_model, x_t, t, model_cond, self.schedule)


class DPSModel(_ThroughX0):
    """Diffusion posterior sampling (Chung et al. 2023) in eps form: the clean log-likelihood at x0_hat.

    ``eps - scale sqrt(1 - ab_t) J^T grad_{x_0} log p(y | x_0)|_{x0_hat}``, chapter 9, eqs. (clean-gradient) and
    (dps). ``log_likelihood(x0, cond) -> (B,)`` is the log-likelihood of the clean data, differentiable in x0
    ``(B, D)``; ``cond`` (the observation y, a target energy, ...) is passed to it. The paper's step size
    zeta_t = zeta' / ||y - A x0_hat|| is not applied: ``scale = 1`` takes the likelihood at face value. The
    eps-model sees ``cond`` only with ``model_cond=True`` (otherwise ``None``: its unconditional branch).
    Cost per step: one forward and one backward pass of the eps-model.
    """

    def __init__(self, eps_model, log_likelihood: Callable[[Tensor, Tensor], Tensor], schedule: NoiseSchedule, *,
                 scale: guidance.Scale = 1.0, model_cond: bool = False):
        super().__init__(eps_model, name="eps_model")
        _callable("log_likelihood", log_likelihood)
        self.log_likelihood = log_likelihood
        self._setup(schedule, scale, model_cond)

    def __repr__(self) -> str:
        return f"DPSModel(scale={self.scale!r}, model_cond={self.model_cond})"

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        eps, x0, vjp = self._tweedie(x_t, t, cond, "the observation that the likelihood scores")
        if x0 is None:
            return eps
        with torch.enable_grad():
            x0 = x0.requires_grad_(True)
            (g0,) = torch.autograd.grad(self.log_likelihood(x0, cond).sum(), x0)   # grad of the clean likelihood
        return _guide(eps, vjp(g0), t, self.schedule, self.scale)                 # J^T g0, eq. (clean-gradient)


def dps_model(eps_model, log_likelihood, schedule: NoiseSchedule, *, scale: guidance.Scale = 1.0,
              model_cond: bool = False) -> DPSModel:
    """Wrap ``eps_model`` with DPS guidance by a clean ``log_likelihood(x0, cond)``; see :class:`DPSModel`."""
    return DPSModel(eps_model, log_likelihood, schedule, scale=scale, model_cond=model_cond)


def _column(v: Tensor) -> Tensor:
    """A per-sample value ``(B,)`` or ``(B, 1)`` as a column ``(B, 1)``; a 0-d value as it is."""
    return v.reshape(-1, 1) if v.ndim else v


def _psd_solve(M: Tensor, weight, sigma_y: float, r: Tensor) -> Tensor:
    """``(sigma_y^2 I + weight M)^{-1} r`` per sample, M ``(B, dy, dy)`` by its symmetric part, with its
    eigenvalues clipped at 0 from below (a learned Jacobian may give slightly negative ones), r ``(B, dy)``."""
    lam, U = torch.linalg.eigh(0.5 * (M + M.transpose(1, 2)))
    C_lam = sigma_y ** 2 + weight * lam.clamp(min=0)
    return torch.einsum("bij,bj->bi", U, torch.einsum("bji,bj->bi", U, r) / C_lam)


class _LinearGaussian(_ThroughX0):
    """What PiGDM, TMPD and MMPS share: y = f(x_0) + N(0, sigma_y^2 I) with p(y | x_t) approximated by
    N(y; f(x0_hat), C_t), C_t = sigma_y^2 I + F Sigma_t F^T, and the step (chapter 9, eqs. (clean-gradient) and
    (mmps)) eps - scale sqrt(1 - ab_t) J^T F^T C_t^{-1} (y - f(x0_hat)). The rungs of the ladder differ only in
    Sigma_t ~ Cov[x_0 | x_t] and in how C_t is solved: :meth:`_gradient`.

    ``observe`` is a matrix A ``(dy, D)`` (y = A x_0 + n) or a callable ``f(x0) -> (B, dy)`` or ``(B,)``,
    linearised at x0_hat (F its Jacobian there, found by autograd through ``f`` alone, not through the
    eps-model). ``cond`` is y, ``(B, dy)`` (or ``(B,)`` when dy = 1).
    """

    def __init__(self, eps_model, observe, sigma_y: float, schedule: NoiseSchedule, *, scale: guidance.Scale = 1.0,
                 model_cond: bool = False):
        super().__init__(eps_model, name="eps_model")
        if isinstance(observe, Tensor):
            _checks.tensor("observe", observe, ndim=2, floating=True)
            A = observe
            observe = lambda x0, A=A: x0 @ A.to(device=x0.device, dtype=x0.dtype).T
        _callable("observe", observe)
        self.observe, self.sigma_y = observe, _checks.real("sigma_y", sigma_y, low=0.0, low_open=True)
        self._setup(schedule, scale, model_cond)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(sigma_y={self.sigma_y}, scale={self.scale!r}, model_cond={self.model_cond})"

    def _gradient(self, F: Tensor, r: Tensor, vjp, ab: Tensor) -> Tensor:
        """J^T F^T C_t^{-1} r ``(B, D)`` for F ``(B, dy, D)``, the residual r = y - f(x0_hat) ``(B, dy)``, the
        denoiser's ``vjp`` and ab_t (a column or 0-d)."""
        raise NotImplementedError

    def __call__(self, x_t: Tensor, t, cond) -> Tensor:
        eps, x0, vjp = self._tweedie(x_t, t, cond, "the observation y")
        if x0 is None:
            return eps
        with torch.enable_grad():
            x0 = x0.requires_grad_(True)
            f = self.observe(x0)
            f = f[:, None] if f.ndim == 1 else f                                      # (B, dy)
            F = torch.stack([torch.autograd.grad(f[:, i].sum(), x0, retain_graph=True)[0]
                             for i in range(f.shape[1])], dim=1)                      # (B, dy, D)
        f = f.detach().to(F.dtype)                      # an energy computed in another dtype joins x0's
        y = torch.as_tensor(cond, device=f.device, dtype=f.dtype)
        y = y.reshape(f.shape[0], -1) if y.ndim else y.expand(f.shape[0]).reshape(-1, 1)
        grad = self._gradient(F, y - f, vjp, _column(self.schedule.alpha_bar(t, f)))
        return _guide(eps, grad, t, self.schedule, self.scale)


class PiGDMModel(_LinearGaussian):
    """Pseudoinverse-guided diffusion (PiGDM, Song et al. 2023): Cov[x_0 | x_t] replaced by r_t^2 I.

    Chapter 9, the first rung of the ladder of covariance closures: p(y | x_t) ~ N(y; A x0_hat, C_t) with
    C_t = sigma_y^2 I + r_t^2 A A^T and r_t^2 = 1 - ab_t, the posterior variance of x_0 given x_t under a prior
    N(0, I) (the paper's r_t^2 = sigma_t^2 / (1 + sigma_t^2) in its variance-exploding time, sigma_t^2 =
    (1 - ab_t) / ab_t; azula's sigma_t^2 of a variance-preserving schedule). The step is
    eps - scale sqrt(1 - ab_t) J^T A^T (sigma_y^2 I + (1 - ab_t) A A^T)^{-1} (y - A x0_hat).
    Exact for a Gaussian prior with covariance I (any mean) and a linear A. ``observe``, ``sigma_y`` and
    ``cond`` as in :class:`MMPSModel` (a callable f uses its Jacobian F for A). ``scale = 1`` takes this
    likelihood at face value; the paper's (and azula's ``PGDMSampler``'s) noiseless weight sqrt(ab_{t-1} ab_t)
    on the DDIM update is not applied. Cost per step: one forward and one backward pass of the eps-model.
    """

    def _gradient(self, F, r, vjp, ab):
        FFt = torch.einsum("bid,bjd->bij", F, F)
        return vjp(torch.einsum("bid,bi->bd", F, _psd_solve(FFt, 1 - ab, self.sigma_y, r)))


class TMPDModel(_LinearGaussian):
    """Tweedie moment projected diffusion (TMPD, Boys et al. 2023): A Sigma_t A^T replaced by its row sums.

    Chapter 9, the rung between PiGDM and MMPS: Sigma_t = ((1 - ab_t) / sqrt(ab_t)) J is Tweedie's covariance,
    but C_t = sigma_y^2 I + diag(A Sigma_t A^T 1), the row sums of A Sigma_t A^T on the diagonal (the
    paper's computationally efficient form, the authors' code and azula's ``TMPDenoiser``): one
    vector-Jacobian product, J^T A^T 1, builds C_t, where MMPS spends dy. The step is
    eps - scale sqrt(1 - ab_t) J^T A^T diag(sigma_y^2 + ((1 - ab_t) / sqrt(ab_t)) A J^T A^T 1)^{-1} (y - A x0_hat);
    the row sums are clipped at 0 from below (azula does not clip), so C_t >= sigma_y^2. Exact for a Gaussian
    prior and a linear A whenever A Sigma_t A^T is diagonal at every t, e.g. a diagonal prior covariance and
    rows of A on disjoint coordinates (a mask), or a prior covariance c I and orthogonal rows. ``observe``,
    ``sigma_y`` and ``cond`` as in :class:`MMPSModel`. Cost per step: one forward and two backward passes of
    the eps-model.
    """

    def _gradient(self, F, r, vjp, ab):
        row_sums = torch.einsum("bid,bd->bi", F, vjp(F.sum(1)))                    # A J^T A^T 1
        C = self.sigma_y ** 2 + (1 - ab) / ab.sqrt() * row_sums.clamp(min=0)
        return vjp(torch.einsum("bid,bi->bd", F, r / C))


class MMPSModel(_LinearGaussian):
    """Moment-matching posterior sampling (Rozet et al. 2024): p(y | x_t) ~ N(y; f(x0_hat), sigma_y^2 I + F Sigma F^T).

    ``observe`` is a matrix A ``(dy, D)`` (y = A x_0 + n) or a callable ``f(x0) -> (B, dy)`` or ``(B,)``, linearised
    at x0_hat (F its Jacobian there); Sigma = Cov[x_0 | x_t] from the denoiser's Jacobian, treated as constant in
    x_t, as in the paper. Chapter 9, eq. (mmps): eps - scale sqrt(1 - ab_t) J^T F^T C^{-1} (y - f(x0_hat)), with
    C = sigma_y^2 I + ((1 - ab_t) / sqrt(ab_t)) F J F^T (its symmetric part, clipped at 0 from below). Exact for a
    Gaussian prior and a linear A. ``cond`` is y, ``(B, dy)`` (or ``(B,)`` when dy = 1). Cost per step: one
    forward and dy backward passes of the eps-model (the paper solves C v = r by conjugate gradients instead).
    """

    def _gradient(self, F, r, vjp, ab):
        W = torch.stack([vjp(F[:, i]) for i in range(F.shape[1])], dim=1)          # J^T F_i^T, (B, dy, D)
        FJF = torch.einsum("bid,bjd->bij", F, W)                                    # F J F^T
        return torch.einsum("bid,bi->bd", W, _psd_solve(FJF, (1 - ab) / ab.sqrt(), self.sigma_y, r))


def pigdm_model(eps_model, observe, sigma_y: float, schedule: NoiseSchedule, *, scale: guidance.Scale = 1.0,
                model_cond: bool = False) -> PiGDMModel:
    """Wrap ``eps_model`` with PiGDM guidance for y = f(x_0) + N(0, sigma_y^2 I); see :class:`PiGDMModel`."""
    return PiGDMModel(eps_model, observe, sigma_y, schedule, scale=scale, model_cond=model_cond)


def tmpd_model(eps_model, observe, sigma_y: float, schedule: NoiseSchedule, *, scale: guidance.Scale = 1.0,
               model_cond: bool = False) -> TMPDModel:
    """Wrap ``eps_model`` with TMPD guidance for y = f(x_0) + N(0, sigma_y^2 I); see :class:`TMPDModel`."""
    return TMPDModel(eps_model, observe, sigma_y, schedule, scale=scale, model_cond=model_cond)


def mmps_model(eps_model, observe, sigma_y: float, schedule: NoiseSchedule, *, scale: guidance.Scale = 1.0,
               model_cond: bool = False) -> MMPSModel:
    """Wrap ``eps_model`` with MMPS guidance for y = f(x_0) + N(0, sigma_y^2 I); see :class:`MMPSModel`."""
    return MMPSModel(eps_model, observe, sigma_y, schedule, scale=scale, model_cond=model_cond)


def energy_guided_model(eps_model, energy: Callable[[Tensor], Tensor], schedule: NoiseSchedule, tau: float, *,
                        covariance: bool = True, scale: guidance.Scale = 1.0, model_cond: bool = False) -> models.Wrapper:
    """Guidance by an energy function itself, through x0_hat, with no trained predictor. Chapter 9, eqs.
    (energy-band) and (energy-mmps).

    The clean likelihood is the energy band p(E* | x_0) = N(E*; V(x_0), tau^2): a sample is wanted whose
    energy lies within about ``tau`` of the target E*. The returned wrapper is an eps-model for every sampler,
    ``model(x_t, t, cond) -> eps`` ``(B, D)``, with ``cond`` the targets E* ``(B,)`` (a number is broadcast).

    Args:
        eps_model: the unconditional eps-model (it sees ``cond=None``; ``model_cond=True`` passes E* to it).
        energy: V, a callable ``(B, D) -> (B,)`` in the eps-model's coordinates (compose the inverse of any
            standardisation yourself), differentiable by autograd: a ``torch.autograd.Function`` whose backward
            returns minus the forces of an external force field will do. It may compute in another dtype.
        schedule: the schedule the eps-model was trained with.
        tau: the band's width, > 0, in the units of V.
        covariance: ``True`` (MMPS, Rozet et al. 2024): the band's variance is tau^2 + grad V^T Sigma grad V,
            with Sigma = Cov[x_0 | x_t] from the denoiser's Jacobian (chapter 6's Var[E | x_t], to first
            order), held constant in x_t. ``False`` (DPS, Chung et al. 2023): tau^2 alone.
        scale: multiplies the likelihood's score (1 takes it at face value): a number, or a schedule such as
            ``guidance.guidance_interval(1.0, 0, t_max, outside=0.0)``, which guides only at the steps where
            the network's Tweedie covariance can be trusted and skips the backward pass elsewhere (chapter 9).
        model_cond: pass E* to the eps-model as its condition (default: its unconditional branch).

    The step is eps - scale sqrt(1 - ab_t) J^T grad V (E* - V(x0_hat)) / s^2, with s^2 the band's variance.
    Cost per step: one forward and one backward pass of the eps-model, and one of V (both methods).
    """
    _callable("energy", energy)
    tau = _checks.real("tau", tau, low=0.0, low_open=True)
    if not isinstance(covariance, bool):
        raise TypeError(f"covariance must be True or False, got {type(covariance).__name__} {covariance!r}")
    if covariance:
        return MMPSModel(eps_model, energy, tau, schedule, scale=scale, model_cond=model_cond)
    band = lambda x0, E: -0.5 * ((torch.as_tensor(E, device=x0.device) - energy(x0)) / tau) ** 2
    return DPSModel(eps_model, band, schedule, scale=scale, model_cond=model_cond)


@torch.no_grad()
def affine_sampler_moments(eps_model, schedule: NoiseSchedule, dim: int, *, cond=None, sampler: str = "ddpm",
                           variance: str = "small", num_steps: Optional[int] = None, timesteps=None,
                           spacing: str = "leading", eta: float = 0.0, init_mean=0.0,
                           init_cov=1.0) -> tuple[Tensor, Tensor]:
    """The exact output mean ``(D,)`` and covariance ``(D, D)`` of a DDPM or DDIM sampler whose eps is affine in
    x_t, eps(x) = a_t x + c_t: any guidance here around an exact Gaussian model. Chapter 9; chapter 8, eq.
    (affine-recursion), in D dimensions: M' = A M + B, V' = A V A^T + std^2 I, A = c_x I + c_eps a_t, B = c_eps c_t.

    a_t and c_t are read off the model at every step, at x = 0 and at the unit vectors, in float64 on the CPU;
    a third point checks that the model is affine (``ValueError`` if not). ``cond`` is the condition of one
    sample (a number or a tensor of its trailing shape), repeated for these rows. The steps are the samplers'
    (:func:`tutorial_pkg.sampling.sampler_steps`); the step maps are theirs.
    """
    _callable("eps_model", eps_model)
    dim = _checks.integer("dim", dim, low=1)
    _checks.choice("variance", variance, sampling.VARIANCES)
    steps = sampling.sampler_steps(_schedule(schedule), sampler=sampler, num_steps=num_steps, timesteps=timesteps,
                                   spacing=spacing)
    eye = torch.eye(dim, dtype=torch.float64)
    probe = torch.linspace(-1.3, 0.7, dim, dtype=torch.float64)
    points = torch.cat([torch.zeros(1, dim, dtype=torch.float64), eye, probe[None]])        # (D + 2, D)
    rows = None if cond is None else torch.as_tensor(cond).expand(len(points), *torch.as_tensor(cond).shape)
    M = torch.zeros(dim, dtype=torch.float64) + torch.as_tensor(init_mean, dtype=torch.float64)
    V = eye * torch.as_tensor(init_cov, dtype=torch.float64) if torch.as_tensor(init_cov).ndim < 2 else \
        torch.as_tensor(init_cov, dtype=torch.float64)
    for t, t_prev in steps:
        c_x, c_eps, std = (sampling.ddpm_coefficients(schedule, t, variance) if sampler == "ddpm"
                           else sampling.ddim_coefficients(schedule, t, t_prev, eta))
        eps = eps_model(points, t, rows).to(torch.float64)
        c, a = eps[0], (eps[1:dim + 1] - eps[0]).T                                   # eps(x) = a x + c
        if not torch.allclose(a @ probe + c, eps[-1], rtol=1e-7, atol=1e-9 * (1 + eps.abs().max())):
            raise ValueError(f"eps_model is not affine in x_t at t={t}: its exact sampler moments are not Gaussian")
        A = c_x * eye + c_eps * a
        M, V = A @ M + c_eps * c, A @ V @ A.T + std ** 2 * eye
    return M, 0.5 * (V + V.T)
