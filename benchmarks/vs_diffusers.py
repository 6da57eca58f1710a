"""4. The library a user would pick instead: the same eps-model and schedule, sampled with diffusers' loops.

The eps-model is chapter 6's trained network (hidden 128, depth 3; the shipped weights of
``tutorial_pkg.zoo``), called without a condition; the schedule is linear with T = 1000.

diffusers' ``DDPMScheduler`` (all 1000 steps, ``variance_type="fixed_small"``) and ``DDIMScheduler`` (50
steps, ``set_alpha_to_one=True``), both with ``clip_sample=False``, against ``sampling.ddpm_sample`` and
``sampling.ddim_sample``. The two must give the same samples for the same noise, checked before timing;
ratio = package time / diffusers time. The loops are also timed alone, with a model that returns a stored
eps: what remains is each library's own per-step work, which the network's time otherwise buries in noise.
"""

from __future__ import annotations

import torch

from tutorial_pkg import sampling, zoo

import common
from timing import calls_for, interleaved

TARGET = 1.0
# Tolerance of the agreement check, between two scales:
# * diffusers keeps alpha_bar in float32. Near t = 0, alpha_bar = 0.9999, so 1 - alpha_bar carries a relative
#   rounding error of about 1e-4 (tests/test_sampling.py), and the last steps' coefficients inherit it: on
#   samples of size ~3 the two loops then differ by about 1e-4 (given the package's float64 table instead,
#   diffusers agrees to ~1e-5, the float32 rounding of the state over 1000 steps).
# * a real discrepancy (a step off by one, noise drawn in another order, the other variance) moves a sample
#   by at least the last noisy step's standard deviation, sqrt(beta_tilde_1) ~ 7e-3.
# 1e-3 lies between the two, a factor of ~10 from each.
RTOL = ATOL = 1e-3


def _schedulers():
    import diffusers

    common_kw = dict(num_train_timesteps=common.T, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                     clip_sample=False)
    ddpm = diffusers.DDPMScheduler(**common_kw, variance_type="fixed_small")
    ddim = diffusers.DDIMScheduler(**common_kw, set_alpha_to_one=True)
    return ddpm, ddim


@torch.no_grad()
def diffusers_ddpm(scheduler, net, shape, generator: torch.Generator) -> torch.Tensor:
    """A user's DDPM loop with diffusers: the initial state and every step's noise from ``generator``."""
    scheduler.set_timesteps(common.T)
    x = torch.randn(shape, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(net(x, t, None), t, x, generator=generator).prev_sample
    return x


@torch.no_grad()
def diffusers_ddim(scheduler, net, shape, generator: torch.Generator) -> torch.Tensor:
    """A user's deterministic DDIM loop with diffusers (eta = 0)."""
    scheduler.set_timesteps(common.DDIM_STEPS)
    x = torch.randn(shape, generator=generator)
    for t in scheduler.timesteps:
        x = scheduler.step(net(x, t, None), t, x, eta=0.0).prev_sample
    return x


def available() -> bool:
    try:
        import diffusers  # noqa: F401
    except ImportError:
        return False
    return True


def run(*, batch: int = 256, repeats: int = 5) -> list[dict]:
    ddpm_sched, ddim_sched = _schedulers()
    schedule = common.schedule()
    # a trained net, so that the samples are data-sized (an untrained one drifts to |x| ~ 1e3 over 1000
    # steps, where float32 alone separates the two loops): chapter 6's CFG net, shipped weights, unconditional
    net = zoo.load("muller_brown_cfg", retrain=False, progress=False).model
    shape = (batch, 2)
    pairs = {
        "ddpm": (lambda: sampling.ddpm_sample(net, shape, schedule, generator=common.generator()),
                 lambda: diffusers_ddpm(ddpm_sched, net, shape, common.generator()), common.T),
        "ddim": (lambda: sampling.ddim_sample(net, shape, schedule, num_steps=common.DDIM_STEPS,
                                              generator=common.generator()),
                 lambda: diffusers_ddim(ddim_sched, net, shape, common.generator()), common.DDIM_STEPS),
    }
    eps = torch.zeros(shape)

    def stored(x_t, t, cond):  # a model that costs nothing: what remains is the loop
        return eps

    loops = {
        "ddpm": (lambda: sampling.ddpm_sample(stored, shape, schedule, generator=common.generator()),
                 lambda: diffusers_ddpm(ddpm_sched, stored, shape, common.generator())),
        "ddim": (lambda: sampling.ddim_sample(stored, shape, schedule, num_steps=common.DDIM_STEPS,
                                              generator=common.generator()),
                 lambda: diffusers_ddim(ddim_sched, stored, shape, common.generator())),
    }
    out = []
    for name, (ours, theirs, steps) in pairs.items():
        # the agreement check doubles as the warm-up of both loops
        a, b = ours(), theirs()
        err = (a - b).abs().max().item()
        assert torch.allclose(a, b, rtol=RTOL, atol=ATOL), f"{name}: package and diffusers differ by {err:.2e}"
        runs = calls_for(theirs, 0.25, cap=20) if name == "ddim" else 1
        m = interleaved({"tutorial_pkg": (ours, runs), "diffusers": (theirs, runs)},
                        {"pkg/diffusers": lambda r: r["tutorial_pkg"] / r["diffusers"]},
                        repeats=repeats if name == "ddim" else max(3, repeats // 2), warmup=0)
        out.append(common.result(4, f"diffusers/{name}", f"{name.upper()} {steps} steps, tutorial_pkg / diffusers, "
                                 f"ch. 6 trained MLP, batch {batch}", m, "pkg/diffusers", target=TARGET,
                                 note=f"same samples for the same noise: max |difference| {err:.1e} "
                                      f"(allclose, rtol = atol = {RTOL:g})"))
        ours, theirs = loops[name]
        runs = calls_for(theirs, 0.25, cap=50)
        m = interleaved({"tutorial_pkg loop": (ours, runs), "diffusers loop": (theirs, runs)},
                        {"pkg/diffusers": lambda r: r["tutorial_pkg loop"] / r["diffusers loop"]}, repeats=repeats)
        out.append(common.result(4, f"diffusers/{name}/loop", f"{name.upper()} {steps} steps, the loops alone, "
                                 f"tutorial_pkg / diffusers, batch {batch}", m, "pkg/diffusers", target=TARGET,
                                 times={k: v / steps for k, v in m.times.items()},
                                 note="a model that returns a stored eps; times per step"))
    return out
