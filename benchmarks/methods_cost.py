"""5-7. What the later chapters' methods cost: guidance through x0_hat, the CFG variants, and SMC.

Every run is a 50-step DDIM (SMC: its DDIM eta = 1 proposal on the same 50 steps) of chapter 6's trained
Müller-Brown network (shipped weights), at the batch of the chapters' figures, against the same sampler
unguided or with plain CFG, timed interleaved in the same repeats. Each row's note gives the network passes
per sample that ``models.Counted`` counts in one run, so that a ratio can be read against what it should be.

5. Guidance through x0_hat (chapter 9): DPS, PiGDM, TMPD and MMPS for a linear observation y = A x_0 + noise
   (A one row, dy = 1, and A = I, dy = 2), and energy guidance by the Müller-Brown potential (MMPS and DPS
   forms), over unguided sampling. Each needs a backward pass through the eps-network per step; TMPD two,
   MMPS dy.
6. CFG variants (chapter 9b): CFG++, APG and CFG-Zero* over plain CFG at the same two-branch cost.
7. SMC (chapter 10): the Feynman-Kac corrector over the same guided proposal without weights, per particle,
   and per effective sample (the run's time over the final effective sample size, against the plain sampler's
   time over its batch).
"""

from __future__ import annotations

import torch

from tutorial_pkg import guidance, models, sampling, smc, tweedie, variants, zoo
from tutorial_pkg.systems.muller_brown import MullerBrown

import common
from timing import calls_for, interleaved

BATCH = 256
GAMMA = 3.0
SIGMA_Y = 1.0   # wide enough that the 50-step DPS run is stable (chapter 9: stiffness)


def _net():
    return zoo.load("muller_brown_cfg", retrain=False, progress=False).model


def _passes(make, cond, schedule) -> str:
    """Network passes per sample in one run: forward rows and backward rows over the batch, from models.Counted."""
    counted = models.Counted(_net())
    sampling.ddim_sample(make(counted), (BATCH, 2), schedule, num_steps=common.DDIM_STEPS, cond=cond,
                         generator=common.generator())
    fwd, bwd = counted.rows / BATCH, counted.backward_rows / BATCH
    return f"{fwd:.0f} forward" + (f" + {bwd:.0f} backward" if bwd else "") + " passes per sample"


def _sampler(model, cond, schedule):
    return lambda: sampling.ddim_sample(model, (BATCH, 2), schedule, num_steps=common.DDIM_STEPS, cond=cond,
                                        generator=common.generator())


def _unguided(e):
    """The unconditional branch, as the guidance-through-x0 wrappers call it (they pass no condition)."""
    return lambda x_t, t, cond: e(x_t, t, None)


def _compare(part: int, key: str, label: str, baseline: tuple[str, object], methods: dict, cond, schedule,
             repeats: int) -> list[dict]:
    """Each method against the baseline sampler, all timed in the same interleaved repeats."""
    base_name, base_make = baseline
    net = _net()
    parts = {base_name: (_sampler(base_make(net), cond, schedule), 1)}
    parts.update({name: (_sampler(make(net), cond, schedule), 1) for name, make in methods.items()})
    for fn, _ in parts.values():   # the guided runs must run: an error here is a bug, not a cost
        fn()
    m = interleaved(parts, {name: (lambda r, n=name: r[n] / r[base_name]) for name in methods}, repeats=repeats,
                    warmup=0)
    base_passes = _passes(base_make, cond, schedule)
    out = []
    for name, make in methods.items():
        out.append(common.result(part, f"{key}/{name}", f"DDIM {common.DDIM_STEPS} steps, {name} / {base_name}, "
                                 f"{label}, batch {BATCH}", m, name,
                                 times={base_name: m.times[base_name], name: m.times[name]},
                                 note=f"{name}: {_passes(make, cond, schedule)}; {base_name}: {base_passes}"))
    return out


def through_x0(repeats: int) -> list[dict]:
    schedule = common.schedule()
    data = zoo.muller_brown_data()
    mb = MullerBrown()
    a_row = torch.tensor([[1.0, 0.5]])
    eye = torch.eye(2)
    y1 = torch.full((BATCH, 1), 0.3)
    y2 = torch.full((BATCH, 2), 0.3)
    box_lo, box_hi = (torch.tensor(b, dtype=torch.float32) for b in zip(*mb.box))

    def V(x0):  # chapter 9's potential at x0_hat, clipped to the box of the data
        x = data.unstandardize(x0)
        return mb.energy(torch.minimum(torch.maximum(x, box_lo.to(x)), box_hi.to(x)))

    energy = torch.full((BATCH,), -100.0)
    gauss = lambda x0, y: -0.5 * (((y - x0 @ a_row.T) / SIGMA_Y) ** 2).sum(-1)
    linear = {
        "DPS": lambda e: tweedie.dps_model(e, gauss, schedule),
        "PiGDM": lambda e: tweedie.pigdm_model(e, a_row, SIGMA_Y, schedule),
        "TMPD": lambda e: tweedie.tmpd_model(e, a_row, SIGMA_Y, schedule),
        "MMPS": lambda e: tweedie.mmps_model(e, a_row, SIGMA_Y, schedule),
    }
    out = _compare(5, "x0/linear", "y = A x0 + noise, dy = 1", ("unguided", _unguided), linear, y1, schedule,
                   repeats)
    out += _compare(5, "x0/linear2", "y = x0 + noise, dy = 2", ("unguided", _unguided),
                    {"MMPS": lambda e: tweedie.mmps_model(e, eye, SIGMA_Y, schedule),
                     "TMPD": lambda e: tweedie.tmpd_model(e, eye, SIGMA_Y, schedule)}, y2, schedule, repeats)
    out += _compare(5, "x0/energy", "Müller-Brown energy band, tau = 1", ("unguided", _unguided),
                    {"energy guidance (MMPS)": lambda e: tweedie.energy_guided_model(e, V, schedule, 1.0),
                     "energy guidance (DPS)": lambda e: tweedie.energy_guided_model(e, V, schedule, 1.0,
                                                                                    covariance=False)},
                    energy, schedule, repeats)
    return out


def cfg_variants(repeats: int) -> list[dict]:
    schedule = common.schedule()
    cond = torch.full((BATCH,), -100.0)
    methods = {
        "CFG++": lambda e: variants.cfgpp_model(e, 0.6, schedule, num_steps=common.DDIM_STEPS),
        "APG": lambda e: variants.apg_model(e, GAMMA, schedule=schedule),
        "CFG-Zero*": lambda e: variants.cfg_zero_star_model(e, GAMMA, quantity="eps"),
    }
    return _compare(6, "variants", "energy condition E* = -100", ("CFG", lambda e: guidance.cfg_model(e, GAMMA)),
                    methods, cond, schedule, repeats)


def smc_cost(repeats: int) -> list[dict]:
    """The Feynman-Kac corrector (one system of BATCH particles) against the same guided proposal without weights
    (DDIM eta = 1 on the same steps): per particle, and per effective sample at the end."""
    schedule = common.schedule()
    net = _net()
    guided = guidance.cfg_model(net, GAMMA)
    cond = torch.full((BATCH,), -100.0)
    steps = sampling.ddim_timesteps(common.T, common.DDIM_STEPS)
    last = {}

    def run_smc():
        last["result"] = smc.smc_sample(guided, (BATCH, 2), schedule, cond=cond, timesteps=steps,
                                        generator=common.generator())

    def run_plain():
        sampling.ddim_sample(guided, (BATCH, 2), schedule, timesteps=steps, eta=1.0, cond=cond,
                             generator=common.generator())

    run_smc()
    weights = last["result"].log_weights.softmax(0)
    ess_end = float(1.0 / (weights ** 2).sum())
    m = interleaved({"guided DDIM eta = 1": (run_plain, 1), "SMC": (run_smc, 1)},
                    {"per particle": lambda r: r["SMC"] / r["guided DDIM eta = 1"],
                     "per effective sample": lambda r: (r["SMC"] / ess_end) / (r["guided DDIM eta = 1"] / BATCH)},
                    repeats=repeats, warmup=0)
    label = f"SMC / guided DDIM eta = 1, CFG gamma = {GAMMA:g}, {common.DDIM_STEPS} steps, one system of {BATCH} particles"
    return [common.result(7, "smc/particle", f"{label}, per particle, batch {BATCH}", m, "per particle",
                          note="the weights (||eps_c - eps_u||^2 per step) and resampling over the same proposal"),
            common.result(7, "smc/effective", f"{label}, per effective sample, batch {BATCH}", m,
                          "per effective sample",
                          note=f"final effective sample size {ess_end:.0f} of {BATCH} particles in the first run")]


def run(*, repeats: int = 5, part: int) -> list[dict]:
    return {5: through_x0, 6: cfg_variants, 7: smc_cost}[part](repeats)
