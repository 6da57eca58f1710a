"""CFG++, APG and CFG-Zero*: their limits, diffusers' guiders, the CFG++ authors' DDIM rule, and the quantity
(eps, x0, v, flow) a rule acts on."""

import diffusers
import pytest
import torch
from diffusers.guiders import AdaptiveProjectedGuidance, AutoGuidance, ClassifierFreeZeroStarGuidance
from diffusers.guiders.adaptive_projected_guidance import normalized_guidance
from diffusers.guiders.classifier_free_zero_star_guidance import cfg_zero_star_scale

from tutorial_pkg import guidance, sampling, schedules, variants
from tutorial_pkg.analytic import GaussianMixture

diffusers.utils.logging.set_verbosity_error()
S = schedules.linear_schedule(1000)
MIX = GaussianMixture([0.5, 0.5], [[-1.5, 0.5], [1.5, 0.0]], [[[0.4, 0.1], [0.1, 0.3]], [[0.3, 0.0], [0.0, 0.5]]])
EXACT = MIX.eps_model(S)


def pair(seed=0, shape=(4, 3, 4, 4), dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


class Stored:
    """An eps-model that returns stored (cond, uncond) predictions per step: diffusers' guiders see the same."""

    null_value = -1

    def __init__(self, preds):
        self.preds = preds

    def __call__(self, x_t, t, cond):
        c, u = self.preds[t]
        return torch.cat([c, u]) if len(cond) == 2 * len(c) else c


# -- limits: each variant is plain CFG in its limit ----------------------------------------------------
def test_every_variant_reduces_to_cfg():
    c, u = pair()
    for form in ("paper", "diffusers"):
        assert torch.allclose(variants.apg(c, u, 3.0, eta=1.0, form=form), guidance.cfg(c, u, 3.0), atol=1e-5)
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    ref = guidance.cfg_model(EXACT, 3.0)(x, 400, y)
    zs = variants.cfg_zero_star_model(EXACT, 3.0, zero_init_steps=0, optimized_scale=False, quantity="eps")
    assert torch.allclose(zs(x, 400, y), ref, atol=1e-12)
    for q in variants.QUANTITIES:
        apg = variants.apg_model(EXACT, 3.0, eta=1.0, quantity=q, schedule=S)
        assert torch.allclose(apg(x, 400, y), ref, atol=1e-10)
    # CFG++ with lam_t = gamma (sigma_t - sigma_prev) / sigma_t is DDIM-CFG at gamma, eq. (cfgpp-omega)
    sig = lambda t: 0.0 if t < 0 else ((1 - S.value("alpha_bars", t)) / S.value("alpha_bars", t)) ** 0.5
    steps = dict(sampling.sampler_steps(S, sampler="ddim", num_steps=20))
    pp = variants.cfgpp_model(EXACT, lambda t: 3.0 * (sig(t) - sig(steps[t])) / sig(t), S, num_steps=20)
    x_T = torch.randn(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    a = sampling.ddim_sample(pp, (6, 2), S, num_steps=20, cond=y, x_T=x_T)
    b = sampling.ddim_sample(guidance.cfg_model(EXACT, 3.0), (6, 2), S, num_steps=20, cond=y, x_T=x_T)
    assert torch.allclose(a, b, atol=1e-10)


# -- APG against diffusers ---------------------------------------------------------------------------
@pytest.mark.parametrize("eta, r", [(0.0, None), (0.3, 2.0), (1.0, 0.5)])
def test_apg_equals_diffusers_normalized_guidance_both_forms(eta, r):
    c, u = pair(1)
    gamma = 4.0
    paper = variants.apg(c, u, gamma, eta=eta, norm_threshold=r, form="paper")
    ours = variants.apg(c, u, gamma, eta=eta, norm_threshold=r, form="diffusers")
    kw = dict(eta=eta, norm_threshold=0.0 if r is None else r)
    ref_orig = normalized_guidance(c, u, gamma - 1.0, use_original_formulation=True, **kw)
    ref_default = normalized_guidance(c, u, gamma, use_original_formulation=False, **kw)
    assert torch.allclose(paper, ref_orig, atol=1e-5) and torch.allclose(ours, ref_default, atol=1e-5)
    if eta != 1.0 or r is not None:
        assert (paper - ours).abs().max() > 1e-2           # the two forms differ off the CFG limit


@pytest.mark.parametrize("original", [True, False])
def test_apg_model_with_momentum_and_clip_equals_the_diffusers_guider_and_resets(original):
    ts = [900, 600, 300, 100]
    preds = {t: pair(10 + t) for t in ts}
    gamma, beta, r, eta = 3.0, -0.5, 4.0, 0.2
    model = variants.apg_model(Stored(preds), gamma, eta=eta, norm_threshold=r, momentum=beta,
                               form="paper" if original else "diffusers", quantity="eps")
    guider = AdaptiveProjectedGuidance(guidance_scale=gamma - 1.0 if original else gamma,
                                       adaptive_projected_guidance_momentum=beta,
                                       adaptive_projected_guidance_rescale=r, eta=eta,
                                       use_original_formulation=original)
    x, cond = torch.zeros(4, 3, 4, 4), torch.zeros(4)
    outs = []
    for run in range(2):                                     # a second run must not inherit the momentum
        for i, t in enumerate(ts):
            guider.set_state(step=i, num_inference_steps=len(ts), timestep=torch.tensor(t))
            guider.prepare_inputs({})                        # at step 0 diffusers makes a fresh momentum buffer
            ref = guider.forward(*preds[t]).pred
            out = model(x, t, cond)
            assert torch.allclose(out, ref, atol=1e-5), (run, t)
            outs.append(out)
    assert torch.equal(outs[0], outs[4]) and torch.equal(outs[3], outs[7])
    # the momentum matters: without it the later steps differ
    plain = variants.apg_model(Stored(preds), gamma, eta=eta, norm_threshold=r,
                               form="paper" if original else "diffusers", quantity="eps")
    assert (plain(x, ts[1], cond) - outs[1]).abs().max() > 1e-2
    model.reset()
    assert torch.equal(model(x, ts[2], cond), plain(x, ts[2], cond))   # after reset(): a first step again


# -- CFG-Zero* and autoguidance against diffusers ----------------------------------------------------
def test_cfg_zero_star_equals_diffusers():
    c, u = pair(2)
    assert torch.allclose(variants.zero_star_scale(c, u).flatten(),
                          cfg_zero_star_scale(c.flatten(1), u.flatten(1)).flatten(), atol=1e-6)
    gamma = 5.0
    ours = variants.cfg_zero_star(c, u, gamma)
    for original, gs in ((False, gamma), (True, gamma - 1.0)):        # both forms coincide at gs = gamma - 1
        guider = ClassifierFreeZeroStarGuidance(guidance_scale=gs, zero_init_steps=1, use_original_formulation=original)
        guider.set_state(step=3, num_inference_steps=10, timestep=torch.tensor(500))
        assert torch.allclose(ours, guider.forward(c, u).pred, atol=1e-5)
    assert (ours - guidance.cfg(c, u, gamma)).abs().max() > 1e-2
    # the model on eps: zeros at the first step of each run, then eq. (cfg-zero-star)
    ts = [800, 500, 200]
    preds = {t: pair(20 + t) for t in ts}
    model = variants.cfg_zero_star_model(Stored(preds), gamma, zero_init_steps=1, quantity="eps")
    guider = ClassifierFreeZeroStarGuidance(guidance_scale=gamma, zero_init_steps=1)
    for run in range(2):
        for i, t in enumerate(ts):
            guider.set_state(step=i, num_inference_steps=len(ts), timestep=torch.tensor(t))
            assert torch.allclose(model(torch.zeros(4, 3, 4, 4), t, torch.zeros(4)),
                                  guider.forward(*preds[t]).pred, atol=1e-5), (run, t)


def test_autoguidance_equals_diffusers_auto_guidance():
    x = torch.randn(8, 2)
    strong = lambda x_t, t, c: torch.sin(x_t + t / 100) + c[:, None]
    weak = lambda x_t, t, c: 0.5 * x_t - 0.1 * c[:, None]
    cond = torch.arange(8.0)
    ag = AutoGuidance(guidance_scale=2.5, auto_guidance_layers=[0], dropout=1.0)
    ag.set_state(step=3, num_inference_steps=10, timestep=torch.tensor(300))
    ref = ag.forward(strong(x, 300, cond), weak(x, 300, cond)).pred
    assert torch.allclose(guidance.autoguidance_model(strong, weak, 2.5)(x, 300, cond), ref, atol=1e-6)


# -- CFG++ against its authors' DDIM rule --------------------------------------------------------------
def test_cfgpp_equals_the_authors_ddim_update():
    lam, y = 0.6, torch.tensor([0, 1, 1, 0, 1])
    x_T = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    steps = sampling.sampler_steps(S, sampler="ddim", num_steps=25)
    zt = x_T.clone()
    for t, t_prev in steps:                   # CFGpp latent_diffusion.py, BaseDDIMCFGpp.sample, l.659-666
        at, at_prev = S.alpha_bars[t], (S.alpha_bars[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64))
        noise_uc, noise_c = EXACT(zt, t, torch.full_like(y, -1)), EXACT(zt, t, y)
        noise_pred = noise_uc + lam * (noise_c - noise_uc)
        z0t = (zt - (1 - at).sqrt() * noise_pred) / at.sqrt()
        zt = at_prev.sqrt() * z0t + (1 - at_prev).sqrt() * noise_uc
    model = variants.cfgpp_model(EXACT, lam, S, num_steps=25)
    ours = sampling.ddim_sample(model, (5, 2), S, num_steps=25, cond=y, x_T=x_T)
    assert torch.allclose(ours, zt, atol=1e-10, rtol=0)
    again = sampling.ddim_sample(model, (5, 2), S, num_steps=25, cond=y, x_T=x_T)       # a second run
    assert torch.equal(ours, again)
    plain = sampling.ddim_sample(guidance.cfg_model(EXACT, lam), (5, 2), S, num_steps=25, cond=y, x_T=x_T)
    assert (plain - zt).abs().max() > 1e-2                  # not CFG at lam
    with pytest.raises(ValueError, match="grid"):
        sampling.ddim_sample(model, (5, 2), S, num_steps=50, cond=y, x_T=x_T)
    with pytest.raises(TypeError, match="t must"):
        model(x_T, torch.full((5,), 960), y)


def test_cfgpp_scale_is_lam_sigma_ratio_and_exact_moments_follow_the_sampler():
    for t, t_prev in sampling.sampler_steps(S, sampler="ddim", num_steps=10):
        sig = lambda s: 0.0 if s < 0 else ((1 - S.value("alpha_bars", s)) / S.value("alpha_bars", s)) ** 0.5
        assert variants.cfgpp_scale(S, t, t_prev, 0.5) == pytest.approx(0.5 * sig(t) / (sig(t) - sig(t_prev)), rel=1e-12)
    # DDIM (eta = 0) is affine in x_T: two start points give the map, whose moments from N(0, 1) are exact
    two = lambda x_t, t, c: torch.where((c == 1)[:, None], 0.0 * x_t, 0.0 * x_t) + torch.where(
        (c == 1)[:, None], (1 - S.alpha_bar(t, x_t)).sqrt() * (x_t - S.alpha_bar(t, x_t).sqrt()) / (
            S.alpha_bar(t, x_t) * 0.25 + 1 - S.alpha_bar(t, x_t)), (1 - S.alpha_bar(t, x_t)).sqrt() * x_t)
    two.null_value = 0
    model = variants.cfgpp_model(two, 0.4, S, num_steps=30)
    out = sampling.ddim_sample(model, (2, 1), S, num_steps=30, cond=torch.ones(2, dtype=torch.long),
                               x_T=torch.tensor([[0.0], [1.0]], dtype=torch.float64))
    M, V = sampling.gaussian_sampler_moments(1.0, 0.25, S, sampler="ddim", num_steps=30, gamma=model.scale_at,
                                             mean_u=0.0, var_u=1.0)
    assert abs(M - out[0, 0]) < 1e-10 and abs(V - (out[1, 0] - out[0, 0]) ** 2) < 1e-10


# -- eps, x0, v or flow ------------------------------------------------------------------------------
def test_linear_cfg_is_the_same_on_every_quantity_and_the_nonlinear_rules_are_not():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 8, generator=g, dtype=torch.float64)
    e_c, e_u = torch.randn(16, 8, generator=g, dtype=torch.float64), torch.randn(16, 8, generator=g, dtype=torch.float64)
    t = 700
    rules = {"cfg": lambda c, u: guidance.cfg(c, u, 4.0),
             "rescale": lambda c, u: guidance.rescale_cfg(guidance.cfg(c, u, 4.0), c, 0.7),
             "apg": lambda c, u: variants.apg(c, u, 4.0, eta=0.0),
             "cfg-zero*": lambda c, u: variants.cfg_zero_star(c, u, 4.0)}
    out = {(name, q): variants.guide_in(rule, e_c, e_u, x, t, S, quantity=q)
           for name, rule in rules.items() for q in variants.QUANTITIES}
    for q in variants.QUANTITIES:
        assert torch.allclose(out["cfg", q], guidance.cfg(e_c, e_u, 4.0), atol=1e-10)
    for name in ("rescale", "apg", "cfg-zero*"):
        for q in ("x0", "v", "flow"):
            assert (out[name, q] - out[name, "eps"]).abs().max() > 1e-2, (name, q)
