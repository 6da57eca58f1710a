"""Small networks for vector data: a conditional eps-model and noise-aware predictors.

The condition enters the network beside the timestep, in every residual block (chapter 2, eq.
``cond-embedding``). It is a scalar energy E (random Fourier features, or the normalised energy alone,
``energy_features="linear"``), a class label (``nn.Embedding``), or a
vector of ``cond_features`` numbers per sample (a linear layer). Two ways to say "no condition", the
``null`` mode (chapter 5, section "the null condition"):

* ``null="zero"``: the lecture's choice, the null condition is the value 0 (E = 0, label 0, the zero
  vector). The network cannot tell "no condition" from a real condition equal to 0.
* ``null="learned"``: a learned null embedding, selected by a mask. The null condition is NaN for
  energies and vectors and -1 for labels; ``model.null_value`` holds it (a tensor of NaNs of the vector's
  shape for vectors), and :func:`tutorial_pkg.guidance.cfg_model` and
  :func:`tutorial_pkg.training.train_eps_model` read it from there.

A network's ``forward`` checks shapes, dtypes and devices, which costs nothing, and reads no values: it runs
at every step of a sampler, where a value check would stall an accelerator. The values of a condition are
checked once, where a sampler or a training loop is entered, by ``check_condition(cond)``.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from . import _checks

Tensor = torch.Tensor

__all__ = ["SinusoidalEmbedding", "FourierFeatures", "ConditionEmbedding", "MLPEpsModel",
           "NoiseAwareClassifier", "NoiseAwareRegressor", "NULL_MODES", "COND_KINDS", "ENERGY_FEATURES"]

NULL_MODES = ("zero", "learned")
COND_KINDS = ("energy", "label", "vector")
ENERGY_FEATURES = ("fourier", "linear")


def _even_dim(name: str, value) -> int:
    """An embedding width: sin and cos halves need an even number >= 2."""
    value = _checks.integer(name, value, low=2)
    if value % 2:
        raise ValueError(f"{name} must be even, got {value}")
    return value


class SinusoidalEmbedding(nn.Module):
    """The transformer's sinusoidal embedding of the timestep t, ``(B,) -> (B, dim)``.

    The positional encoding of Vaswani et al. (2017), "Attention Is All You Need", applied to the timestep as
    Ho et al. (2020) do: ``[sin(t * omega_i), cos(t * omega_i)]`` with ``omega_i = max_period^(-i / (dim / 2))``.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        dim = _even_dim("dim", dim)
        max_period = _checks.real("max_period", max_period, low=0.0, low_open=True)
        freqs = torch.exp(-math.log(max_period) * torch.arange(dim // 2, dtype=torch.float32) / (dim // 2))
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        if t.ndim != 1:
            raise ValueError(f"t must have shape (B,), got {tuple(t.shape)}")
        angles = t.to(self.freqs.dtype)[:, None] * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class FourierFeatures(nn.Module):
    """Random Fourier features of a scalar (Tancik et al. 2020), ``(B,) -> (B, dim)``.

    The frequencies are drawn once from N(0, scale^2) with the generator seed ``seed`` (0 unless given), so
    two networks built with the same seed embed alike, whatever their other weights. They are a buffer of the
    state dict, so a saved network loads back with the frequencies it was trained with.
    """

    def __init__(self, dim: int, scale: float = 1.0, seed: int = 0):
        super().__init__()
        dim = _even_dim("dim", dim)
        scale = _checks.real("scale", scale, low=0.0, low_open=True)
        seed = _checks.integer("seed", seed, low=0)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 1:
            raise ValueError(f"x must have shape (B,), got {tuple(x.shape)}")
        angles = 2 * math.pi * x[:, None] * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConditionEmbedding(nn.Module):
    """Embeds the condition of a batch, with the null mode of the module docstring.

    Args:
        kind: ``"energy"`` (a float ``(B,)`` tensor), ``"label"`` (a long ``(B,)`` tensor) or ``"vector"``
            (a float ``(B, features)`` tensor).
        dim: embedding width.
        num_classes: number of labels, for ``kind="label"``.
        features: length of the condition vector, for ``kind="vector"``.
        null: ``"zero"`` or ``"learned"``.
        energy_shift, energy_scale: energies are embedded as e = (E - shift) / scale.
        energy_features: how e is embedded, for ``kind="energy"``: ``"fourier"`` (the default), a linear layer of
            ``[sin(2 pi B e), cos(2 pi B e), e]`` with random frequencies B (:class:`FourierFeatures`), or
            ``"linear"``, a linear layer of e alone. Periodic features extrapolate arbitrarily outside the
            range of the training energies, the linear embedding affinely (chapter 2).
        fourier_seed: the generator seed of the frequencies B (``energy_features="fourier"`` only).
    """

    def __init__(self, kind: str, dim: int, *, num_classes: Optional[int] = None, features: Optional[int] = None,
                 null: str = "learned", energy_shift: float = 0.0, energy_scale: float = 1.0,
                 energy_features: str = "fourier", fourier_seed: int = 0):
        super().__init__()
        self.kind = _checks.choice("kind", kind, COND_KINDS)
        self.energy_features = _checks.choice("energy_features", energy_features, ENERGY_FEATURES)
        fourier_seed = _checks.integer("fourier_seed", fourier_seed, low=0)
        if kind != "energy" and energy_features != "fourier":
            raise ValueError(f"energy_features={energy_features!r} applies to kind='energy' only, got kind={kind!r}")
        self.null = _checks.choice("null", null, NULL_MODES)
        self.energy_shift = _checks.real("energy_shift", energy_shift)
        self.energy_scale = _checks.real("energy_scale", energy_scale, low=0.0, low_open=True)
        dim = _checks.integer("dim", dim, low=1)
        self.num_classes = self.features = None
        if kind == "label":
            self.num_classes = _checks.integer("num_classes", num_classes, low=1)
            # row num_classes is the learned null (unused in zero mode)
            self.table = nn.Embedding(self.num_classes + 1, dim)
        elif kind == "energy":
            if energy_features == "fourier":
                self.fourier = FourierFeatures(dim, seed=fourier_seed)
                self.proj = nn.Linear(dim + 1, dim)
            else:
                self.proj = nn.Linear(1, dim)
            self.null_embedding = nn.Parameter(torch.zeros(dim))
        else:
            self.features = _checks.integer("features", features, low=1)
            self.proj = nn.Sequential(nn.Linear(self.features, dim), nn.SiLU(), nn.Linear(dim, dim))
            self.null_embedding = nn.Parameter(torch.zeros(dim))

    @property
    def null_value(self):
        """The condition value that means "no condition": 0 (or the zero vector) in zero mode, NaN (a vector
        of NaNs) or -1 in learned mode."""
        if self.kind == "vector":
            return torch.full((self.features,), 0.0 if self.null == "zero" else float("nan"))
        if self.null == "zero":
            return 0.0 if self.kind == "energy" else 0
        return float("nan") if self.kind == "energy" else -1

    def _shape(self, batch: int) -> tuple:
        return (batch, self.features) if self.kind == "vector" else (batch,)

    def forward(self, cond: Optional[Tensor], batch: int, device) -> Tensor:
        if cond is None:
            cond = (self.null_value.to(device).expand(batch, self.features) if self.kind == "vector" else
                    torch.full((batch,), self.null_value, device=device,
                               dtype=torch.float32 if self.kind == "energy" else torch.long))
        if not isinstance(cond, Tensor):
            raise TypeError(f"cond must be a tensor or None, got {type(cond).__name__}")
        if cond.ndim == 0 and self.kind != "vector":
            cond = cond.expand(batch)
        if cond.shape != self._shape(batch):
            raise ValueError(f"cond must have shape {self._shape(batch)}, got {tuple(cond.shape)}")
        if cond.device.type != torch.device(device).type:
            raise ValueError(f"cond is on device {cond.device}, but x_t is on {device}")
        if self.kind == "label":
            if cond.is_floating_point() or cond.dtype == torch.bool:
                raise TypeError(f"cond must be a long tensor of class labels, got dtype {cond.dtype}")
            try:
                return self.table(torch.where(cond < 0, torch.full_like(cond, self.num_classes), cond))
            except IndexError as err:  # only the CPU raises here; the samplers' door checks the values first
                raise ValueError(f"cond holds a class label outside 0..{self.num_classes - 1} (or the null, "
                                 f"{self.null_value}): got labels from {int(cond.min())} to {int(cond.max())}") from err
        if not cond.is_floating_point():
            raise TypeError(f"cond must be a float tensor of {self.kind}s, got dtype {cond.dtype}")
        return self._energy(cond) if self.kind == "energy" else self._vector(cond)

    def _energy(self, E: Tensor) -> Tensor:
        mask = torch.isnan(E)
        e = (torch.where(mask, torch.zeros_like(E), E) - self.energy_shift) / self.energy_scale
        e = e.to(self.null_embedding.dtype)
        features = torch.cat([self.fourier(e), e[:, None]], dim=-1) if self.energy_features == "fourier" else e[:, None]
        emb = self.proj(features)
        return torch.where(mask[:, None], self.null_embedding.expand_as(emb), emb)

    def _vector(self, c: Tensor) -> Tensor:
        mask = torch.isnan(c).any(dim=-1, keepdim=True)          # a row of NaNs is the learned null
        emb = self.proj(torch.where(torch.isnan(c), torch.zeros_like(c), c).to(self.null_embedding.dtype))
        return torch.where(mask, self.null_embedding.expand_as(emb), emb)

    def check_condition(self, cond: Tensor) -> None:
        """Check the values of a condition, once (a sampler or training loop calls it at its door)."""
        if self.kind == "label":
            if cond.is_floating_point() or cond.dtype == torch.bool:
                raise TypeError(f"cond must be a long tensor of class labels, got dtype {cond.dtype}")
            low = -1 if self.null == "learned" else 0
            if cond.numel() and (cond.min().item() < low or cond.max().item() >= self.num_classes):
                raise ValueError(f"cond labels must lie in {low}..{self.num_classes - 1} (null={self.null!r}), "
                                 f"got {cond.min().item()}..{cond.max().item()}")
            return
        if not cond.is_floating_point():
            raise TypeError(f"cond must be a float tensor of {self.kind}s, got dtype {cond.dtype}")
        if bool(torch.isinf(cond).any()):
            raise ValueError(f"cond holds infinite {self.kind}s")
        if self.null == "zero" and bool(torch.isnan(cond).any()):
            raise ValueError("cond holds NaN; with null='zero' the null condition is 0, not NaN")
        if self.kind == "vector" and bool((torch.isnan(cond).any(-1) != torch.isnan(cond).all(-1)).any()):
            raise ValueError("cond holds rows with some NaN entries: the null condition is a whole row of NaNs")


class _Block(nn.Module):
    """A residual MLP block that adds the (time, condition) embedding inside."""

    def __init__(self, hidden: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.emb = nn.Linear(emb_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(self.norm(h)) + self.emb(emb)))


def _check_xt(x_t: Tensor, t, data_dim: int, param: Tensor) -> Tensor:
    """Check shapes, dtypes and devices (no value is read), and return t as a long tensor of shape (B,)."""
    if not isinstance(x_t, Tensor) or not x_t.is_floating_point() or x_t.ndim != 2 or x_t.shape[1] != data_dim:
        got = f"shape {tuple(x_t.shape)} and dtype {x_t.dtype}" if isinstance(x_t, Tensor) else type(x_t).__name__
        raise ValueError(f"x_t must be a floating-point tensor of shape (B, {data_dim}), got {got}")
    if x_t.device != param.device:
        raise ValueError(f"x_t is on device {x_t.device}, but the network is on {param.device}")
    if isinstance(t, int) and not isinstance(t, bool):
        return torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    if not isinstance(t, Tensor) or t.is_floating_point() or t.dtype == torch.bool:
        got = f"dtype {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
        raise TypeError(f"t must be an int or an integer tensor, got {got}")
    if t.ndim == 0:
        return t.to(x_t.device).expand(x_t.shape[0])
    if t.shape != (x_t.shape[0],):
        raise ValueError(f"t must be an int or have shape ({x_t.shape[0]},), got {tuple(t.shape)}")
    return t.to(x_t.device)


class _Trunk(nn.Module):
    """Input layer, residual blocks with an embedding, output layer: shared by every net here."""

    def __init__(self, data_dim: int, out_dim: int, hidden: int, depth: int, emb_dim: int):
        super().__init__()
        self.inp = nn.Linear(data_dim, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, emb_dim) for _ in range(depth))
        # no normalisation before the output: eps grows like x_t at high noise, and a norm would cap it
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out_dim))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h)


class MLPEpsModel(nn.Module):
    """An eps-model for vector data: ``model(x_t, t, cond) -> eps``, shapes ``(B, D), (B,), (B, ...) -> (B, D)``.

    Args:
        data_dim: D.
        hidden, depth: width and number of residual blocks.
        time_dim: width of the sinusoidal timestep embedding.
        cond: ``None`` (unconditional), ``"energy"``, ``"label"`` or ``"vector"``.
        num_classes: for ``cond="label"``.
        cond_features: the length of the condition vector, for ``cond="vector"``.
        null: ``"zero"`` or ``"learned"``, see the module docstring.
        energy_shift, energy_scale: normalisation of energies before embedding.
        energy_features, fourier_seed: the embedding of an energy, see :class:`ConditionEmbedding`.

    ``t`` is an int or a long tensor ``(B,)``. Chapters 1 and 2 train it; chapter 5 trains it with condition
    dropout for CFG.
    """

    def __init__(self, data_dim: int, *, hidden: int = 64, depth: int = 2, time_dim: int = 32,
                 cond: Optional[str] = None, num_classes: Optional[int] = None, cond_features: Optional[int] = None,
                 null: str = "learned", cond_dim: int = 32, energy_shift: float = 0.0, energy_scale: float = 1.0,
                 energy_features: str = "fourier", fourier_seed: int = 0):
        super().__init__()
        self.data_dim = _checks.integer("data_dim", data_dim, low=1)
        hidden = _checks.integer("hidden", hidden, low=1)
        depth = _checks.integer("depth", depth, low=0)
        if cond is not None:
            _checks.choice("cond", cond, COND_KINDS)
        _checks.choice("null", null, NULL_MODES)
        _checks.choice("energy_features", energy_features, ENERGY_FEATURES)
        if cond != "energy" and energy_features != "fourier":
            raise ValueError(f"energy_features={energy_features!r} applies to cond='energy' only, got cond={cond!r}")
        if cond == "energy":
            _even_dim("cond_dim", cond_dim)
        self.cond_kind = cond
        self.time_embedding = SinusoidalEmbedding(_even_dim("time_dim", time_dim))
        self.cond_embedding = (ConditionEmbedding(cond, cond_dim, num_classes=num_classes, features=cond_features,
                                                  null=null, energy_shift=energy_shift, energy_scale=energy_scale,
                                                  energy_features=energy_features, fourier_seed=fourier_seed)
                               if cond is not None else None)
        emb_in = time_dim + (cond_dim if cond is not None else 0)
        self.embed = nn.Sequential(nn.Linear(emb_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.trunk = _Trunk(self.data_dim, self.data_dim, hidden, depth, hidden)

    @property
    def null(self) -> Optional[str]:
        return self.cond_embedding.null if self.cond_embedding is not None else None

    @property
    def null_value(self):
        """The condition that means "no condition" (None for an unconditional network)."""
        return self.cond_embedding.null_value if self.cond_embedding is not None else None

    def check_condition(self, cond) -> None:
        """Check a condition's values once, at the door of a sampler or a training loop (``forward`` does not)."""
        if self.cond_embedding is None:
            if cond is not None:
                raise ValueError("cond must be None for an unconditional network (built with cond=None)")
            return
        if isinstance(cond, Tensor):
            self.cond_embedding.check_condition(cond)

    def forward(self, x_t: Tensor, t, cond: Optional[Tensor] = None) -> Tensor:
        param = self.embed[0].weight
        t = _check_xt(x_t, t, self.data_dim, param)
        emb = self.time_embedding(t)
        if self.cond_embedding is not None:
            emb = torch.cat([emb, self.cond_embedding(cond, x_t.shape[0], x_t.device)], dim=-1)
        elif cond is not None:
            raise ValueError("cond must be None for an unconditional network (built with cond=None)")
        return self.trunk(x_t.to(param.dtype), self.embed(emb.to(param.dtype)))


class NoiseAwareClassifier(nn.Module):
    """A classifier p_phi(y | x_t, t) trained on noisy inputs at every t (chapter 3, eq. ``bayes-score``).

    ``forward(x_t, t) -> logits (B, num_classes)``; ``log_prob(x_t, t, y) -> (B,)``.
    """

    def __init__(self, data_dim: int, num_classes: int, *, hidden: int = 64, depth: int = 2, time_dim: int = 32):
        super().__init__()
        self.data_dim = _checks.integer("data_dim", data_dim, low=1)
        self.num_classes = _checks.integer("num_classes", num_classes, low=2)
        self.time_embedding = SinusoidalEmbedding(_even_dim("time_dim", time_dim))
        self.embed = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.trunk = _Trunk(self.data_dim, self.num_classes, hidden, depth, hidden)

    def forward(self, x_t: Tensor, t) -> Tensor:
        param = self.embed[0].weight
        t = _check_xt(x_t, t, self.data_dim, param)
        return self.trunk(x_t.to(param.dtype), self.embed(self.time_embedding(t)))

    def log_prob(self, x_t: Tensor, t, y: Tensor) -> Tensor:
        """log p_phi(y | x_t, t), the log-softmax of the target class, ``(B,)``. Shapes are checked here, the
        label values once by :meth:`check_target`."""
        logits = self.forward(x_t, t)
        y = torch.as_tensor(y, device=x_t.device)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"y must be integer class labels, got dtype {y.dtype}")
        y = y.expand(x_t.shape[0]) if y.ndim == 0 else y
        if y.shape != (x_t.shape[0],):
            raise ValueError(f"y must be a label or hold {x_t.shape[0]} labels, got shape {tuple(y.shape)}")
        return torch.log_softmax(logits.float(), dim=-1).gather(1, y.long()[:, None])[:, 0]

    def check_target(self, y) -> None:
        """Check target labels once, where a sampler or training loop is entered: integers in 0..K-1."""
        y = torch.as_tensor(y)
        if y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"y must be integer class labels, got dtype {y.dtype}")
        if y.numel() and (y.min().item() < 0 or y.max().item() >= self.num_classes):
            raise ValueError(f"y must hold labels in 0..{self.num_classes - 1}, got {y.min().item()}..{y.max().item()}")


class NoiseAwareRegressor(nn.Module):
    """A Gaussian regressor p_phi(E | x_t, t) = N(E; f(x_t, t), sigma^2) of a scalar energy E.

    ``forward(x_t, t) -> (f, log_sigma)``, both ``(B,)``, in the units of E (``energy_shift`` and
    ``energy_scale`` normalise the target inside the network). The spread is

    * ``spread="t"``: sigma(t), a function of the noise level only. Then grad_x log p = (E - f) / sigma^2 *
      grad_x f, chapter 3, eq. ``regressor-grad``; exact for a linear-Gaussian likelihood on a *Gaussian*
      prior, where Var[E | x_t] depends on t only. On a mixture prior Var[E | x_t] also changes with x_t, and
      this spread is misspecified (it learns an average over the states of each step).
    * ``spread="x_t"``: sigma(x_t, t), heteroscedastic, from the same trunk as f. For a nonlinear energy the
      uncertainty Var[E | x_t] ~ grad V^T Cov[x_0 | x_t] grad V changes by orders of magnitude at a fixed t
      (steep walls against flat basins), and a spread of t alone is overconfident where the potential is steep.
      The gradient gains the term ((E - f)^2 / sigma^2 - 1) grad_x log sigma. Chapter 6.

    Both are trained by the Gaussian negative log-likelihood (``training.train_predictor``).
    """

    def __init__(self, data_dim: int, *, hidden: int = 64, depth: int = 2, time_dim: int = 32,
                 energy_shift: float = 0.0, energy_scale: float = 1.0, spread: str = "t"):
        super().__init__()
        self.data_dim = _checks.integer("data_dim", data_dim, low=1)
        self.energy_shift = _checks.real("energy_shift", energy_shift)
        self.energy_scale = _checks.real("energy_scale", energy_scale, low=0.0, low_open=True)
        self.spread = _checks.choice("spread", spread, ("t", "x_t"))
        self.time_embedding = SinusoidalEmbedding(_even_dim("time_dim", time_dim))
        self.embed = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.trunk = _Trunk(self.data_dim, 1 if spread == "t" else 2, hidden, depth, hidden)
        if spread == "t":
            self.log_sigma = nn.Sequential(nn.Linear(time_dim, 32), nn.SiLU(), nn.Linear(32, 1))

    def forward(self, x_t: Tensor, t) -> tuple[Tensor, Tensor]:
        param = self.embed[0].weight
        t = _check_xt(x_t, t, self.data_dim, param)
        temb = self.time_embedding(t)
        out = self.trunk(x_t.to(param.dtype), self.embed(temb))
        if self.spread == "t":
            log_sigma = self.log_sigma(temb)[:, 0]
        else:
            # a floor of exp(-7) energy scales keeps the likelihood finite where the network is very sure
            log_sigma = out[:, 1].clamp(min=-7.0)
        return self.energy_shift + self.energy_scale * out[:, 0], log_sigma + math.log(self.energy_scale)

    def log_prob(self, x_t: Tensor, t, E: Tensor) -> Tensor:
        """log N(E; f(x_t, t), sigma^2), ``(B,)``, with sigma(t) or sigma(x_t, t) (``spread``)."""
        f, log_sigma = self.forward(x_t, t)
        E = torch.as_tensor(E, device=x_t.device, dtype=f.dtype)
        E = E.expand(x_t.shape[0]) if E.ndim == 0 else E
        if E.shape != (x_t.shape[0],):
            raise ValueError(f"E must be a number or have shape ({x_t.shape[0]},), got {tuple(E.shape)}")
        return -0.5 * ((E - f) / log_sigma.exp()) ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)

    def check_target(self, E) -> None:
        """Check target energies once, where a sampler or training loop is entered: finite numbers."""
        E = torch.as_tensor(E)
        if not E.is_floating_point():
            raise TypeError(f"E must be a float tensor of energies, got dtype {E.dtype}")
        _checks.tensor("E", E)
