"""1. Sampler overhead: how much a sampling loop costs beyond the network evaluations it makes.

ratio = sampler time / (number of network evaluations x time of one bare forward pass at that batch),
with the forward pass under ``torch.no_grad`` as inside the samplers. 1.0 means the loop costs nothing
beyond the network; the rest is the per-step arithmetic, noise, argument checks and the finiteness check.
The loop's own cost is also timed alone, with a model that returns a stored eps, which predicts the ratio
independently of the load on the machine during the (much longer) network evaluations.
"""

from __future__ import annotations

import torch

from tutorial_pkg import sampling

import common
from timing import calls_for, interleaved

TARGET = 1.05
FLOOR = 1.0          # the loop cannot cost less than the network evaluations it makes


def _loop_cost(name: str, batch: int, schedule, repeats: int = 5) -> float:
    """Seconds of one whole sampling run whose model costs nothing (it returns a stored eps): the loop alone."""
    eps = torch.zeros(batch, 2)

    def stored(x_t, t, cond):
        return eps

    def sample():
        if name == "ddpm":
            return sampling.ddpm_sample(stored, (batch, 2), schedule, generator=common.generator())
        return sampling.ddim_sample(stored, (batch, 2), schedule, num_steps=common.DDIM_STEPS,
                                    generator=common.generator())

    return interleaved({"loop": (sample, 1)}, {}, repeats=repeats).times["loop"]


def run(*, batch: int = 1024, repeats: int = 5) -> list[dict]:
    schedule = common.schedule()
    out = []
    for size in common.NET_SIZES:
        net = common.eps_net(size)
        x = torch.randn(batch, 2, generator=common.generator(1))
        t = torch.full((batch,), common.T // 2, dtype=torch.long)

        def forward():
            with torch.no_grad():
                net(x, common.T // 2, None)       # as a sampler calls it: t an int

        number = calls_for(forward, 0.25)
        # DDIM first: its warm-up call (in calls_for) warms the code that DDPM's 1000 steps then run without one
        samplers = {
            "ddim": (common.DDIM_STEPS, lambda: sampling.ddim_sample(net, (batch, 2), schedule, num_steps=common.DDIM_STEPS,
                                                                    generator=common.generator())),
            "ddpm": (schedule.T, lambda: sampling.ddpm_sample(net, (batch, 2), schedule, generator=common.generator())),
        }
        for name, (evals, sample) in samplers.items():
            # DDIM: as many runs as fill the forward block's time; DDPM: one run, already seconds long
            runs = calls_for(sample, 0.25, cap=20) if name == "ddim" else 1
            m = interleaved({"forward": (forward, number), "sampler": (sample, runs)},
                            {"overhead": lambda r, n=evals: r["sampler"] / (n * r["forward"])},
                            repeats=2 * repeats if name == "ddim" else max(3, repeats // 2),
                            warmup=0)
            loop = _loop_cost(name, batch, schedule) / evals
            label = f"{name.upper()} {evals} steps, {size}, batch {batch}"
            out.append(common.result(1, f"overhead/{name}/{size}", label, m, "overhead", target=TARGET, floor=FLOOR,
                                     times={**m.times, "loop alone per step": loop},
                                     note=f"{evals} network evaluations; the least times of the repeats give "
                                          f"{m.least_ratios['overhead']:.3f}; the loop alone, with a model that "
                                          f"returns a stored eps, predicts 1 + loop / forward = "
                                          f"{1 + loop / m.least['forward']:.3f}"))
    return out
