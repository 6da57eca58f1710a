"""Sequential Monte Carlo for the guided target: K weighted particles that sample p(x | c)^gamma p(x)^(1 - gamma).

A guided sampler (CFG, or classifier guidance on an unconditional model) follows the guided score through every
noise level, and chapter 8 showed that it does not sample the tilted target. The Feynman-Kac corrector of
Skreta et al. (2025) keeps the guided sampler as the *proposal* and corrects it with weights: each particle
carries a log-weight, which grows at every step by gamma (gamma - 1) beta_t ||eps_c - eps_u||^2 / (2 (1 - ab_t)),
a number that the guided step computes anyway. When the weights become uneven (the effective sample size falls
below a threshold) the particles are resampled, systematically, as in the twisted diffusion sampler of
Wu et al. (2023). The weighted particles estimate the tilted target, exactly as K grows and the steps shrink.

The loop reads no value on the host: the resampling decision is a tensor, and the effective sample size of
every step is read once, at the end.

Derived in chapter 10 (``book/10_sampling_the_guided_target``), equations ``fkc-weight``, ``ess`` and
``systematic``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import torch
from tqdm.auto import tqdm

from . import _checks, guidance, models, sampling
from .schedules import NoiseSchedule

Tensor = torch.Tensor

__all__ = ["SMCResult", "guidance_terms", "log_weight_factor", "effective_sample_size", "systematic_resample",
           "smc_sample"]


class SMCResult(NamedTuple):
    """What :func:`smc_sample` returns, for G systems of K particles.

    ``particles`` ``(G K, ...)``; ``log_weights`` ``(G K,)``, normalised within each system (their exponentials
    sum to 1 over its K particles); ``ess`` ``(steps, G)``, the effective sample size after each step's
    reweighting, before any resampling; ``resampled`` ``(steps, G)`` bool, when each system resampled;
    ``timesteps``, the package steps t visited.
    """

    particles: Tensor
    log_weights: Tensor
    ess: Tensor
    resampled: Tensor
    timesteps: list

    @property
    def weights(self) -> Tensor:
        """The normalised weights, ``(G K,)``: each system's sum to 1."""
        return self.log_weights.exp()

    @property
    def num_resampled(self) -> int:
        """How many times a system resampled its particles, over all steps and systems."""
        return int(self.resampled.sum())

    def moments(self) -> tuple[Tensor, Tensor]:
        """The weighted mean and variance of each system, eq. (smc-estimator): two tensors ``(G, ...)``."""
        G = self.ess.shape[1]
        x = self.particles.reshape(G, -1, *self.particles.shape[1:])
        w = self.weights.reshape(G, -1, *[1] * (self.particles.ndim - 1)).to(x.dtype)
        mean = (w * x).sum(1)
        return mean, (w * (x - mean[:, None]) ** 2).sum(1)


# -- what the weights need from the guided model -----------------------------------------------------
def _strength(guided_model) -> float:
    """The constant gamma of a CFG wrapper or the constant scale of an eps-form classifier-guided wrapper."""
    if isinstance(guided_model, guidance.CFGModel):
        gamma, name = guided_model.gamma, "gamma"
        if guided_model.rescale != 0:
            raise ValueError(f"guided_model has rescale={guided_model.rescale}: the weights need plain CFG (rescale=0)")
    elif isinstance(guided_model, guidance.ClassifierGuidedModel):
        gamma, name = guided_model.scale, "scale"
        if guided_model.form != "eps":
            raise ValueError(f"guided_model has form={guided_model.form!r}: the weights need form='eps'")
    else:
        raise TypeError("guided_model must be a guidance.CFGModel or guidance.ClassifierGuidedModel, "
                        f"got {type(guided_model).__name__}")
    if callable(gamma) or isinstance(gamma, Tensor):
        raise ValueError(f"guided_model's {name} must be one number for the whole run, got {gamma!r}: "
                         "the weights of eq. (fkc-weight) hold for a constant strength")
    return float(gamma)


def _terms(guided_model, x_t: Tensor, t: int, cond) -> tuple[Tensor, Tensor]:
    if isinstance(guided_model, guidance.CFGModel):          # both branches in one batched pass, as CFG does
        eps = guided_model.inner_model(torch.cat([x_t, x_t]), t, torch.cat([cond, guided_model._null_rows(cond)]))
        eps_c, eps_u = guidance._f32(eps).chunk(2)
        return guidance.cfg(eps_c, eps_u, guided_model.gamma), eps_c - eps_u
    model_cond = cond if guided_model.model_cond else None   # classifier guidance: eps_c - eps_u from the gradient
    eps_u = guidance._f32(guided_model.inner_model(x_t, t, model_cond))
    grad = guidance.grad_log_likelihood(guided_model.predictor, x_t, t, cond)
    eps_diff = guidance.classifier_guided_eps(eps_u, grad, guided_model.schedule.value("alpha_bars", t), 1.0) - eps_u
    return eps_u + guided_model.scale * eps_diff, eps_diff


def guidance_terms(guided_model, x_t: Tensor, t: int, cond) -> tuple[Tensor, Tensor]:
    """The guided eps and the difference eps_c - eps_u that the weights need, at one step. Chapter 10, eq. (fkc-weight).

    ``guided_model`` is a :class:`~tutorial_pkg.guidance.CFGModel` (eps_u + gamma (eps_c - eps_u), both branches
    in one batched pass) or an eps-form :class:`~tutorial_pkg.guidance.ClassifierGuidedModel` (eps - s sqrt(1 - ab)
    grad log p(c | x_t), so eps_c - eps_u = -sqrt(1 - ab) grad log p(c | x_t)). Shapes: ``x_t`` ``(B, ...)``,
    ``cond`` ``(B, ...)``; returns two tensors shaped like ``x_t``. The guided eps equals the wrapper's own call.
    """
    _strength(guided_model)
    _checks.tensor("x_t", x_t, floating=True)
    t = guided_model.schedule.check_t(t) if isinstance(guided_model, guidance.ClassifierGuidedModel) else \
        _checks.integer("t", t, low=0)
    return _terms(guided_model, x_t, t, guidance._condition_tensor(cond, x_t))


def log_weight_factor(schedule: NoiseSchedule, t: int, gamma: float, *, t_prev: Optional[int] = None) -> float:
    """k_t of eq. (fkc-weight), the log-weight increment per unit of ||eps_c - eps_u||^2 for the step t -> t_prev.

    k_t = gamma (gamma - 1) beta / (2 (1 - ab_t)) with beta = 1 - ab_t / ab_prev (beta_t for ``t_prev = t - 1``,
    the default); ab_{-1} = 1. It is the Euler discretisation of d log w = (1/2) gamma (gamma - 1) g^2
    ||grad log p_t(x | c) - grad log p_t(x)||^2 dtau of Skreta et al. (2025). Chapter 10.
    """
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    ab = schedule.value("alpha_bars", t)
    t_prev = t - 1 if t_prev is None else _checks.integer("t_prev", t_prev, low=-1, high=t - 1)
    gamma = _checks.real("gamma", gamma, low=0.0)
    ab_prev = schedule.value("alpha_bars", t_prev) if t_prev >= 0 else 1.0
    return gamma * (gamma - 1.0) * (1.0 - ab / ab_prev) / (2.0 * (1.0 - ab))


# -- weights and resampling ------------------------------------------------------------------------------
def _log_weights(log_weights) -> None:
    """Log-weights ``(K,)`` or ``(G, K)``: -inf is a zero weight and welcome; NaN and +inf are refused, and so
    is a system whose weights are all zero."""
    _checks.tensor("log_weights", log_weights, ndim=(1, 2), floating=True, finite=False)
    if log_weights.device.type == "meta":
        return
    if bool(torch.isnan(log_weights).any()) or bool((log_weights == float("inf")).any()):
        raise ValueError("log_weights holds NaN or +inf; a zero weight is written as -inf")
    if bool((log_weights == float("-inf")).all(-1).any()):
        raise ValueError("log_weights gives a particle system whose weights are all zero (every log-weight -inf)")


def _ess(log_w: Tensor) -> Tensor:
    return (2 * log_w.logsumexp(-1) - (2 * log_w).logsumexp(-1)).exp()


def effective_sample_size(log_weights: Tensor) -> Tensor:
    """Kong's effective sample size (sum w)^2 / sum w^2 of K log-weights, eq. (ess): a number in [1, K].

    ``log_weights`` ``(K,)`` (returns a 0-d tensor) or ``(G, K)`` for G particle systems (returns ``(G,)``).
    """
    _log_weights(log_weights)
    return _ess(log_weights)


def _systematic(log_w: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    K = log_w.shape[-1]
    cdf = torch.softmax(log_w, -1).cumsum(-1)
    u = (torch.rand((*log_w.shape[:-1], 1), generator=generator, device=log_w.device, dtype=log_w.dtype)
         + torch.arange(K, device=log_w.device, dtype=log_w.dtype)) / K
    return torch.searchsorted(cdf, u).clamp(max=K - 1)


def systematic_resample(log_weights: Tensor, *, generator: Optional[torch.Generator] = None) -> Tensor:
    """Systematic resampling, eq. (systematic): K indices, particle i copied N_i times with E[N_i] = K w_i.

    One uniform u ~ U[0, 1) places the K points (u + j) / K on the cumulative weights, so each N_i is the floor or
    the ceiling of K w_i. ``log_weights`` ``(K,)`` or ``(G, K)`` (one uniform per system), normalised or not;
    returns long indices of the same shape, each row indexing its own system. Chapter 10.
    """
    _log_weights(log_weights)
    _checks.generator("generator", generator, log_weights.device)
    return _systematic(log_weights, generator)


# -- the sampler ---------------------------------------------------------------------------------------
@torch.no_grad()
def smc_sample(guided_model, shape: Sequence[int], schedule: NoiseSchedule, *, cond, groups: int = 1,
               ess_threshold: float = 0.5, num_steps: Optional[int] = None, timesteps: Optional[Sequence[int]] = None,
               spacing: str = "leading", generator: Optional[torch.Generator] = None, device=None,
               dtype: torch.dtype = torch.float32, x_T: Optional[Tensor] = None, progress: bool = False) -> SMCResult:
    """Feynman-Kac-corrected guided sampling (Skreta et al. 2025, with the ESS-triggered resampling of the twisted
    diffusion sampler, Wu et al. 2023): particles of the tilted target p(x | c)^gamma p(x)^(1 - gamma).

    ``shape = (G K, ...)`` holds ``groups = G`` independent systems of K particles (rows g K .. g K + K - 1), each
    with its own weights, resampling and condition: G replicates, or G conditions, in one batched run. Each step
    proposes with the guided model (DDPM "small" on every step, or DDIM eta = 1 on ``num_steps`` / ``timesteps``,
    as :func:`tutorial_pkg.sampling.sampler_steps`), adds k_t ||eps_c - eps_u||^2 to each log-weight (eq.
    ``fkc-weight``, :func:`log_weight_factor`) and resamples a system systematically when its effective sample
    size falls below ``ess_threshold * K`` (0: never, 1: every step). ``guided_model``: a CFG or eps-form
    classifier-guided wrapper with one constant strength; ``cond``: a number, or a ``(G K, ...)`` tensor whose rows
    are equal within each system. The start N(0, I) is taken as the target at the first step (its weight is ~1
    for a schedule that ends near ab = 0). Returns an :class:`SMCResult` (``ess`` and ``resampled`` of shape
    ``(steps, G)``); estimate with the weights, e.g. ``(result.weights[:, None] * result.particles).sum(0)`` for
    G = 1. Chapter 10, eq. (smc-estimator).
    """
    gamma = _strength(guided_model)
    ess_threshold = _checks.real("ess_threshold", ess_threshold, low=0.0, high=1.0)
    if not isinstance(shape, Sequence) or len(shape) < 1 or not all(isinstance(s, int) and s > 0 for s in shape):
        raise ValueError(f"shape must be a sequence of positive ints (G K, ...), got {shape!r}")
    G = _checks.integer("groups", groups, low=1)
    if shape[0] % G:
        raise ValueError(f"groups={G} must divide the number of particles shape[0]={shape[0]}")
    if timesteps is None and num_steps is None:
        timesteps = list(range(_check_schedule(schedule).T - 1, -1, -1))
    steps = sampling.sampler_steps(schedule, sampler="ddim", num_steps=num_steps, timesteps=timesteps,
                                   spacing=spacing)
    device = sampling._device(device, x_T)
    cond = _one_condition_per_group(cond, shape[0], G, device)
    x = sampling._start(guided_model, shape, schedule, cond, generator, device, dtype, x_T, "ddim")
    coefficients = [sampling.ddim_coefficients(schedule, t, t_prev, 1.0) for t, t_prev in steps]
    factors = [log_weight_factor(schedule, t, gamma, t_prev=t_prev) for t, t_prev in steps]
    K = shape[0] // G
    log_w = torch.full((G, K), -math.log(K), device=device, dtype=_checks.compute_dtype(x))
    keep = torch.arange(K, device=device).expand(G, K)
    offset = K * torch.arange(G, device=device)[:, None]              # row of particle 0 of each system
    ess, resampled, guard = [], [], sampling._Guard("smc_sample", x)
    for (t, _), (c_x, c_eps, sigma), k in tqdm(list(zip(steps, coefficients, factors)), desc="SMC",
                                               disable=not progress, leave=False):
        eps, eps_diff = _terms(guided_model, x, t, cond)             # the proposal's eps, and eps_c - eps_u
        log_w = log_w + k * eps_diff.pow(2).flatten(1).sum(1).view(G, K)          # eq. (fkc-weight)
        log_w = log_w - log_w.logsumexp(1, keepdim=True)
        x_next = c_x * x + c_eps * eps                               # the guided proposal, DDIM eta = 1
        if sigma > 0:
            x_next = x_next + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next = x_next if x_next.dtype == x.dtype else x_next.to(x.dtype)
        guard.step(t, eps, x_next)
        ess.append(_ess(log_w))                                      # eq. (ess), one per system
        resample = (ess[-1] < ess_threshold * K)[:, None]            # a system resamples its moved particles
        index = (torch.where(resample, _systematic(log_w, generator), keep) + offset).flatten()  # eq. (systematic)
        x = x_next[index]
        log_w = torch.where(resample, torch.full_like(log_w, -math.log(K)), log_w)
        resampled.append(resample[:, 0])
    guard.check()
    return SMCResult(x, log_w.flatten(), torch.stack(ess).cpu(), torch.stack(resampled).cpu(), [t for t, _ in steps])


def _check_schedule(schedule) -> NoiseSchedule:
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    return schedule


def _one_condition_per_group(cond, n: int, G: int, device) -> Tensor:
    """``cond`` as an ``(n, ...)`` tensor on ``device`` whose rows are equal within each of the G systems."""
    if cond is None:
        raise ValueError("cond must be given: the condition of the tilted target")
    if not isinstance(cond, (Tensor, int, float)) or isinstance(cond, bool):
        raise TypeError(f"cond must be a number or a tensor, got {type(cond).__name__}")
    cond = torch.as_tensor(cond, device=device)
    if cond.ndim == 0:
        return cond.expand(n)
    if cond.shape[0] != n:
        raise ValueError(f"cond has {cond.shape[0]} rows, but there are shape[0]={n} particles")
    by_group = cond.reshape(G, n // G, -1)
    if cond.device.type != "meta" and not bool((by_group == by_group[:, :1]).all()):
        raise ValueError("cond must hold one condition per system of particles (equal rows within each group): "
                         "resampling mixes the particles of a system")
    return cond
