"""3. Classifier guidance: the guided sampler against the unguided one, with the predictor's cost broken out.

Each step of a classifier-guided sampler evaluates the eps-model once and the predictor once forward and
once backward (``guidance.grad_log_likelihood``). The expected ratio guided / unguided is therefore
(eps forward + predictor forward-and-backward) / eps forward, which the run prints beside the measured one.
"""

from __future__ import annotations

import torch

from tutorial_pkg import guidance, nets, sampling

import common
from timing import calls_for, interleaved

SCALE = 2.0


def _predictor(size: str):
    """Chapter 3 guides with a label classifier of the default size; chapter 6 with an energy regressor."""
    torch.manual_seed(0)
    kw = common.NET_SIZES[size]
    if not kw:
        return nets.NoiseAwareClassifier(2, 3, **kw).eval(), "NoiseAwareClassifier"
    return nets.NoiseAwareRegressor(2, **kw).eval(), "NoiseAwareRegressor"


def run(*, batch: int = 256, repeats: int = 5) -> list[dict]:
    schedule = common.schedule()
    out = []
    for size in common.NET_SIZES:
        eps = common.eps_net(size)
        predictor, name = _predictor(size)
        g = common.generator(2)
        target = (torch.randint(0, 3, (batch,), generator=g) if name == "NoiseAwareClassifier"
                  else torch.randn(batch, generator=g))
        x = torch.randn(batch, 2, generator=common.generator(1))
        t = torch.full((batch,), common.T // 2, dtype=torch.long)
        guided = guidance.classifier_guided_model(eps, predictor, schedule, scale=SCALE)

        @torch.no_grad()
        def eps_forward():
            eps(x, t, None)

        @torch.no_grad()
        def predictor_forward():
            predictor.log_prob(x, t, target)

        def predictor_backward():
            guidance.grad_log_likelihood(predictor, x, t, target)

        number = calls_for(predictor_backward, 0.2)
        m = interleaved({"eps forward": (eps_forward, number), "predictor forward": (predictor_forward, number),
                         "predictor forward+backward": (predictor_backward, number)},
                        {"expected": lambda r: 1 + r["predictor forward+backward"] / r["eps forward"],
                         "fb/f": lambda r: r["predictor forward+backward"] / r["predictor forward"]},
                        repeats=repeats)
        out.append(common.result(3, f"classifier/backward/{size}",
                                 f"{name} forward+backward / forward, {size}, batch {batch}", m, "fb/f",
                                 note="the backward pass a guided step adds to the predictor's forward pass"))
        expected = m.ratios["expected"][0]
        parts = dict(m.times)

        def sample(model):
            return lambda: sampling.ddim_sample(model, (batch, 2), schedule, num_steps=common.DDIM_STEPS, cond=target,
                                                generator=common.generator())

        unguided = sample(lambda x_t, t_, c: eps(x_t, t_, None))
        runs = calls_for(unguided, 0.25, cap=20)
        m = interleaved({"unguided": (unguided, runs), "guided": (sample(guided), runs)},
                        {"guided/unguided": lambda r: r["guided"] / r["unguided"]}, repeats=repeats)
        out.append(common.result(3, f"classifier/sampler/{size}",
                                 f"DDIM {common.DDIM_STEPS} steps, classifier-guided / unguided, {size}, batch {batch}",
                                 m, "guided/unguided", times={**parts, **m.times},
                                 note=f"expected from the parts, 1 + (predictor fwd+bwd) / (eps fwd): {expected:.2f}"))
    return out
