"""The model contract: wrappers that stack, any condition, the mean form only where it fits, no work in the loop.

Every test here failed against the first edition of the contract: CFG refused a stack of wrappers and a
vector condition, the mean form ran silently under the wrong sampler, the networks broke ``torch.compile``'s
graph at every value check, and a guidance interval evaluated both branches at every step.
"""

from __future__ import annotations

import itertools
import pathlib
import re

import pytest
import torch

import tutorial_pkg
from tutorial_pkg import grading, guidance, models, nets, sampling, schedules
from tutorial_pkg.analytic import GaussianMixture

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s():
    return schedules.linear_schedule(60)


@pytest.fixture(scope="module")
def mixture():
    return GaussianMixture([0.4, 0.6], [[-1.5, 0.3], [1.2, -0.4]], [[[0.3, 0.1], [0.1, 0.4]], [[0.5, -0.1], [-0.1, 0.2]]])


def _nets():
    torch.manual_seed(0)
    return (nets.MLPEpsModel(2, cond="label", num_classes=2).eval(), nets.MLPEpsModel(2, hidden=16, cond="label",
                                                                                      num_classes=2).eval(),
            nets.NoiseAwareClassifier(2, 2).eval())


# -- wrappers stack ------------------------------------------------------------------------------------
def _wrappers(s, classifier, weak):
    """name -> function wrapping a model; whether the wrapper fits DDIM too (the mean form does not)."""
    return {
        "cfg": (lambda m: guidance.cfg_model(m, 2.0), True),
        "cfg interval": (lambda m: guidance.cfg_model(m, guidance.guidance_interval(2.0, 10, 40)), True),
        "cfg rescale": (lambda m: guidance.cfg_model(m, 2.0, rescale=0.7), True),
        "classifier eps": (lambda m: guidance.classifier_guided_model(m, classifier, s, 1.5, model_cond=True), True),
        "classifier mean": (lambda m: guidance.classifier_guided_model(m, classifier, s, 1.5, form="mean",
                                                                       model_cond=True), False),
        "autoguidance": (lambda m: guidance.autoguidance_model(m, weak, 1.5), True),
        "x0 adaptor": (lambda m: models.as_eps_model(models.as_prediction(m, s, "x0"), s, "x0"), True),
    }


@pytest.mark.parametrize("outer, inner", list(itertools.product(
    ["cfg", "cfg interval", "cfg rescale", "classifier eps", "classifier mean", "autoguidance", "x0 adaptor"], repeat=2)))
def test_every_pair_of_wrappers_stacks_and_samples_under_both_samplers(outer, inner, s):
    net, weak, classifier = _nets()
    wrap = _wrappers(s, classifier, weak)
    model = wrap[outer][0](wrap[inner][0](net))
    assert models.null_value(model) == net.null_value == -1          # every wrapper passes the null on
    y = torch.randint(0, 2, (32,), generator=torch.Generator().manual_seed(1))
    x = sampling.ddpm_sample(model, (32, 2), s, cond=y, generator=torch.Generator().manual_seed(2))
    assert x.shape == (32, 2) and bool(torch.isfinite(x).all())
    if wrap[outer][1] and wrap[inner][1]:
        x = sampling.ddim_sample(model, (32, 2), s, num_steps=10, cond=y, generator=torch.Generator().manual_seed(2))
        assert bool(torch.isfinite(x).all())
    else:
        with pytest.raises(ValueError, match="built for ddpm_sample"):
            sampling.ddim_sample(model, (32, 2), s, num_steps=10, cond=y)


def test_cfg_over_classifier_guidance_is_classifier_guidance_on_the_conditional_rows(s):
    """The case that raised "null must be given": CFG over a classifier-guided conditional model."""
    net, _, classifier = _nets()
    inner = guidance.classifier_guided_model(net, classifier, s, 1.0, model_cond=True)
    stack = guidance.cfg_model(inner, 2.0)
    x, y = torch.randn(8, 2), torch.tensor([0, 1] * 4)
    by_hand = guidance.cfg(inner(x, 20, y), net(x, 20, torch.full((8,), -1)), 2.0)   # the null rows: no gradient
    assert torch.allclose(stack(x, 20, y), by_hand, atol=1e-5)


def test_wrappers_keep_their_inner_model_reachable(s):
    net, weak, classifier = _nets()
    stack = guidance.autoguidance_model(guidance.cfg_model(net, 2.0), weak, 1.5)
    assert [type(m).__name__ for m in models.wrapped_models(stack)] == [
        "AutoguidanceModel", "CFGModel", "MLPEpsModel", "MLPEpsModel"]
    assert stack.inner_model.inner_model is net and stack.check_condition == net.check_condition


# -- any condition -----------------------------------------------------------------------------------
def test_a_vector_condition_with_a_vector_null(s):
    """A (B, 3) condition and a (3,) null: CFG builds the null rows and stacks them under the condition rows."""
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="vector", cond_features=3).eval()
    assert net.null_value.shape == (3,) and bool(torch.isnan(net.null_value).all())
    x, c = torch.randn(6, 2), torch.randn(6, 3)
    by_hand = guidance.cfg(net(x, 7, c), net(x, 7, net.null_value.expand(6, 3)), 2.5)
    assert torch.allclose(guidance.cfg_model(net, 2.5)(x, 7, c), by_hand, atol=1e-6)
    assert torch.allclose(net(x, 7, None), net(x, 7, torch.full((6, 3), float("nan"))))
    zero = nets.MLPEpsModel(2, cond="vector", cond_features=3, null="zero").eval()
    assert torch.equal(zero.null_value, torch.zeros(3))
    x0 = sampling.ddim_sample(guidance.cfg_model(net, 2.0), (6, 2), s, num_steps=5, cond=c)
    assert x0.shape == (6, 2)


def test_training_drops_vector_conditions_to_their_null(s):
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="vector", cond_features=3)
    from tutorial_pkg import training
    cond = torch.randn(64, 3)
    dropped = training.drop_condition(cond, 0.5, net.null_value, generator=torch.Generator().manual_seed(0))
    rows_null = torch.isnan(dropped).all(1)
    assert 10 < int(rows_null.sum()) < 54 and torch.equal(dropped[~rows_null], cond[~rows_null])
    result = training.train_eps_model(net, torch.randn(64, 2), s, cond=cond, p_uncond=0.2, steps=3, progress=False)
    assert result.losses.shape == (3,)


def test_a_scalar_null_for_a_label_and_a_tensor_null_are_both_rows():
    cond = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(models.null_rows(torch.tensor([0.0, -1.0]), cond), torch.tensor([[0.0, -1.0], [0.0, -1.0]]))
    assert torch.equal(models.null_rows(-1, torch.tensor([3, 4])), torch.tensor([-1, -1]))
    assert torch.equal(models.is_null(torch.tensor([float("nan"), 1.0]), float("nan")), torch.tensor([True, False]))


# -- the mean form lives where its variance is ---------------------------------------------------------
def test_the_mean_form_refuses_a_sampler_it_was_not_built_for(mixture, s):
    mean_form = guidance.classifier_guided_model(mixture.eps_model(s), mixture.classifier(s), s, 2.0, form="mean",
                                                 variance="small")
    y = torch.ones(8, dtype=torch.long)
    sampling.ddpm_sample(mean_form, (8, 2), s, cond=y)                         # the sampler it was built for
    with pytest.raises(ValueError, match=r"built for ddpm_sample\(variance='small'\) .* ddim_sample"):
        sampling.ddim_sample(mean_form, (8, 2), s, cond=y)
    with pytest.raises(ValueError, match=r"does not fit ddpm_sample\(variance='large'\)"):
        sampling.ddpm_sample(mean_form, (8, 2), s, cond=y, variance="large")
    with pytest.raises(ValueError, match="built for ddpm_sample"):            # also from inside a stack
        sampling.ddim_sample(guidance.cfg_model(mean_form, 2.0, null=-1), (8, 2), s, cond=y)


# -- no work and no sync in the hot path ------------------------------------------------------------------
@pytest.mark.parametrize("t", [7, "tensor"])
def test_no_graph_break_in_a_network_or_in_cfg_over_it(t):
    """torch._dynamo.explain found 7 graph breaks in MLPEpsModel.forward and 9 in CFG over it."""
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="energy").eval()
    x, E = torch.randn(8, 2), torch.randn(8)
    t = torch.full((8,), 7) if t == "tensor" else t
    for fn in (net.forward, guidance.cfg_model(net, 3.0).__call__,
               guidance.cfg_model(net, guidance.guidance_interval(3.0, 0, 10)).__call__):
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(fn)(x, t, E)
        assert explanation.graph_break_count == 0, explanation.break_reasons
    torch._dynamo.reset()


def test_a_guidance_interval_evaluates_only_the_conditional_branch_outside_it():
    """guidance_interval(3, 100, 600), 50 DDIM steps, B = 64: 2B rows inside, B outside, 4,864 rows in all."""
    s = schedules.linear_schedule(1000)
    torch.manual_seed(0)
    counted = models.Counted(nets.MLPEpsModel(2, cond="label", num_classes=3).eval())
    steps = sampling.ddim_timesteps(1000, 50)
    inside = sum(100 <= t <= 600 for t in steps)
    y = torch.zeros(64, dtype=torch.long)
    sampling.ddim_sample(guidance.cfg_model(counted, guidance.guidance_interval(3.0, 100, 600)), (64, 2), s, cond=y)
    assert inside == 26 and counted.rows == 64 * (50 + inside) == 4864
    counted.rows = 0
    sampling.ddim_sample(guidance.cfg_model(counted, 3.0), (64, 2), s, cond=y)
    assert counted.rows == 2 * 64 * 50
    counted.rows = 0
    sampling.ddim_sample(guidance.cfg_model(counted, 0.0), (64, 2), s, num_steps=5, cond=y)   # gamma 0: unconditional
    assert counted.rows == 64 * 5


def test_a_tensor_timestep_still_gets_a_per_sample_gamma():
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="label", num_classes=3).eval()
    interval = guidance.guidance_interval(3.0, 100, 600)
    x, y, t = torch.randn(4, 2), torch.tensor([0, 1, 2, 0]), torch.tensor([50, 150, 650, 600])
    out = guidance.cfg_model(net, interval)(x, t, y)
    gamma = torch.tensor([1.0, 3.0, 1.0, 3.0])[:, None]
    by_hand = net(x, t, -torch.ones(4, dtype=torch.long)) + gamma * (net(x, t, y) - net(x, t, -torch.ones(4, dtype=torch.long)))
    assert torch.allclose(out, by_hand, atol=1e-6)


# -- one pairing of the steps, and the parameterisations --------------------------------------------------
def test_the_exact_moments_share_the_samplers_step_pairing_and_checks(s):
    with pytest.raises(ValueError, match="strictly decreasing"):
        sampling.gaussian_sampler_moments(0.0, 1.0, s, sampler="ddim", timesteps=[1, 5, 30])
    with pytest.raises(ValueError, match="ddpm visits every step"):
        sampling.gaussian_sampler_moments(0.0, 1.0, s, sampler="ddpm", num_steps=10)
    with pytest.raises(ValueError, match="not both"):
        sampling.ddim_sample(lambda x, t, c: x, (4, 2), s, num_steps=10, timesteps=[30, 20, 10])
    assert sampling.sampler_steps(s, sampler="ddim", timesteps=[30, 20, 10]) == [(30, 20), (20, 10), (10, -1)]


def test_trailing_spacing_matches_diffusers():
    diffusers = pytest.importorskip("diffusers")
    for num_steps in (10, 50, 37):
        sched = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="trailing")
        sched.set_timesteps(num_steps)
        assert sampling.ddim_timesteps(1000, num_steps, "trailing") == sched.timesteps.tolist()
        lead = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing="leading")
        lead.set_timesteps(num_steps)
        assert sampling.ddim_timesteps(1000, num_steps, "leading") == lead.timesteps.tolist()


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_eps_x0_v_and_score_models_give_the_same_samples(mixture, s, sampler):
    """Four exact models of one mixture, each computed its own way: eps from the score, x0 by Gaussian
    conditioning of each component, v from both, the score itself. Adapted to eps, they sample alike."""
    eps = mixture.eps_model(s)
    x0 = mixture.x0_model(s)

    def score(x_t, t, cond):
        ab = s.alpha_bar(t, x_t)
        return mixture.score(x_t, ab.reshape(-1) if ab.ndim else ab.item())

    def v(x_t, t, cond):
        ab = s.alpha_bar(t, x_t)
        return ab.sqrt() * eps(x_t, t, cond) - (1 - ab).sqrt() * x0(x_t, t, cond)

    runs = {}
    for name, model in (("eps", eps), ("x0", x0), ("v", v), ("score", score)):
        adapted = models.as_eps_model(model, s, name)
        if sampler == "ddpm":
            runs[name] = sampling.ddpm_sample(adapted, (200, 2), s, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64)
        else:
            runs[name] = sampling.ddim_sample(adapted, (200, 2), s, num_steps=20, generator=torch.Generator().manual_seed(0),
                                              dtype=torch.float64)
    for name in ("x0", "v", "score"):
        assert torch.allclose(runs[name], runs["eps"], atol=1e-8), name
    assert torch.allclose(models.as_prediction(eps, s, "x0")(runs["eps"], 5, None), x0(runs["eps"], 5, None), atol=1e-9)


# -- smaller items -------------------------------------------------------------------------------------
def test_the_package_names_every_module():
    modules = sorted(p.stem for p in (ROOT / "tutorial_pkg").glob("*.py") if not p.stem.startswith("_"))
    modules += sorted(p.name for p in (ROOT / "tutorial_pkg").iterdir() if (p / "__init__.py").exists())
    doc = tutorial_pkg.__doc__
    for name in modules:
        assert hasattr(tutorial_pkg, name), f"tutorial_pkg does not import {name}"
        assert re.search(rf"tutorial_pkg\.{name}\b", doc), f"the package docstring does not name {name}"


def test_check_drop_condition_calls_the_students_function_inside_its_guard_only(capsys):
    calls = []

    def twice_fails(cond, p, null, generator):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("second call")
        drop = torch.rand(cond.shape[0], generator=generator) < p
        return torch.where(drop, torch.full_like(cond, null), cond)

    result = grading.check_drop_condition(twice_fails)
    assert result.status == "fail" and "RuntimeError" in result.message


def test_a_variance_may_be_per_coordinate_but_a_scale_must_be_per_sample():
    mean, grad = torch.zeros(1, 2), torch.ones(1, 2)
    var = torch.tensor([0.3, 0.1])
    assert torch.allclose(guidance.shifted_mean(mean, var, grad, 2.0), 2.0 * var[None])
    with pytest.raises(ValueError, match="one value per sample"):
        guidance.cfg(torch.zeros(4, 2), torch.zeros(4, 2), torch.ones(2))
