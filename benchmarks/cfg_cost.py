"""2. Classifier-free guidance: one batched pass of 2B rows against two passes of B, and the sampler cost.

``guidance.cfg_model`` evaluates the conditional and the unconditional branch in one forward pass of 2B
rows. If the network is latency-bound (its time does not grow with the batch), that pass costs one
network evaluation and CFG is free: the floor 1.0. If it is compute-bound (time proportional to rows),
it costs two: the floor 2.0. ``position`` says where between the two a net sits, 0 % = 1.0, 100 % = 2.0.
"""

from __future__ import annotations

import torch

from tutorial_pkg import guidance, sampling

import common
from timing import calls_for, interleaved, verdict

# CFG sampling cannot cost less than the network's own pass at 2B rows over its pass at B, measured in the same
# run on the same machine (the floor); the target allows 5 % above it for the guidance arithmetic and the
# concatenation of the two branches
SAMPLER_MARGIN = 0.05
GAMMA = 3.0
# a guidance interval (Kynkäänniemi et al. 2024, chapter 8): CFG for package steps 100..600 only
INTERVAL = (100, 600)
INTERVAL_BATCH = 4096       # large enough that a network of chapter 6's size costs nearly twice at 2B rows
INTERVAL_TOLERANCE = 0.05


def _cond(net, batch: int) -> torch.Tensor:
    g = common.generator(2)
    if net.cond_kind == "label":
        return torch.randint(0, 3, (batch,), generator=g)
    return torch.randn(batch, generator=g)


def run(*, batch: int = 256, repeats: int = 5) -> list[dict]:
    schedule = common.schedule()
    out = []
    for size in common.NET_SIZES:
        # chapters 2 and 5 guide a label net; chapter 6 an energy net
        kind = {"cond": "label", "num_classes": 3} if not common.NET_SIZES[size] else {"cond": "energy"}
        net = common.eps_net(size, **kind)
        guided = guidance.cfg_model(net, GAMMA)
        x = torch.randn(batch, 2, generator=common.generator(1))
        t = torch.full((batch,), common.T // 2, dtype=torch.long)
        cond = _cond(net, batch)
        null = torch.full_like(cond, net.null_value)
        x2, t2, cond2 = torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, null])

        @torch.no_grad()
        def one_pass():
            guided(x, t, cond)

        @torch.no_grad()
        def two_passes():
            guidance.cfg(net(x, t, cond), net(x, t, null), GAMMA)

        @torch.no_grad()
        def forward_b():
            net(x, t, cond)

        @torch.no_grad()
        def forward_2b():
            net(x2, t2, cond2)

        number = calls_for(two_passes, 0.2)
        m = interleaved({"forward B": (forward_b, number), "forward 2B": (forward_2b, number),
                         "cfg one pass (2B)": (one_pass, number), "cfg two passes (B+B)": (two_passes, number)},
                        {"one/two": lambda r: r["cfg one pass (2B)"] / r["cfg two passes (B+B)"],
                         "2B/B": lambda r: r["forward 2B"] / r["forward B"]}, repeats=repeats)
        out.append(common.result(2, f"cfg/pass/{size}", f"CFG one pass (2B) / two passes, {size}, batch {batch}",
                                 m, "one/two", note="below 1: batching the two branches saves time"))
        scaling = m.ratios["2B/B"][0]
        out.append(common.result(2, f"cfg/scaling/{size}", f"forward at 2B / forward at B, {size}, batch {batch}",
                                 m, "2B/B", times={k: m.times[k] for k in ("forward B", "forward 2B")},
                                 note=f"position between the floors 1.0 and 2.0: {100 * (scaling - 1):.0f} %"))

        def sample(model):
            return lambda: sampling.ddim_sample(model, (batch, 2), schedule, num_steps=common.DDIM_STEPS, cond=cond,
                                                generator=common.generator())

        runs = calls_for(sample(net), 0.25, cap=20)
        # the floor is measured in the same repeats as the samplers, so that load hits both alike
        m = interleaved({"forward B": (forward_b, number), "forward 2B": (forward_2b, number),
                         "conditional only": (sample(net), runs), "CFG": (sample(guided), runs)},
                        {"cfg/cond": lambda r: r["CFG"] / r["conditional only"],
                         "2B/B": lambda r: r["forward 2B"] / r["forward B"],
                         "excess": lambda r: (r["CFG"] / r["conditional only"]) / (r["forward 2B"] / r["forward B"])},
                        repeats=repeats, targets={"excess": 1 + SAMPLER_MARGIN})
        ratio, floor = m.ratios["cfg/cond"][0], m.intervals["2B/B"][0]
        target = floor * (1 + SAMPLER_MARGIN)
        row = common.result(2, f"cfg/sampler/{size}",
                            f"DDIM {common.DDIM_STEPS} steps, CFG / conditional only, {size}, batch {batch}",
                            m, "cfg/cond", target=target, floor=floor,
                            note=f"floor: this network's pass at 2B over its pass at B, {floor:.2f} in the same repeats; "
                                 f"target: 5 % above it; CFG over its floor {m.intervals['excess'][0]:.3f} "
                                 f"[{m.intervals['excess'][1]:.3f}, {m.intervals['excess'][2]:.3f}]")
        # the verdict is that of the ratio to its own floor, per repeat: the floor is measured, not a constant
        row["verdict"] = verdict(m.intervals["excess"], 1 + SAMPLER_MARGIN)
        out.append(row)
    out.extend(_interval(repeats))
    return out


def _interval(repeats: int) -> list[dict]:
    """CFG inside a guidance interval against conditional sampling: a step outside the interval evaluates the
    conditional branch only, so the run should cost (1 - share) + share x r times the conditional run, where r is
    what a CFG step costs against a conditional one (2 for a compute-bound network). r is measured in the same
    repeats, and so is the network's own pass at 2B rows against B, which is what r comes from."""
    schedule, batch = common.schedule(), INTERVAL_BATCH
    size = "ch. 6 MLP (hidden 128, depth 3)"
    net = common.eps_net(size, cond="energy")
    cond = _cond(net, batch)
    steps = sampling.ddim_timesteps(common.T, common.DDIM_STEPS)
    share = sum(INTERVAL[0] <= t <= INTERVAL[1] for t in steps) / len(steps)
    models = {"conditional only": net, "CFG in the interval": guidance.cfg_model(net, guidance.guidance_interval(GAMMA, *INTERVAL)),
              "CFG at every step": guidance.cfg_model(net, GAMMA)}
    x = torch.randn(batch, 2, generator=common.generator(1))
    t = torch.full((batch,), common.T // 2, dtype=torch.long)
    x2, t2, cond2 = torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, torch.full_like(cond, net.null_value)])

    def sample(model):
        return lambda: sampling.ddim_sample(model, (batch, 2), schedule, num_steps=common.DDIM_STEPS, cond=cond,
                                            generator=common.generator())

    @torch.no_grad()
    def forward_b():
        net(x, t, cond)

    @torch.no_grad()
    def forward_2b():
        net(x2, t2, cond2)

    def predicted(r):
        return 1 + share * (r["CFG at every step"] / r["conditional only"] - 1)

    parts = {name: (sample(model), 1) for name, model in models.items()}
    parts.update({"forward B": (forward_b, 10), "forward 2B": (forward_2b, 10)})
    m = interleaved(parts, {"interval/cond": lambda r: r["CFG in the interval"] / r["conditional only"],
                            "full/cond": lambda r: r["CFG at every step"] / r["conditional only"],
                            "2B/B": lambda r: r["forward 2B"] / r["forward B"],
                            "measured/predicted": lambda r: r["CFG in the interval"] / r["conditional only"] / predicted(r)},
                    repeats=repeats, targets={"measured/predicted": 1 + INTERVAL_TOLERANCE})
    full, scaling = m.intervals["full/cond"][0], m.intervals["2B/B"]
    expected = 1 + share * (full - 1)
    row = common.result(2, "cfg/interval", f"DDIM {common.DDIM_STEPS} steps, CFG in steps {INTERVAL[0]}-{INTERVAL[1]} / "
                                           f"conditional only, {size}, batch {batch}", m, "interval/cond",
                        target=expected * (1 + INTERVAL_TOLERANCE), floor=expected * (1 - INTERVAL_TOLERANCE),
                        times={k: m.times[k] for k in models},
                        note=f"{share:.0%} of the steps inside, where a CFG step costs r = {full:.2f} conditional steps "
                             f"(measured in the same repeats): predicted 1 + {share:.2f} x (r - 1) = {expected:.2f}, "
                             f"target within {INTERVAL_TOLERANCE:.0%}")
    low, high = m.intervals["measured/predicted"][1:]
    row["verdict"] = ("PASS" if 1 - INTERVAL_TOLERANCE <= low and high <= 1 + INTERVAL_TOLERANCE else
                      "MISS" if high < 1 - INTERVAL_TOLERANCE or low > 1 + INTERVAL_TOLERANCE else "not resolved")
    why = common.result(2, "cfg/interval/scaling", f"forward at 2B / forward at B, {size}, batch {batch}", m, "2B/B",
                        times={k: m.times[k] for k in ("forward B", "forward 2B")},
                        note=f"the network's own pass at {2 * batch} rows against {batch}: {scaling[0]:.2f} "
                             f"[{scaling[1]:.2f}, {scaling[2]:.2f}], beside r = {full:.2f} for a whole CFG step")
    return [row, why]
