"""Exact Gaussian mixtures and a linear-Gaussian likelihood: the answers every test checks against.

Noising a Gaussian mixture by q(x_t | x_0) = N(sqrt(ab) x_0, (1 - ab) I) gives again a Gaussian mixture,
so its noisy log-density, score, class posterior p_t(k | x_t) and exact eps are closed-form at every t.
A scalar likelihood E | x_0 ~ N(h.x_0 + b, tau^2) keeps everything closed-form: p_t(E | x_t) and the
posterior p(x_0 | E) are Gaussian mixtures too.

Both can be wrapped as an ``eps_model(x_t, t, cond)``, so the samplers and guidance run on exact scores
with no training. Derived in chapter 1 (eq. ``noised-mixture``) and chapter 3 (eq. ``bayes-score``).
All arithmetic runs in float64 **on the CPU**, whatever the device of the input (MPS has no float64, and
nothing float64 goes to an accelerator); results come back on the device and in the dtype of ``x``.
These models are for checking and teaching, so the copy to the CPU and back is an acceptable cost.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from . import _checks
from .schedules import NoiseSchedule

Tensor = torch.Tensor

__all__ = ["GaussianMixture", "LinearGaussianLikelihood", "ExactEpsModel", "ExactX0Model", "ExactPredictor",
           "point_set_classifier"]


def _as64(value) -> Tensor:
    """A float64 tensor from a tensor, a number, a nested list, or a list of tensors."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value):
        value = torch.stack([v.to(torch.float64) for v in value])
    return torch.as_tensor(value, dtype=torch.float64)


def _cpu64(x: Tensor) -> Tensor:
    """``x`` in float64 on the CPU, where every exact computation runs (differentiable)."""
    return x.to(device="cpu", dtype=torch.float64)


def _back(value: Tensor, like: Tensor) -> Tensor:
    """A result computed on the CPU, returned on the device and in the dtype of ``like``."""
    return value.to(device=like.device, dtype=like.dtype)


def _alpha_bar(alpha_bar, x: Tensor) -> Tensor:
    """alpha_bar as a float64 CPU tensor of shape (B, 1, 1) or (1, 1, 1), checked to lie in (0, 1]."""
    if isinstance(alpha_bar, Tensor):
        alpha_bar = _cpu64(alpha_bar)
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if ab.ndim > 1 or (ab.ndim == 1 and ab.numel() not in (1, x.shape[0])):
        raise ValueError(f"alpha_bar must be a number or a (B,) tensor, got shape {tuple(ab.shape)}")
    if not bool(torch.isfinite(ab).all()) or bool(((ab <= 0) | (ab > 1)).any()):
        raise ValueError("alpha_bar must lie in (0, 1]")
    return ab.reshape(-1, 1, 1)


def _component_terms(x: Tensor, means: Tensor, U: Tensor, lam: Tensor, ab: Tensor):
    """Per-component log N(x; sqrt(ab) m_k, ab S_k + (1 - ab) I) and score, via S_k = U diag(lam) U^T.

    x: (B, D); means: (K, D) or (B, K, D); U: (K, D, D); lam: (K, D); ab: (B|1, 1, 1).
    Returns log-densities (B, K) and scores (B, K, D).
    """
    diff = x[:, None, :] - ab.sqrt() * means
    z = torch.einsum("bkd,kde->bke", diff, U)
    v = ab * lam + (1.0 - ab)
    log_n = -0.5 * ((z ** 2 / v).sum(-1) + v.log().sum(-1) + x.shape[-1] * math.log(2 * math.pi))
    scores = -torch.einsum("kde,bke->bkd", U, z / v)
    return log_n, scores


class GaussianMixture:
    """A Gaussian mixture p(x_0) = sum_k w_k N(m_k, S_k), and its noised marginals q_t(x_t).

    Args:
        weights: ``(K,)`` positive mixture weights (normalised here).
        means: ``(K, D)`` component means.
        covs: ``(K, D, D)`` symmetric positive-definite covariances.

    Component ``k`` is class ``k``: :meth:`class_posterior` is the exact noise-aware classifier.
    Methods take ``alpha_bar`` (a number in (0, 1] or a ``(B,)`` tensor); ``alpha_bar = 1`` is clean data.
    """

    def __init__(self, weights, means, covs):
        weights, means, covs = _as64(weights), _as64(means), _as64(covs)
        _checks.tensor("weights", weights, ndim=1)
        _checks.tensor("means", means, ndim=2)
        _checks.tensor("covs", covs, ndim=3)
        K, D = means.shape
        if weights.shape != (K,) or covs.shape != (K, D, D):
            raise ValueError(f"weights must have shape ({K},) and covs ({K}, {D}, {D}) for means of shape "
                             f"{(K, D)}; got {tuple(weights.shape)} and {tuple(covs.shape)}")
        if bool((weights <= 0).any()):
            raise ValueError("weights must all be > 0")
        if not torch.allclose(covs, covs.transpose(-1, -2)):
            raise ValueError("covs must be symmetric")
        lam, U = torch.linalg.eigh(covs)
        if bool((lam <= 0).any()):
            raise ValueError("covs must be positive definite")
        self.weights, self.means, self.covs = weights / weights.sum(), means, covs
        self._lam, self._U = lam, U

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.K}, D={self.D})"

    @property
    def K(self) -> int:
        return self.means.shape[0]

    @property
    def D(self) -> int:
        return self.means.shape[1]

    def mean(self) -> Tensor:
        """The mixture's mean, ``(D,)``."""
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """The mixture's covariance, ``(D, D)``: within-component plus between-component parts."""
        mu = self.mean()
        d = self.means - mu
        return torch.einsum("k,kij->ij", self.weights, self.covs) + torch.einsum("k,ki,kj->ij", self.weights, d, d)

    def noised(self, alpha_bar: float) -> "GaussianMixture":
        """q_t as a mixture: means sqrt(ab) m_k, covariances ab S_k + (1 - ab) I; eq. (noised-mixture)."""
        ab = _checks.real("alpha_bar", alpha_bar, low=0.0, high=1.0, low_open=True)
        eye = torch.eye(self.D, dtype=torch.float64)
        return GaussianMixture(self.weights, ab ** 0.5 * self.means, ab * self.covs + (1 - ab) * eye)

    def sample(self, n: int, *, generator: Optional[torch.Generator] = None) -> tuple[Tensor, Tensor]:
        """Draw ``n`` exact samples: returns ``x`` of shape ``(n, D)`` (float64) and their labels ``(n,)``."""
        n = _checks.integer("n", n, low=1)
        _checks.generator("generator", generator, "cpu")
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.D, generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)
        return self.means[labels] + torch.einsum("nij,nj->ni", chol[labels], z), labels

    # -- the exact noisy quantities ---------------------------------------------------------------
    def _terms(self, x: Tensor, alpha_bar):
        # shapes only: a sampler calls this at every step and names the step where the state became NaN
        _checks.tensor("x", x, ndim=2, floating=True, finite=False)
        if x.shape[1] != self.D:
            raise ValueError(f"x must have shape (B, {self.D}), got {tuple(x.shape)}")
        xd = _cpu64(x)
        ab = _alpha_bar(alpha_bar, xd)
        log_n, scores = _component_terms(xd, self.means, self._U, self._lam, ab)
        return log_n + self.weights.log(), scores

    def component_log_prob(self, x: Tensor, alpha_bar=1.0) -> Tensor:
        """log q_t(x_t | k) for every component, ``(B, K)``."""
        log_joint, _ = self._terms(x, alpha_bar)
        return _back(log_joint - self.weights.log(), x)

    def log_prob(self, x: Tensor, alpha_bar=1.0) -> Tensor:
        """log q_t(x_t), ``(B,)``."""
        log_joint, _ = self._terms(x, alpha_bar)
        return _back(torch.logsumexp(log_joint, dim=1), x)

    def class_log_posterior(self, x: Tensor, alpha_bar=1.0) -> Tensor:
        """log p_t(k | x_t) for every class, ``(B, K)``: the exact noise-aware classifier."""
        log_joint, _ = self._terms(x, alpha_bar)
        return _back(torch.log_softmax(log_joint, dim=1), x)

    def class_posterior(self, x: Tensor, alpha_bar=1.0) -> Tensor:
        """p_t(k | x_t), ``(B, K)``."""
        return self.class_log_posterior(x, alpha_bar).exp()

    def score(self, x: Tensor, alpha_bar=1.0) -> Tensor:
        """grad log q_t(x_t) = sum_k p_t(k | x_t) grad log q_t(x_t | k), ``(B, D)``."""
        log_joint, scores = self._terms(x, alpha_bar)
        return _back(torch.einsum("bk,bkd->bd", torch.softmax(log_joint, dim=1), scores), x)

    def conditional_score(self, x: Tensor, k, alpha_bar=1.0) -> Tensor:
        """grad log q_t(x_t | k) for class ``k`` (an int or a ``(B,)`` long tensor), ``(B, D)``."""
        _, scores = self._terms(x, alpha_bar)
        k = self._check_labels(k, x.shape[0])
        return _back(scores[torch.arange(x.shape[0]), k], x)

    def _check_labels(self, k, batch: int, *, allow_null: bool = False) -> Tensor:
        k = torch.as_tensor(k).cpu()
        if k.is_floating_point():
            raise TypeError(f"class labels must be integers, got dtype {k.dtype}")
        low = -1 if allow_null else 0
        if k.numel() and (k.min().item() < low or k.max().item() >= self.K):
            raise ValueError(f"class labels must lie in {low}..{self.K - 1}, got {k.min().item()}..{k.max().item()}")
        return k.long().expand(batch) if k.ndim == 0 else k.long()

    def _score(self, x: Tensor, ab, cond) -> Tensor:
        """grad log q_t(x_t | cond): the class score, or the marginal score where cond is -1 or None."""
        if cond is None:
            return self.score(x, ab)
        cond = torch.as_tensor(cond).cpu()
        cond = cond.expand(x.shape[0]) if cond.ndim == 0 else cond
        null = cond < 0
        if bool(null.all()):
            return self.score(x, ab)
        out = self.conditional_score(x, cond.clamp(min=0), ab)
        if bool(null.any()):
            out = torch.where(null[:, None], self.score(x, ab), out)
        return out

    def posterior_moments(self, x: Tensor, alpha_bar=1.0, cond=None) -> tuple[Tensor, Tensor]:
        """Mean ``(B, D)`` and covariance ``(B, D, D)`` of p(x_0 | x_t = x), exactly, at noise level ``alpha_bar``.

        Component k gives a Gaussian p(x_0 | x_t, k) with mean m_k + S_k sqrt(ab) (ab S_k + (1 - ab) I)^{-1}
        (x_t - sqrt(ab) m_k) and covariance U diag(lam (1 - ab) / (ab lam + 1 - ab)) U^T; the mixture weighs
        them by p_t(k | x_t) (all of them for ``cond`` None or -1, one class otherwise).
        """
        _checks.tensor("x", x, ndim=2, floating=True)
        xd = _cpu64(x)
        ab = _alpha_bar(alpha_bar, xd)
        log_n, _ = _component_terms(xd, self.means, self._U, self._lam, ab)
        v = ab * self._lam + (1.0 - ab)                                            # (B|1, K, D)
        z = torch.einsum("bkd,kde->bke", xd[:, None, :] - ab.sqrt() * self.means, self._U)
        means = self.means + torch.einsum("kde,bke->bkd", self._U, ab.sqrt() * self._lam * z / v)   # (B, K, D)
        covs = torch.einsum("kde,bke,kfe->bkdf", self._U, (self._lam * (1.0 - ab) / v).expand(len(xd), -1, -1),
                            self._U)                                                # (B, K, D, D)
        w = torch.softmax(log_n + self.weights.log(), dim=1)                       # p_t(k | x_t)
        if cond is not None:
            k = self._check_labels(cond, len(xd), allow_null=True)
            w = torch.where((k < 0)[:, None], w, torch.nn.functional.one_hot(k.clamp(min=0), self.K).double())
        mean = torch.einsum("bk,bkd->bd", w, means)
        second = torch.einsum("bk,bkdf->bdf", w, covs + means[..., :, None] * means[..., None, :])
        cov = second - mean[:, :, None] * mean[:, None, :]
        return _back(mean, x), _back(0.5 * (cov + cov.transpose(-1, -2)), x)

    def eps_model(self, schedule: NoiseSchedule) -> "ExactEpsModel":
        """The exact eps-model of this mixture under ``schedule``: cond = class label, -1 or None = marginal."""
        return ExactEpsModel(self, schedule)

    def x0_model(self, schedule: NoiseSchedule) -> "ExactX0Model":
        """The exact denoiser E[x_0 | x_t, cond] of this mixture, by Gaussian conditioning; see :class:`ExactX0Model`."""
        return ExactX0Model(self, schedule)

    def classifier(self, schedule: NoiseSchedule) -> "ExactPredictor":
        """The exact noise-aware classifier p_t(k | x_t) as a predictor with ``log_prob(x_t, t, k)``."""
        return ExactPredictor(self._class_log_prob, schedule)

    def _class_log_prob(self, x: Tensor, ab, k) -> Tensor:
        # a method, not a lambda, so that the predictor pickles (the grader sends it to a submission's process)
        return self.class_log_posterior(x, ab).gather(1, self._check_labels(k, x.shape[0]).to(x.device)[:, None])[:, 0]


def point_set_classifier(x: Tensor, alpha_bar: float, points: Tensor, labels: Tensor, target: Tensor,
                         num_classes: Optional[int] = None) -> tuple[Tensor, Tensor]:
    """The exact class posterior of a labelled point set noised at ``alpha_bar``, and its gradient.

    The data are the ``points`` ``(N, D)`` with equal weights (a training split), so q_t is the mixture
    (1/N) sum_i N(sqrt(ab) x_i, (1 - ab) I) and p_t(k | x_t) sums the posterior weights of the points of
    class k: the optimum of a noise-aware classifier, and of the implicit classifier of a conditional
    eps-model, trained on these points. Returns p_t(k | x) ``(B, K)`` and
    grad_x log p_t(target | x) = sqrt(ab) / (1 - ab) (E[x_0 | x, target] - E[x_0 | x]) ``(B, D)``,
    in float64 on the CPU, back on the device and in the dtype of ``x``.
    """
    _checks.tensor("x", x, ndim=2, floating=True)
    _checks.tensor("points", points, ndim=2, floating=True)
    ab = _checks.real("alpha_bar", alpha_bar, low=0.0, high=1.0, low_open=True, high_open=True)
    if x.shape[1] != points.shape[1]:
        raise ValueError(f"x must have shape (B, {points.shape[1]}), got {tuple(x.shape)}")
    labels, target = torch.as_tensor(labels).cpu(), torch.as_tensor(target).cpu()
    if labels.is_floating_point() or target.is_floating_point():
        raise TypeError("labels and target must be integer tensors")
    if labels.shape != (points.shape[0],):
        raise ValueError(f"labels must have shape ({points.shape[0]},), got {tuple(labels.shape)}")
    K = int(labels.max()) + 1 if num_classes is None else _checks.integer("num_classes", num_classes, low=1)
    if int(labels.min()) < 0 or int(labels.max()) >= K:
        raise ValueError(f"labels must lie in 0..{K - 1}")
    target = target.long().expand(x.shape[0]) if target.ndim == 0 else target.long()
    if target.shape != (x.shape[0],) or int(target.min()) < 0 or int(target.max()) >= K:
        raise ValueError(f"target must be a label in 0..{K - 1} or a ({x.shape[0]},) tensor of them")
    xd, pd = _cpu64(x), _cpu64(points)
    log_w = torch.log_softmax(-torch.cdist(xd, ab ** 0.5 * pd) ** 2 / (2 * (1 - ab)), dim=1)    # p(i | x_t)
    one_hot = torch.nn.functional.one_hot(labels.long(), K).double()                            # (N, K)
    posterior = log_w.exp() @ one_hot
    in_target = labels.long()[None, :] == target[:, None]                                       # (B, N)
    w_target = torch.softmax(log_w.masked_fill(~in_target, -math.inf), dim=1)                  # p(i | x_t, target)
    grad = ab ** 0.5 / (1 - ab) * ((w_target - log_w.exp()) @ pd)
    return _back(posterior, x), _back(grad, x)


def _schedule_alpha_bar(schedule: NoiseSchedule, t, x: Tensor) -> Tensor:
    """alpha_bar_t in float64 on the CPU: 0-d for an int t, shape (B,) for a tensor t (the schedule's lookup)."""
    if isinstance(t, Tensor):
        t = t.cpu()
    return schedule.alpha_bar(t, torch.empty(x.shape[0], dtype=torch.float64))


class ExactPredictor:
    """A predictor with ``log_prob(x_t, t, target)`` computed in closed form from alpha_bar_t."""

    def __init__(self, fn, schedule: NoiseSchedule):
        self._fn, self.schedule = fn, schedule

    def log_prob(self, x_t: Tensor, t, target) -> Tensor:
        return self._fn(x_t, _schedule_alpha_bar(self.schedule, t, x_t), target)


class ExactEpsModel:
    """An exact ``eps_model(x_t, t, cond)``: eps = -sqrt(1 - ab_t) * score, eq. (eps-score).

    For a :class:`GaussianMixture`, ``cond`` is a class label (long ``(B,)``), with ``-1`` or ``None`` for
    the marginal. For a :class:`LinearGaussianLikelihood`, ``cond`` is an energy (float ``(B,)``), with NaN
    or ``None`` for the prior. ``null_value`` holds that null condition.
    """

    def __init__(self, source, schedule: NoiseSchedule):
        self.source, self.schedule = source, schedule
        self.null_value = float("nan") if isinstance(source, LinearGaussianLikelihood) else -1

    def __repr__(self) -> str:
        return f"ExactEpsModel({self.source!r}, T={self.schedule.T})"

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        ab = _schedule_alpha_bar(self.schedule, t, x_t)
        score = self.source._score(_cpu64(x_t), ab, cond)
        return _back(self.schedule.score_to_eps(score, t.cpu() if isinstance(t, Tensor) else t), x_t)


class ExactX0Model:
    """The exact denoiser ``x0_model(x_t, t, cond) = E[x_0 | x_t, cond]`` of a :class:`GaussianMixture`, from
    the Gaussian conditioning of each component (not from the score): the independent side of Tweedie's
    formula, eq. ``x0-from-eps`` of chapter 1. ``cond`` is a class label, or -1 / ``None`` for the marginal."""

    def __init__(self, mixture: "GaussianMixture", schedule: NoiseSchedule):
        self.mixture, self.schedule, self.null_value = mixture, schedule, -1

    def __repr__(self) -> str:
        return f"ExactX0Model({self.mixture!r}, T={self.schedule.T})"

    def __call__(self, x_t: Tensor, t, cond=None) -> Tensor:
        ab = _schedule_alpha_bar(self.schedule, t, x_t)
        mean, _ = self.mixture.posterior_moments(_cpu64(x_t), ab, cond)
        return _back(mean, x_t)


class LinearGaussianLikelihood:
    """A scalar likelihood E | x_0 ~ N(h . x_0 + b, tau^2) on top of a Gaussian-mixture prior.

    Everything is exact: the evidence p(E), the posterior p(x_0 | E) (a Gaussian mixture whose covariances
    do not depend on E), and the noise-aware likelihood p_t(E | x_t). Chapter 3 uses it as an exact
    regressor; the tests use it to show that classifier guidance with s = 1 gives the exact posterior eps.
    """

    def __init__(self, prior: GaussianMixture, h, b: float = 0.0, tau: float = 1.0):
        if not isinstance(prior, GaussianMixture):
            raise TypeError(f"prior must be a GaussianMixture, got {type(prior).__name__}")
        h = _checks.tensor("h", _as64(h), ndim=1)
        if h.shape != (prior.D,):
            raise ValueError(f"h must have shape ({prior.D},), got {tuple(h.shape)}")
        self.prior, self.h = prior, h
        self.b = _checks.real("b", b)
        self.tau = _checks.real("tau", tau, low=0.0, low_open=True)
        S = prior.covs
        self._Sh = S @ h                                   # (K, D)
        self._pred_var = self._Sh @ h + self.tau ** 2      # (K,)  h^T S_k h + tau^2
        post_covs = S - torch.einsum("ki,kj->kij", self._Sh, self._Sh) / self._pred_var[:, None, None]
        post_covs = 0.5 * (post_covs + post_covs.transpose(-1, -2))
        self._post_lam, self._post_U = torch.linalg.eigh(post_covs)
        self.posterior_covs = post_covs

    def __repr__(self) -> str:
        return f"LinearGaussianLikelihood(h={self.h.tolist()}, b={self.b}, tau={self.tau})"

    def sample(self, x0: Tensor, *, generator: Optional[torch.Generator] = None) -> Tensor:
        """Draw E | x_0 for every row of ``x0`` ``(B, D)``; returns ``(B,)`` in x0's dtype."""
        _checks.tensor("x0", x0, ndim=2, floating=True)
        _checks.generator("generator", generator, "cpu")
        z = torch.randn(x0.shape[0], generator=generator, dtype=torch.float64)
        return _back(_cpu64(x0) @ self.h + self.b + self.tau * z, x0)

    def _check_E(self, E, batch: int) -> Tensor:
        E = _cpu64(E) if isinstance(E, Tensor) else torch.as_tensor(E, dtype=torch.float64)
        if E.ndim > 1 or (E.ndim == 1 and E.shape[0] != batch):
            raise ValueError(f"E must be a number or a ({batch},) tensor, got shape {tuple(E.shape)}")
        return E.expand(batch) if E.ndim == 0 else E

    def log_evidence(self, E) -> Tensor:
        """log p(E) = log sum_k w_k N(E; h.m_k + b, h^T S_k h + tau^2)."""
        E = torch.as_tensor(E, dtype=torch.float64)
        mu = self.prior.means @ self.h + self.b
        log_n = -0.5 * ((E[..., None] - mu) ** 2 / self._pred_var + self._pred_var.log() + math.log(2 * math.pi))
        return torch.logsumexp(log_n + self.prior.weights.log(), dim=-1)

    def posterior(self, E: float) -> GaussianMixture:
        """p(x_0 | E) as a Gaussian mixture (for one value of E)."""
        E = _checks.real("E", E)
        log_w, means = self._posterior_params(torch.tensor([E], dtype=torch.float64))
        return GaussianMixture(log_w[0].exp(), means[0], self.posterior_covs)

    def _posterior_params(self, E: Tensor) -> tuple[Tensor, Tensor]:
        m, h = self.prior.means, self.h
        resid = E[:, None] - (m @ h + self.b)                           # (B, K)
        pred_var = self._pred_var
        means = m + self._Sh * (resid / pred_var)[..., None]            # (B, K, D)
        log_w = self.prior.weights.log() - 0.5 * (resid ** 2 / pred_var + pred_var.log())
        return torch.log_softmax(log_w, dim=1), means

    def log_prob(self, E, x_t: Tensor, alpha_bar=1.0) -> Tensor:
        """log p_t(E | x_t), ``(B,)``, by integrating x_0 out within each component:

        p_t(E | x_t) = sum_k p_t(k | x_t) N(E; h . m_{k|t} + b, h^T C_{k|t} h + tau^2), with
        m_{k|t}, C_{k|t} the mean and covariance of p(x_0 | x_t, k). Differentiable in x_t.
        """
        _checks.tensor("x_t", x_t, ndim=2, floating=True)
        xd = _cpu64(x_t)
        E = self._check_E(E, x_t.shape[0])
        ab = _alpha_bar(alpha_bar, xd)
        U, lam, m, h = self.prior._U, self.prior._lam, self.prior.means, self.h
        log_n, _ = _component_terms(xd, m, U, lam, ab)
        log_post_k = torch.log_softmax(log_n + self.prior.weights.log(), dim=1)             # (B, K)
        v = ab * lam + (1.0 - ab)                                                           # (B|1, K, D)
        # E[x_0 | x_t, k] = m_k + S_k sqrt(ab) (ab S_k + (1 - ab) I)^{-1} (x_t - sqrt(ab) m_k)
        z = torch.einsum("bkd,kde->bke", xd[:, None, :] - ab.sqrt() * m, U)
        mean0 = m + torch.einsum("kde,bke->bkd", U, ab.sqrt() * lam * z / v)
        # Cov[x_0 | x_t, k] = U diag(lam (1 - ab) / v) U^T
        hU = torch.einsum("d,kde->ke", h, U)
        var_E = (hU ** 2 * lam * (1.0 - ab) / v).sum(-1) + self.tau ** 2                    # (B|1, K)
        resid = E[:, None] - (mean0 @ h + self.b)
        log_n_E = -0.5 * (resid ** 2 / var_E + var_E.log() + math.log(2 * math.pi))
        return _back(torch.logsumexp(log_post_k + log_n_E, dim=1), x_t)

    def grad_log_prob(self, E, x_t: Tensor, alpha_bar=1.0) -> Tensor:
        """grad_x log p_t(E | x_t) by autograd, ``(B, D)``."""
        with torch.enable_grad():
            x = _cpu64(x_t.detach()).requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(E, x, alpha_bar).sum(), x)
        return _back(g, x_t)

    def _score(self, x: Tensor, ab, cond) -> Tensor:
        """grad log q_t(x_t | E) from the posterior mixture; NaN or None in ``cond`` = the prior."""
        if cond is None:
            return self.prior.score(x, ab)
        xd = _cpu64(x)
        E = self._check_E(cond, x.shape[0])
        null = torch.isnan(E)
        log_w, means = self._posterior_params(torch.where(null, torch.zeros_like(E), E))
        abt = _alpha_bar(ab, xd)
        log_n, scores = _component_terms(xd, means, self._post_U, self._post_lam, abt)
        score = torch.einsum("bk,bkd->bd", torch.softmax(log_n + log_w, dim=1), scores)
        if bool(null.any()):
            score = torch.where(null[:, None], self.prior.score(xd, ab), score)
        return _back(score, x)

    def eps_model(self, schedule: NoiseSchedule) -> ExactEpsModel:
        """The exact eps of p_t(x_t | E): cond = E (float ``(B,)``), NaN or None = the prior."""
        return ExactEpsModel(self, schedule)

    def predictor(self, schedule: NoiseSchedule) -> ExactPredictor:
        """The exact noise-aware regressor p_t(E | x_t) as a predictor with ``log_prob(x_t, t, E)``."""
        return ExactPredictor(self._predictor_log_prob, schedule)

    def _predictor_log_prob(self, x: Tensor, ab, E) -> Tensor:
        # a method, not a lambda, so that the predictor pickles (the grader sends it to a submission's process)
        return self.log_prob(E, x, ab)
