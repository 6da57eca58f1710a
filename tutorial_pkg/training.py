"""Training loops: the denoising objective with condition dropout, and noise-aware predictors.

Both loops draw x_0 from the data, t uniformly from 0..T-1 and x_t ~ q(x_t | x_0). The eps-model
learns the denoising objective of chapter 2 (eq. ``cond-objective``); with ``p_uncond > 0`` each row's
condition is replaced by the model's null condition with that probability, so one network learns the
conditional and the unconditional score (chapter 5, eq. ``cfg-dropout``). The predictor learns
p_phi(target | x_t, t) by maximum likelihood (chapter 3). Both are seeded and run on the device of
the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm.auto import tqdm

from . import _checks, models
from .schedules import NoiseSchedule

Tensor = torch.Tensor

__all__ = ["TrainResult", "train_eps_model", "train_predictor", "drop_condition"]


@dataclass
class TrainResult:
    """What a training loop returns.

    Attributes:
        model: the network to sample with: the EMA average when ``ema_decay`` was given, else the
            trained network itself (trained in place).
        losses: the loss at every step, a float64 array of shape ``(steps,)``.
    """

    model: nn.Module
    losses: np.ndarray


def drop_condition(cond: Tensor, p_uncond: float, null, generator: Optional[torch.Generator] = None) -> Tensor:
    """Replace each row of ``cond`` ``(B, ...)`` by ``null`` with probability ``p_uncond``; eq. (cfg-dropout).

    ``null`` is a number or a tensor of a row's shape (:func:`tutorial_pkg.models.null_rows`); the random
    draw comes from ``generator``, one uniform number per row.
    """
    _checks.tensor("cond", cond, finite=False)   # NaN is the null energy of learned-null networks
    if cond.ndim == 0:
        raise ValueError("cond must hold one condition per row, shape (B, ...), got a 0-d tensor")
    p_uncond = _checks.real("p_uncond", p_uncond, low=0.0, high=1.0)
    _checks.generator("generator", generator, "cpu")
    drop = torch.rand(cond.shape[0], generator=generator).to(cond.device) < p_uncond
    drop = drop.reshape(-1, *([1] * (cond.ndim - 1)))
    return torch.where(drop, models.null_rows(null, cond), cond)


def _check_data(x0, cond, name_cond: str):
    """The training data, checked once at the door (values included: the loop reads none)."""
    _checks.tensor("x0", x0, ndim=2, floating=True)
    if x0.shape[0] < 1:
        raise ValueError("x0 must hold at least one sample")
    if cond is not None:
        if not isinstance(cond, Tensor):
            raise TypeError(f"{name_cond} must be a tensor or None, got {type(cond).__name__}")
        if cond.ndim < 1 or cond.shape[0] != x0.shape[0]:
            raise ValueError(f"{name_cond} must have shape ({x0.shape[0]}, ...), one row per row of x0, "
                             f"got {tuple(cond.shape)}")
        _checks.tensor(name_cond, cond)


def _param_device(model: nn.Module, name: str) -> torch.device:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    try:
        return next(model.parameters()).device
    except StopIteration:
        raise ValueError(f"{name} has no parameters to train") from None


def _first_bad(bad: Optional[Tensor], loss: Tensor, step: int) -> Tensor:
    """The first step with a non-finite loss, or -1, kept as a tensor on the loss's device (no host sync)."""
    if bad is None:
        bad = torch.full((), -1, dtype=torch.long, device=loss.device)
    return torch.where((bad < 0) & ~torch.isfinite(loss.detach()), step, bad)


def _raise_if_bad(bad: Tensor, desc: str) -> None:
    step = bad.item()
    if step >= 0:
        raise FloatingPointError(f"{desc}: the loss became NaN or infinite at step {step}; lower lr")


def _loop(model, loss_fn, *, steps, lr, weight_decay, ema_decay, progress, desc, lr_decay):
    steps = _checks.integer("steps", steps, low=1)
    lr = _checks.real("lr", lr, low=0.0, low_open=True)
    weight_decay = _checks.real("weight_decay", weight_decay, low=0.0)
    _checks.choice("lr_decay", lr_decay, ("cosine", "none"))
    if ema_decay is not None:
        ema_decay = _checks.real("ema_decay", ema_decay, low=0.0, high=1.0, high_open=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps) if lr_decay == "cosine" else None
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(ema_decay)) if ema_decay is not None else None
    model.train()
    losses = []
    bad = None                   # the first non-finite loss, watched on the device and read every 200 steps
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=False)
    for step in bar:
        loss = loss_fn()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        if ema is not None:
            ema.update_parameters(model)
        losses.append(loss.detach())
        bad = _first_bad(bad, loss, step)
        if step % 200 == 199 or step == steps - 1:
            _raise_if_bad(bad, desc)
        if progress and step % 100 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    out = ema.module.eval() if ema is not None else model
    return TrainResult(out, torch.stack(losses).cpu().double().numpy())


def train_eps_model(model: nn.Module, x0: Tensor, schedule: NoiseSchedule, *, cond: Optional[Tensor] = None,
                    p_uncond: float = 0.0, steps: int = 2000, batch_size: int = 256, lr: float = 2e-3,
                    weight_decay: float = 0.0, ema_decay: Optional[float] = None, lr_decay: str = "cosine",
                    seed: int = 0, progress: bool = True) -> TrainResult:
    """Train ``model(x_t, t, cond) -> eps`` on the denoising objective ||eps - eps_theta(x_t, t, c)||^2.

    Args:
        model: an eps-model; with ``cond`` or ``p_uncond > 0`` it must accept a condition and expose
            ``null_value`` (as :class:`tutorial_pkg.nets.MLPEpsModel` does).
        x0: training data, ``(N, D)``.
        schedule: the noise schedule.
        cond: the condition of each row, ``(N,)`` (energies or labels) or ``(N, ...)`` (vectors), or ``None``.
        p_uncond: probability of dropping a row's condition to the null, in [0, 1].
        steps, batch_size, lr, weight_decay: AdamW's optimisation, with cosine learning-rate decay
            (``lr_decay="none"`` keeps it constant).
        ema_decay: keep an exponential moving average of the weights (torch's ``AveragedModel``).
        seed: seeds the batches, timesteps, noise and dropout.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`TrainResult`. Chapter 2, eq. (cond-objective); chapter 5, eq. (cfg-dropout).
    """
    _check_data(x0, cond, "cond")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    p_uncond = _checks.real("p_uncond", p_uncond, low=0.0, high=1.0)
    batch_size = _checks.integer("batch_size", batch_size, low=1)
    if p_uncond > 0 and cond is None:
        raise ValueError(f"p_uncond={p_uncond} needs cond: there is no condition to drop")
    null = getattr(model, "null_value", None)
    if p_uncond > 0 and null is None:
        raise ValueError("p_uncond > 0 needs a model with a null_value (a conditional MLPEpsModel)")
    if cond is not None:
        models.check_condition(model, cond, x0.shape[0])
    device = _param_device(model, "model")
    g = torch.Generator().manual_seed(seed)
    x0 = x0.to(device=device, dtype=torch.float32)
    cond = cond.to(device) if cond is not None else None

    def loss_fn():
        idx = torch.randint(0, x0.shape[0], (batch_size,), generator=g).to(device)
        t = torch.randint(0, schedule.T, (batch_size,), generator=g).to(device)
        eps = torch.randn(batch_size, x0.shape[1], generator=g).to(device)
        x_t = schedule.q_sample(x0[idx], t, eps)
        c = None
        if cond is not None:
            c = cond[idx]
            if p_uncond > 0:
                c = drop_condition(c, p_uncond, null, generator=g)
        return nn.functional.mse_loss(model(x_t, t, c), eps)

    return _loop(model, loss_fn, steps=steps, lr=lr, weight_decay=weight_decay, ema_decay=ema_decay,
                 progress=progress, desc="train eps-model", lr_decay=lr_decay)


def train_predictor(predictor: nn.Module, x0: Tensor, targets: Tensor, schedule: NoiseSchedule, *,
                    steps: int = 2000, batch_size: int = 256, lr: float = 2e-3, weight_decay: float = 0.0,
                    ema_decay: Optional[float] = None, lr_decay: str = "cosine", seed: int = 0,
                    progress: bool = True, loss: Optional[Callable] = None) -> TrainResult:
    """Train a noise-aware predictor by maximum likelihood on x_t ~ q(x_t | x_0) at uniform t. Chapter 3.

    ``predictor.log_prob(x_t, t, target) -> (B,)`` is maximised: a classifier's cross-entropy, or a
    Gaussian regressor's negative log-likelihood. ``targets`` are labels or energies, ``(N,)``. ``loss``, if
    given, replaces ``-predictor.log_prob``: it is called on the predictor's outputs followed by the targets,
    ``loss(f, log_sigma, target) -> (B,)`` for a Gaussian regressor (a loss written by hand, as in assignment 4).
    """
    _check_data(x0, targets, "targets")
    if targets is None:
        raise ValueError("targets must be a tensor of labels or energies, got None")
    if not callable(getattr(predictor, "log_prob", None)):
        raise TypeError(f"predictor must have a log_prob(x_t, t, target) method, got {type(predictor).__name__}")
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    batch_size = _checks.integer("batch_size", batch_size, low=1)
    if loss is not None and not callable(loss):
        raise TypeError(f"loss must be None or callable as loss(*predictor(x_t, t), target), got {type(loss).__name__}")
    check = getattr(predictor, "check_target", None)
    if callable(check):
        check(targets)
    device = _param_device(predictor, "predictor")
    g = torch.Generator().manual_seed(seed)
    x0 = x0.to(device=device, dtype=torch.float32)
    targets = targets.to(device)

    def loss_fn():
        idx = torch.randint(0, x0.shape[0], (batch_size,), generator=g).to(device)
        t = torch.randint(0, schedule.T, (batch_size,), generator=g).to(device)
        eps = torch.randn(batch_size, x0.shape[1], generator=g).to(device)
        x_t = schedule.q_sample(x0[idx], t, eps)
        if loss is None:
            return -predictor.log_prob(x_t, t, targets[idx]).mean()
        out = predictor(x_t, t)
        return loss(*(out if isinstance(out, tuple) else (out,)), targets[idx]).mean()

    return _loop(predictor, loss_fn, steps=steps, lr=lr, weight_decay=weight_decay, ema_decay=ema_decay,
                 progress=progress, desc="train predictor", lr_decay=lr_decay)
