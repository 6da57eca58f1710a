"""Bad input is refused at the public boundary, with an error that names the argument to fix.

One table covers every public name of the modules below: each function and class, and each public method
(with arguments) of each class. A row calls it with one bad argument (a wrong shape or rank, a second device,
a wrong dtype, NaN or infinity, a timestep out of range, a negative or NaN scale, an unknown name) and
expects a ValueError or TypeError whose message names that argument. A tensor on the "meta" device plays
the second device on a CPU-only machine. For the assignment checks of ``grading`` the bad input is the
student's function: a check must report "fail", never raise. ``test_the_table_covers_every_public_name``
fails when a public name has no row, so the table grows with the package.
"""

import functools
import inspect
import pathlib
import re

import pytest
import torch

from tutorial_pkg import grading, guidance, metrics, models, nets, reporting, sampling, schedules, systems, training
from tutorial_pkg import grader, smc, stats, tweedie, variants
from tutorial_pkg.analytic import GaussianMixture
from tutorial_pkg.systems import alanine_md, internal_coordinates
from tutorial_pkg.systems import temperature as temperature_dial

MODULES = (models, schedules, sampling, guidance, nets, training, systems, internal_coordinates, alanine_md, metrics,
           reporting, stats, grading, variants, tweedie, smc, grader, temperature_dial)
# classes that the package builds and returns, never from a user's arguments: their constructors need no row
# (their methods with arguments do)
BUILT_BY_THE_PACKAGE = {"training.TrainResult", "metrics.EnergyError", "grading.CheckResult", "systems.BoltzmannData",
                        "models.EpsModel", "smc.SMCResult", "systems.MDData", "alanine_md.MDData",
                        "internal_coordinates.InternalFeatures", "stats.Estimate",
                        "stats.Comparison"}

NAN, INF = float("nan"), float("inf")
FAILS = object()  # expected outcome of a grading row: a "fail" report, no exception
S = schedules.linear_schedule(10)


def z(*shape, **kwargs):
    return torch.zeros(*shape, **kwargs)


def meta(*shape, **kwargs):
    """A tensor on a second device: the meta device has shapes and dtypes but no data."""
    return torch.zeros(*shape, device="meta", **kwargs)


def full(shape, value):
    return torch.full(shape, value)


def t4(value=0):
    return torch.full((4,), value, dtype=torch.long)


def labels(n=4, value=0):
    return torch.full((n,), value, dtype=torch.long)


@functools.lru_cache(maxsize=None)
def muller_brown():
    from tutorial_pkg import zoo
    return (zoo.muller_brown_data(), zoo.load("muller_brown_cfg", device="cpu", progress=False).model,
            zoo.load("muller_brown_regressor", device="cpu", progress=False).model)


def energy_report(report, samples, **kwargs):
    data, eps_model, _ = muller_brown()
    setting = dict(data=data, eps_model=eps_model, schedule=schedules.linear_schedule(1000), target=-40.0,
                   reference=data.conditional_reference(-40.0, 8, delta=0.5), seed=0, n=4)
    return grading.check_energy_report(report, samples, **{**setting, **kwargs})


def guided_report(report, samples, **kwargs):
    data, eps_model, regressor = muller_brown()
    setting = dict(data=data, eps_model=eps_model, regressor=regressor, schedule=schedules.linear_schedule(1000),
                   target=-60.0, scale=1.0, seed=0)
    return grading.check_guided_report(report, samples, **{**setting, **kwargs})


@functools.lru_cache(maxsize=None)
def exact():
    mixture = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [[[0.2, 0.0], [0.0, 0.2]]] * 2)
    return mixture.eps_model(S), mixture.classifier(S)


@functools.lru_cache(maxsize=None)
def data():
    return systems.boltzmann_dataset(200, 20, resolution=20, generator=torch.Generator().manual_seed(0))


@functools.lru_cache(maxsize=None)
def ala():
    """The alanine-dipeptide system; the rows that need it skip when OpenMM is not installed."""
    pytest.importorskip("openmm")
    return systems.AlanineDipeptide()


TOY = internal_coordinates.ZMatrix((1, 0, 2), ((3, 2, 1, 0), (4, 3, 2, 1)))


@functools.lru_cache(maxsize=None)
def features():
    torsions = torch.stack([torch.linspace(-3, 3, 5), torch.linspace(2, 3, 5)], 1)
    x = TOY.to_cartesian(torch.full((5, 4), 0.1), torch.full((5, 3), 2.0), torsions)
    return internal_coordinates.InternalFeatures.fit(TOY, torch.full((4,), 0.1), (0,), x)


def mlp(**kwargs):
    return nets.MLPEpsModel(2, **kwargs)


def train(**kwargs):
    args = dict(model=mlp(cond="label", num_classes=2), x0=z(10, 2), schedule=S, cond=labels(10), steps=1,
                progress=False)
    args.update(kwargs)
    return training.train_eps_model(args.pop("model"), args.pop("x0"), args.pop("schedule"), **args)


def not_a_function(*args):
    return "not a function"


def mmps_report(report, samples, **kwargs):
    """Assignment 5's report check in the notebook's setting, with the given arguments replaced."""
    from tutorial_pkg import analytic
    setting = dict(prior=analytic.GaussianMixture([1.0], [[0.5, -0.3]], [[[1.0, 0.6], [0.6, 0.8]]]),
                   a=torch.tensor([1.5, -0.7], dtype=torch.float64), sigma_y=0.3, y=1.2,
                   schedule=schedules.linear_schedule(1000), seed=0)
    return grading.check_mmps_report(report, samples, **{**setting, **kwargs})


def core_report(report, samples, **kwargs):
    """Assignment 7's check, with the real molecule (OpenMM) and small stand-ins for the features and the model:
    every row fails or raises before anything is sampled."""
    setting = dict(system=ala(), features=features(), eps_model=mlp(), schedule=S, target=-47.0, seed=0, n=4,
                   num_steps=5)
    return grading.check_core_report(report, samples, **{**setting, **kwargs})


CORES = {core: {"share": 0.5, "se": 0.1} for core in ("C5", "C7eq", "C7ax", "alpha_R")}  # assignment 7's cores


def smc_estimates(estimates, **kwargs):
    """Assignment 6's experiment check, with the given arguments replaced: every row fails or raises before
    anything is sampled."""
    setting = dict(seed=0, particle_counts={4: 2}, timesteps=[999, 500], schedule=schedules.linear_schedule(1000))
    return grading.check_smc_estimates(estimates, **{**setting, **kwargs})


# (public name, the argument the error must name, or FAILS for a grading check, the call)
ROWS = [
    # -- models ---------------------------------------------------------------------------------------
    ("models.Wrapper", "inner_model", lambda: models.Wrapper("a model")),
    ("models.Counted", "inner_model", lambda: models.Counted(3)),
    ("models.Counted.__call__", "x_t", lambda: models.Counted(exact()[0])(3.0, 1, None)),
    ("models.Counted.log_prob", "x_t", lambda: models.Counted(exact()[1]).log_prob([[0.0, 0.0]], 1, labels(1))),
    ("models.null_value", "model", lambda: models.null_value()),
    ("models.null_rows", "null", lambda: models.null_rows(torch.zeros(2), z(4, 3))),
    ("models.is_null", "null", lambda: models.is_null(z(4, 3), torch.zeros(2))),
    ("models.wrapped_models", "model", lambda: list(models.wrapped_models())),
    ("models.check_sampler", "eps_model",
     lambda: models.check_sampler(guidance.classifier_guided_model(exact()[0], exact()[1], S, 1.0, form="mean"),
                                  "ddpm", "large")),
    ("models.check_sampler", "eps_model",
     lambda: models.check_sampler(guidance.classifier_guided_model(exact()[0], exact()[1], S, 1.0, form="mean"), "ddim")),
    ("models.check_condition", "cond", lambda: models.check_condition(exact()[0], labels(3), 4)),
    ("models.PREDICTIONS", "prediction", lambda: models.as_eps_model(exact()[0], S, "velocity")),
    ("models.as_eps_model", "prediction", lambda: models.as_eps_model(exact()[0], S, "noise")),
    ("models.as_prediction", "prediction", lambda: models.as_prediction(exact()[0], S, "x_0")),
    ("models.EpsFromPrediction", "model", lambda: models.EpsFromPrediction(None, S, "x0")),
    ("models.EpsFromPrediction.__call__", "x0", lambda: models.EpsFromPrediction(lambda x, t, c: x[:, :1], S, "x0")(
        z(4, 2), 1, None)),
    ("models.PredictionFromEps", "prediction", lambda: models.PredictionFromEps(exact()[0], S, "x1")),
    ("models.PredictionFromEps.__call__", "eps", lambda: models.PredictionFromEps(lambda x, t, c: x[:, :1], S, "x0")(
        z(4, 2), 1, None)),
    # -- schedules ------------------------------------------------------------------------------------
    ("schedules.NoiseSchedule", "betas", lambda: schedules.NoiseSchedule(torch.tensor([0.1, 1.5]))),
    ("schedules.NoiseSchedule", "betas", lambda: schedules.NoiseSchedule(torch.tensor([[0.1, 0.2]]))),
    ("schedules.NoiseSchedule", "betas", lambda: schedules.NoiseSchedule(torch.tensor([0.1, NAN]))),
    ("schedules.NoiseSchedule.q_sample", "eps", lambda: S.q_sample(z(4, 2), 1, meta(4, 2))),
    ("schedules.NoiseSchedule.q_sample", "eps", lambda: S.q_sample(z(4, 2), 1, z(4, 2, dtype=torch.float64))),
    ("schedules.NoiseSchedule.q_sample", "eps", lambda: S.q_sample(z(4, 2), 1, z(4, 3))),
    ("schedules.NoiseSchedule.q_sample", "t", lambda: S.q_sample(z(4, 2), 10, z(4, 2))),
    ("schedules.NoiseSchedule.q_sample", "t", lambda: S.q_sample(z(4, 2), -1, z(4, 2))),
    ("schedules.NoiseSchedule.predict_x0", "eps", lambda: S.predict_x0(z(4, 2), 1, meta(4, 2))),
    ("schedules.NoiseSchedule.predict_eps", "x0", lambda: S.predict_eps(z(4, 2), 1, meta(4, 2))),
    ("schedules.NoiseSchedule.predict_eps", "t", lambda: S.predict_eps(z(4, 2), torch.tensor([1, 2, 3]), z(4, 2))),
    ("schedules.NoiseSchedule.posterior_mean_variance", "x0", lambda: S.posterior_mean_variance(meta(4, 2), z(4, 2), 1)),
    ("schedules.NoiseSchedule.posterior_mean_variance", "x0", lambda: S.posterior_mean_variance(z(4, 3), z(4, 2), 1)),
    ("schedules.NoiseSchedule.posterior_mean_variance", "t", lambda: S.posterior_mean_variance(z(4, 2), z(4, 2), 10)),
    ("schedules.NoiseSchedule.eps_to_score", "t", lambda: S.eps_to_score(z(4, 2), torch.tensor([1.0, 2.0, 3.0, 4.0]))),
    ("schedules.NoiseSchedule.score_to_eps", "t", lambda: S.score_to_eps(z(4, 2), torch.tensor([[1, 2]]))),
    ("schedules.NoiseSchedule.gather", "t", lambda: S.gather(S.alpha_bars, torch.tensor([1, 2, 3]), z(4, 2))),
    ("schedules.NoiseSchedule.check_t", "t", lambda: S.check_t(2.5)),
    ("schedules.NoiseSchedule.check_t", "t", lambda: S.check_t(torch.tensor([3, 12]))),
    ("schedules.linear_schedule", "T", lambda: schedules.linear_schedule(0)),
    ("schedules.linear_schedule", "beta_end", lambda: schedules.linear_schedule(10, beta_end=NAN)),
    ("schedules.linear_schedule", "beta_start", lambda: schedules.linear_schedule(10, beta_start=-0.1)),
    ("schedules.cosine_schedule", "s", lambda: schedules.cosine_schedule(10, s=NAN)),
    ("schedules.cosine_schedule", "s", lambda: schedules.cosine_schedule(10, s=-0.1)),
    ("schedules.cosine_schedule", "max_beta", lambda: schedules.cosine_schedule(10, max_beta=1.0)),
    ("schedules.make_schedule", "name", lambda: schedules.make_schedule("quadratic", 10)),
    ("schedules.make_schedule", "s", lambda: schedules.make_schedule("linear", 10, s=0.008)),
    ("schedules.SCHEDULES", "name", lambda: schedules.make_schedule("sigmoid", 10)),
    ("schedules.NoiseSchedule.alpha_bar", "t", lambda: S.alpha_bar(10, z(4, 2))),
    ("schedules.NoiseSchedule.alpha_bar", "t", lambda: S.alpha_bar(z(4), z(4, 2))),
    ("schedules.NoiseSchedule.alpha_bar", "t", lambda: S.alpha_bar(t4()[:3], z(4, 2))),
    ("schedules.NoiseSchedule.posterior_coefficients", "t", lambda: S.posterior_coefficients(12)),
    ("schedules.NoiseSchedule.value", "name", lambda: S.value("sigmas", 1)),
    ("schedules.NoiseSchedule.value", "t", lambda: S.value("betas", 1.5)),
    ("schedules.NoiseSchedule.eps_to_v", "eps", lambda: S.eps_to_v(z(4, 2), 1, z(4, 3))),
    ("schedules.NoiseSchedule.v_to_eps", "v", lambda: S.v_to_eps(z(4, 2), 1, meta(4, 2))),
    # -- sampling -------------------------------------------------------------------------------------
    ("sampling.ddpm_step", "eps", lambda: sampling.ddpm_step(meta(4, 2), z(4, 2), 5, S, noise=z(4, 2))),
    ("sampling.ddpm_step", "noise", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), 5, S, noise=meta(4, 2))),
    ("sampling.ddpm_step", "noise", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), 5, S, noise=full((4, 2), NAN))),
    ("sampling.ddpm_step", "t", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), 10, S, noise=z(4, 2))),
    ("sampling.ddpm_step", "t", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), t4(5), S, noise=z(4, 2))),
    ("sampling.ddpm_step", "variance", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), 5, S, noise=z(4, 2),
                                                                  variance="medium")),
    ("sampling.ddpm_step", "schedule", lambda: sampling.ddpm_step(z(4, 2), z(4, 2), 5, "linear", noise=z(4, 2))),
    ("sampling.ddim_step", "eta", lambda: sampling.ddim_step(z(4, 2), z(4, 2), 5, 3, S, eta=NAN)),
    ("sampling.ddim_step", "eta", lambda: sampling.ddim_step(z(4, 2), z(4, 2), 5, 3, S, eta=-0.5)),
    ("sampling.ddim_step", "t_prev", lambda: sampling.ddim_step(z(4, 2), z(4, 2), 5, 7, S)),
    ("sampling.ddim_step", "x_t", lambda: sampling.ddim_step(z(4, 2), meta(4, 2), 5, 3, S)),
    ("sampling.ddim_step", "eps", lambda: sampling.ddim_step(z(4, 3), z(4, 2), 5, 3, S)),
    ("sampling.ddpm_coefficients", "t", lambda: sampling.ddpm_coefficients(S, -1)),
    ("sampling.ddpm_coefficients", "t", lambda: sampling.ddpm_coefficients(S, 10)),
    ("sampling.ddpm_coefficients", "variance", lambda: sampling.ddpm_coefficients(S, 3, "medium")),
    ("sampling.ddim_coefficients", "eta", lambda: sampling.ddim_coefficients(S, 3, 1, NAN)),
    ("sampling.ddim_coefficients", "t_prev", lambda: sampling.ddim_coefficients(S, 3, 5)),
    ("sampling.ddim_coefficients", "schedule", lambda: sampling.ddim_coefficients(None, 3, 1)),
    ("sampling.ddim_timesteps", "num_steps", lambda: sampling.ddim_timesteps(10, 0)),
    ("sampling.ddim_timesteps", "num_steps", lambda: sampling.ddim_timesteps(10, 11)),
    ("sampling.ddpm_sample", "shape", lambda: sampling.ddpm_sample(exact()[0], (0, 2), S)),
    ("sampling.ddpm_sample", "generator", lambda: sampling.ddpm_sample(exact()[0], (4, 2), S, generator=123)),
    ("sampling.ddim_sample", "generator", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, num_steps=5, generator="seed")),
    ("sampling.ddpm_sample", "eps_model", lambda: sampling.ddpm_sample("model", (4, 2), S)),
    ("sampling.ddpm_sample", "schedule", lambda: sampling.ddpm_sample(exact()[0], (4, 2), "linear")),
    ("sampling.ddpm_sample", "cond", lambda: sampling.ddpm_sample(exact()[0], (4, 2), S, cond=labels(5))),
    ("sampling.ddpm_sample", "x_T", lambda: sampling.ddpm_sample(exact()[0], (4, 2), S, x_T=meta(4, 2), device="cpu")),
    ("sampling.ddpm_sample", "x_T", lambda: sampling.ddpm_sample(exact()[0], (4, 2), S, x_T=full((4, 2), NAN))),
    ("sampling.ddim_sample", "eta", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, num_steps=5, eta=NAN)),
    ("sampling.ddim_sample", "timesteps", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, timesteps=[3, 5])),
    ("sampling.ddim_sample", "timesteps", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, timesteps=[30, 5])),
    ("sampling.ddim_sample", "num_steps", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, num_steps=99)),
    ("sampling.ddim_sample", "x_T", lambda: sampling.ddim_sample(exact()[0], (4, 2), S, num_steps=5, x_T=meta(4, 2), device="cpu")),
    ("sampling.Trajectory", "keep_x0", lambda: sampling.Trajectory(keep_x0="yes")),
    ("sampling.Trajectory.__call__", "x", lambda: sampling.Trajectory()(3, None, None)),
    ("sampling.VARIANCES", "variance", lambda: sampling.ddpm_sample(exact()[0], (4, 2), S, variance="medium")),
    ("sampling.SPACINGS", "spacing", lambda: sampling.ddim_timesteps(10, 5, spacing="uniform")),
    ("sampling.sampler_steps", "sampler", lambda: sampling.sampler_steps(S, sampler="euler")),
    ("sampling.sampler_steps", "num_steps", lambda: sampling.sampler_steps(S, sampler="ddpm", num_steps=5)),
    ("sampling.sampler_steps", "timesteps", lambda: sampling.sampler_steps(S, sampler="ddim", timesteps=[2, 5])),
    ("sampling.sampler_steps", "timesteps",
     lambda: sampling.sampler_steps(S, sampler="ddim", timesteps=[5, 2], num_steps=2)),
    ("sampling.sampler_steps", "schedule", lambda: sampling.sampler_steps("linear", sampler="ddim")),
    ("sampling.gaussian_sampler_moments", "gamma", lambda: sampling.gaussian_sampler_moments(0.0, 1.0, S, gamma=2.0)),
    ("sampling.gaussian_sampler_moments", "timesteps",
     lambda: sampling.gaussian_sampler_moments(0.0, 1.0, S, sampler="ddim", timesteps=[1, 8])),
    ("sampling.gaussian_sampler_moments", "num_steps",
     lambda: sampling.gaussian_sampler_moments(0.0, 1.0, S, sampler="ddpm", num_steps=5)),
    ("sampling.gaussian_sampler_moments", "var_c", lambda: sampling.gaussian_sampler_moments(0.0, -1.0, S)),
    ("sampling.ddim_sample", "cond", lambda: sampling.ddim_sample(mlp(cond="label", num_classes=3), (4, 2), S,
                                                                  num_steps=2, cond=labels(4, 3))),
    ("sampling.ddim_sample", "cond", lambda: sampling.ddim_sample(mlp(cond="label", num_classes=3), (4, 2), S,
                                                                  num_steps=2, cond=labels(5))),
    # -- guidance -------------------------------------------------------------------------------------
    ("guidance.cfg", "eps_uncond", lambda: guidance.cfg(z(4, 2), meta(4, 2), 2.0)),
    ("guidance.cfg", "eps_uncond", lambda: guidance.cfg(z(4, 2), z(4, 1), 2.0)),
    ("guidance.cfg", "eps_cond", lambda: guidance.cfg(labels(4), labels(4), 2.0)),
    ("guidance.cfg", "gamma", lambda: guidance.cfg(z(4, 2), z(4, 2), NAN)),
    ("guidance.cfg", "gamma", lambda: guidance.cfg(z(4, 2), z(4, 2), -1.0)),
    ("guidance.cfg", "gamma", lambda: guidance.cfg(z(4, 2), z(4, 2), torch.ones(2))),      # one per coordinate
    ("guidance.classifier_guided_eps", "grad_log_p", lambda: guidance.classifier_guided_eps(z(4, 2), meta(4, 2), 0.5, 1.0)),
    ("guidance.classifier_guided_eps", "scale", lambda: guidance.classifier_guided_eps(z(4, 2), z(4, 2), 0.5, INF)),
    ("guidance.classifier_guided_eps", "scale", lambda: guidance.classifier_guided_eps(z(4, 2), z(4, 2), 0.5, -1.0)),
    ("guidance.classifier_guided_eps", "alpha_bar_t", lambda: guidance.classifier_guided_eps(z(4, 2), z(4, 2), 1.5, 1.0)),
    ("guidance.classifier_guided_eps", "alpha_bar_t", lambda: guidance.classifier_guided_eps(z(4, 2), z(4, 2), NAN, 1.0)),
    ("guidance.classifier_guided_eps", "alpha_bar_t",
     lambda: guidance.classifier_guided_eps(z(4, 2), z(4, 2), full((3,), 0.5), 1.0)),
    ("guidance.shifted_mean", "variance", lambda: guidance.shifted_mean(z(4, 2), -1.0, z(4, 2), 1.0)),
    ("guidance.shifted_mean", "variance", lambda: guidance.shifted_mean(z(4, 2), NAN, z(4, 2), 1.0)),
    ("guidance.shifted_mean", "variance", lambda: guidance.shifted_mean(z(4, 2), torch.ones(3), z(4, 2), 1.0)),
    ("guidance.shifted_mean", "grad_log_p", lambda: guidance.shifted_mean(z(4, 2), 1.0, meta(4, 2), 1.0)),
    ("guidance.shifted_mean", "scale", lambda: guidance.shifted_mean(z(4, 2), 1.0, z(4, 2), NAN)),
    ("guidance.grad_log_likelihood", "predictor", lambda: guidance.grad_log_likelihood(3, z(4, 2), t4(), None)),
    ("guidance.grad_log_likelihood", "predictor",
     lambda: guidance.grad_log_likelihood(lambda x, t, y: x, z(4, 2), t4(), None)),
    ("guidance.cfg_model", "eps_model", lambda: guidance.cfg_model("model", 2.0, null=-1)),
    ("guidance.cfg_model", "gamma", lambda: guidance.cfg_model(exact()[0], NAN)),
    ("guidance.cfg_model", "null", lambda: guidance.cfg_model(lambda x, t, c: x, 2.0)),
    ("guidance.cfg_model", "rescale", lambda: guidance.cfg_model(exact()[0], 2.0, rescale=2.0)),
    ("guidance.CFGModel", "gamma", lambda: guidance.CFGModel(exact()[0], -1.0)),
    ("guidance.CFGModel.__call__", "cond", lambda: guidance.CFGModel(exact()[0], 2.0)(z(4, 2), t4(), None)),
    ("guidance.CFGModel.__call__", "cond", lambda: guidance.CFGModel(exact()[0], 2.0)(z(4, 2), t4(), labels(3))),
    ("guidance.CFGModel.__call__", "x_t", lambda: guidance.CFGModel(exact()[0], 2.0)(3.0, t4(), labels())),
    ("guidance.CFGModel.__call__", "gamma",
     lambda: guidance.CFGModel(exact()[0], lambda t: torch.ones(2))(z(4, 2), t4(), labels())),
    ("guidance.classifier_guided_model", "form",
     lambda: guidance.classifier_guided_model(exact()[0], exact()[1], S, 1.0, form="taylor")),
    ("guidance.classifier_guided_model", "variance",
     lambda: guidance.classifier_guided_model(exact()[0], exact()[1], S, 1.0, form="mean", variance="medium")),
    ("guidance.classifier_guided_model", "scale", lambda: guidance.classifier_guided_model(exact()[0], exact()[1], S, NAN)),
    ("guidance.classifier_guided_model", "schedule",
     lambda: guidance.classifier_guided_model(exact()[0], exact()[1], "linear", 1.0)),
    ("guidance.classifier_guided_model", "predictor", lambda: guidance.classifier_guided_model(exact()[0], object(), S, 1.0)),
    ("guidance.ClassifierGuidedModel", "scale", lambda: guidance.ClassifierGuidedModel(exact()[0], exact()[1], S, -1.0)),
    ("guidance.ClassifierGuidedModel.__call__", "cond",
     lambda: guidance.ClassifierGuidedModel(exact()[0], exact()[1], S, 1.0)(z(4, 2), t4(), None)),
    ("guidance.ClassifierGuidedModel.__call__", "t",
     lambda: guidance.ClassifierGuidedModel(exact()[0], exact()[1], S, 1.0)(z(4, 2), z(4), labels())),
    ("guidance.ClassifierGuidedModel.check_condition", "E",
     lambda: guidance.ClassifierGuidedModel(exact()[0], nets.NoiseAwareRegressor(2), S, 1.0).check_condition(
         labels(3, 7))),
    ("guidance.ClassifierGuidedModel", "model_cond",
     lambda: guidance.ClassifierGuidedModel(exact()[0], exact()[1], S, 1.0, model_cond="yes")),
    ("guidance.GuidanceInterval", "t_high", lambda: guidance.GuidanceInterval(2.0, 500, 100)),
    ("guidance.GuidanceInterval", "outside", lambda: guidance.GuidanceInterval(2.0, 100, 500, outside=NAN)),
    ("guidance.GuidanceInterval.inside", "t", lambda: guidance.GuidanceInterval(2.0, 1, 5).inside(2.5)),
    ("guidance.GuidanceInterval.__call__", "t", lambda: guidance.GuidanceInterval(2.0, 1, 5)(z(4))),
    ("guidance.convert_scale", "from_", lambda: guidance.convert_scale(1.0, from_="cfg", to="w")),
    ("guidance.convert_scale", "to", lambda: guidance.convert_scale(1.0, from_="w", to="omega")),
    ("guidance.convert_scale", "value", lambda: guidance.convert_scale(NAN, from_="gamma", to="w")),
    ("guidance.convert_scale", "value", lambda: guidance.convert_scale(-3.0, from_="w", to="gamma")),
    # smc: the sampler of the tilted target (chapter 10)
    ("smc.guidance_terms", "guided_model", lambda: smc.guidance_terms(exact()[0], z(4, 2), 3, labels())),
    ("smc.guidance_terms", "guided_model",
     lambda: smc.guidance_terms(guidance.cfg_model(exact()[0], guidance.guidance_interval(2.0, 2, 5)), z(4, 2), 3, labels())),
    ("smc.guidance_terms", "x_t", lambda: smc.guidance_terms(guidance.cfg_model(exact()[0], 2.0), full((4, 2), NAN), 3, labels())),
    ("smc.guidance_terms", "t", lambda: smc.guidance_terms(guidance.cfg_model(exact()[0], 2.0), z(4, 2), 2.5, labels())),
    ("smc.log_weight_factor", "schedule", lambda: smc.log_weight_factor("linear", 3, 2.0)),
    ("smc.log_weight_factor", "t_prev", lambda: smc.log_weight_factor(S, 3, 2.0, t_prev=5)),
    ("smc.log_weight_factor", "gamma", lambda: smc.log_weight_factor(S, 3, NAN)),
    ("smc.effective_sample_size", "log_weights", lambda: smc.effective_sample_size(z(2, 3, 4))),
    ("smc.effective_sample_size", "log_weights", lambda: smc.effective_sample_size(full((4,), NAN))),
    ("smc.systematic_resample", "log_weights", lambda: smc.systematic_resample([0.0, 1.0])),
    ("smc.systematic_resample", "log_weights", lambda: smc.systematic_resample(full((4,), -INF))),
    ("smc.systematic_resample", "log_weights", lambda: smc.systematic_resample(torch.tensor([0.0, INF]))),
    ("smc.systematic_resample", "generator", lambda: smc.systematic_resample(z(4), generator=7)),
    ("smc.systematic_resample", "generator", lambda: smc.systematic_resample(meta(4), generator=torch.Generator())),
    ("smc.smc_sample", "guided_model", lambda: smc.smc_sample(exact()[0], (4, 2), S, cond=1)),
    ("smc.smc_sample", "guided_model",
     lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0, rescale=0.5), (4, 2), S, cond=1)),
    ("smc.smc_sample", "shape", lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (0, 2), S, cond=1)),
    ("smc.smc_sample", "groups", lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), S, cond=1, groups=3)),
    ("smc.smc_sample", "ess_threshold",
     lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), S, cond=1, ess_threshold=1.5)),
    ("smc.smc_sample", "cond", lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), S, cond=None)),
    ("smc.smc_sample", "cond", lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), S, cond=labels(5))),
    ("smc.smc_sample", "schedule", lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), "linear", cond=1)),
    ("smc.smc_sample", "num_steps",
     lambda: smc.smc_sample(guidance.cfg_model(exact()[0], 2.0), (4, 2), S, cond=1, num_steps=20)),
    ("guidance.SCALE_CONVENTIONS", "from_", lambda: guidance.convert_scale(1.0, from_="s", to="gamma")),
    ("guidance.rescale_cfg", "phi", lambda: guidance.rescale_cfg(z(4, 2), z(4, 2), 1.5)),
    ("guidance.rescale_cfg", "phi", lambda: guidance.rescale_cfg(z(4, 2), z(4, 2), NAN)),
    ("guidance.rescale_cfg", "eps_cond", lambda: guidance.rescale_cfg(z(4, 2), meta(4, 2), 0.5)),
    ("guidance.rescale_cfg", "eps_guided", lambda: guidance.rescale_cfg(z(4, 1), z(4, 1), 0.5)),  # no std of one value
    ("guidance.guidance_interval", "gamma", lambda: guidance.guidance_interval(-1.0, 0, 5)),
    ("guidance.guidance_interval", "gamma", lambda: guidance.guidance_interval(NAN, 0, 5)),
    ("guidance.guidance_interval", "t_high", lambda: guidance.guidance_interval(2.0, 10, 5)),
    ("guidance.guidance_interval", "t_low", lambda: guidance.guidance_interval(2.0, -1, 5)),
    ("guidance.AutoguidanceModel", "weak_model", lambda: guidance.AutoguidanceModel(exact()[0], None, 2.0)),
    ("guidance.AutoguidanceModel", "gamma", lambda: guidance.AutoguidanceModel(exact()[0], exact()[0], -2.0)),
    ("guidance.AutoguidanceModel.__call__", "gamma",
     lambda: guidance.AutoguidanceModel(exact()[0], exact()[0], lambda t: -1.0)(z(4, 2), t4(), labels())),
    ("guidance.autoguidance_model", "eps_model", lambda: guidance.autoguidance_model("model", exact()[0], 2.0)),
    # -- nets -----------------------------------------------------------------------------------------
    ("nets.SinusoidalEmbedding", "dim", lambda: nets.SinusoidalEmbedding(7)),
    ("nets.SinusoidalEmbedding", "max_period", lambda: nets.SinusoidalEmbedding(8, max_period=NAN)),
    ("nets.SinusoidalEmbedding.forward", "t", lambda: nets.SinusoidalEmbedding(8)(torch.zeros(4, 2, dtype=torch.long))),
    ("nets.FourierFeatures", "scale", lambda: nets.FourierFeatures(8, scale=NAN)),
    ("nets.FourierFeatures", "dim", lambda: nets.FourierFeatures(3)),
    ("nets.FourierFeatures.forward", "x", lambda: nets.FourierFeatures(8)(z(4, 2))),
    ("nets.ConditionEmbedding", "kind", lambda: nets.ConditionEmbedding("spin", 8)),
    ("nets.ConditionEmbedding", "energy_features",
     lambda: nets.ConditionEmbedding("energy", 8, energy_features="sine")),
    ("nets.ConditionEmbedding", "energy_features",
     lambda: nets.ConditionEmbedding("label", 8, num_classes=3, energy_features="linear")),
    ("nets.ConditionEmbedding", "fourier_seed", lambda: nets.ConditionEmbedding("energy", 8, fourier_seed=-1)),
    ("nets.MLPEpsModel", "energy_features", lambda: nets.MLPEpsModel(2, cond="energy", energy_features=None)),
    ("nets.MLPEpsModel", "energy_features", lambda: nets.MLPEpsModel(2, energy_features="linear")),
    ("nets.FourierFeatures", "seed", lambda: nets.FourierFeatures(8, seed=1.5)),
    ("nets.ConditionEmbedding", "null", lambda: nets.ConditionEmbedding("energy", 8, null="none")),
    ("nets.ConditionEmbedding", "num_classes", lambda: nets.ConditionEmbedding("label", 8)),
    ("nets.ConditionEmbedding", "dim", lambda: nets.ConditionEmbedding("label", -1, num_classes=3)),
    ("nets.ConditionEmbedding.forward", "cond",
     lambda: nets.ConditionEmbedding("label", 8, num_classes=3)(meta(4, dtype=torch.long), 4, "cpu")),
    ("nets.ConditionEmbedding.forward", "cond", lambda: nets.ConditionEmbedding("label", 8, num_classes=3)(z(4), 4, "cpu")),
    ("nets.ConditionEmbedding.forward", "cond", lambda: nets.ConditionEmbedding("vector", 8, features=3)(z(4, 2), 4, "cpu")),
    ("nets.ConditionEmbedding", "features", lambda: nets.ConditionEmbedding("vector", 8)),
    ("nets.ConditionEmbedding.check_condition", "cond",
     lambda: nets.ConditionEmbedding("energy", 8).check_condition(full((4,), INF))),
    ("nets.ConditionEmbedding.check_condition", "cond",
     lambda: nets.ConditionEmbedding("label", 8, num_classes=3).check_condition(labels(4, 3))),
    ("nets.ConditionEmbedding.check_condition", "cond",
     lambda: nets.ConditionEmbedding("vector", 8, features=2).check_condition(torch.tensor([[NAN, 1.0]]))),
    ("nets.MLPEpsModel", "cond", lambda: mlp(cond="spin")),
    ("nets.MLPEpsModel", "null", lambda: mlp(cond="energy", null="none")),
    ("nets.MLPEpsModel", "num_classes", lambda: mlp(cond="label")),
    ("nets.MLPEpsModel", "time_dim", lambda: mlp(time_dim=7)),
    ("nets.MLPEpsModel", "cond_dim", lambda: mlp(cond="energy", cond_dim=7)),
    ("nets.MLPEpsModel", "energy_scale", lambda: mlp(cond="energy", energy_scale=NAN)),
    ("nets.MLPEpsModel.forward", "x_t", lambda: mlp()(meta(4, 2), t4())),
    ("nets.MLPEpsModel.forward", "x_t", lambda: mlp()(z(4, 3), t4())),
    ("nets.MLPEpsModel.forward", "x_t", lambda: mlp()(z(4, 2, 1), t4())),
    ("nets.MLPEpsModel.forward", "x_t", lambda: mlp()(labels(4)[:, None].expand(4, 2), t4())),
    ("nets.MLPEpsModel.forward", "t", lambda: mlp()(z(4, 2), labels(3))),
    ("nets.MLPEpsModel.forward", "t", lambda: mlp()(z(4, 2), z(4))),
    ("nets.MLPEpsModel.forward", "cond", lambda: mlp()(z(4, 2), t4(), torch.ones(4))),
    ("nets.MLPEpsModel.forward", "cond", lambda: mlp(cond="label", num_classes=3)(z(4, 2), t4(), labels(4, 5))),
    ("nets.MLPEpsModel.forward", "cond", lambda: mlp(cond="energy")(z(4, 2), t4(), meta(4))),
    ("nets.MLPEpsModel.forward", "cond", lambda: mlp(cond="label", num_classes=3)(z(4, 2), t4(), z(4))),
    ("nets.MLPEpsModel.check_condition", "cond",
     lambda: mlp(cond="energy", null="zero").check_condition(full((4,), NAN))),
    ("nets.MLPEpsModel.check_condition", "cond", lambda: mlp(cond="label", num_classes=3).check_condition(labels(4, 3))),
    ("nets.MLPEpsModel.check_condition", "cond", lambda: mlp().check_condition(labels(4))),
    ("nets.NoiseAwareClassifier", "num_classes", lambda: nets.NoiseAwareClassifier(2, 1)),
    ("nets.NoiseAwareClassifier.forward", "x_t", lambda: nets.NoiseAwareClassifier(2, 3)(meta(4, 2), t4())),
    ("nets.NoiseAwareClassifier.forward", "t", lambda: nets.NoiseAwareClassifier(2, 3)(z(4, 2), z(4))),
    ("nets.NoiseAwareClassifier.check_target", "y", lambda: nets.NoiseAwareClassifier(2, 3).check_target(labels(4, 5))),
    ("nets.NoiseAwareClassifier.check_target", "y", lambda: nets.NoiseAwareClassifier(2, 3).check_target(z(4))),
    ("nets.NoiseAwareClassifier.log_prob", "y", lambda: nets.NoiseAwareClassifier(2, 3).log_prob(z(4, 2), t4(), z(4))),
    ("nets.NoiseAwareRegressor", "energy_scale", lambda: nets.NoiseAwareRegressor(2, energy_scale=0.0)),
    ("nets.NoiseAwareRegressor", "spread", lambda: nets.NoiseAwareRegressor(2, spread="x")),
    ("nets.NoiseAwareRegressor", "energy_shift", lambda: nets.NoiseAwareRegressor(2, energy_shift=NAN)),
    ("nets.NoiseAwareRegressor.forward", "x_t", lambda: nets.NoiseAwareRegressor(2)(z(4, 3), t4())),
    ("nets.NoiseAwareRegressor.forward", "x_t", lambda: nets.NoiseAwareRegressor(2)(meta(4, 2), t4())),
    ("nets.NoiseAwareRegressor.check_target", "E", lambda: nets.NoiseAwareRegressor(2).check_target(full((4,), NAN))),
    ("nets.NoiseAwareRegressor.check_target", "E", lambda: nets.NoiseAwareRegressor(2).check_target(labels(4))),
    ("nets.NoiseAwareRegressor.log_prob", "E", lambda: nets.NoiseAwareRegressor(2).log_prob(z(4, 2), t4(), z(3))),
    ("nets.NULL_MODES", "null", lambda: mlp(cond="label", num_classes=3, null="mask")),
    ("nets.COND_KINDS", "cond", lambda: mlp(cond="text")),
    ("nets.ENERGY_FEATURES", "energy_features", lambda: mlp(cond="energy", energy_features="periodic")),
    # -- training -------------------------------------------------------------------------------------
    ("training.drop_condition", "p_uncond", lambda: training.drop_condition(labels(), 1.5, -1)),
    ("training.drop_condition", "generator", lambda: training.drop_condition(labels(), 0.5, -1, generator=0)),
    ("training.drop_condition", "p_uncond", lambda: training.drop_condition(labels(), NAN, -1)),
    ("training.drop_condition", "p_uncond", lambda: training.drop_condition(labels(), -0.1, -1)),
    ("training.drop_condition", "cond", lambda: training.drop_condition([1, 2], 0.5, -1)),
    ("training.drop_condition", "cond", lambda: training.drop_condition(torch.tensor(1), 0.5, -1)),
    ("training.train_eps_model", "p_uncond", lambda: train(p_uncond=1.5)),
    ("training.train_eps_model", "p_uncond", lambda: train(p_uncond=NAN)),
    ("training.train_eps_model", "p_uncond", lambda: train(p_uncond=0.1, cond=None)),
    ("training.train_eps_model", "model", lambda: train(model="net")),
    ("training.train_eps_model", "schedule", lambda: train(schedule="linear")),
    ("training.train_eps_model", "x0", lambda: train(x0=full((10, 2), NAN))),
    ("training.train_eps_model", "x0", lambda: train(x0=z(10))),
    ("training.train_eps_model", "x0", lambda: train(x0=labels(10)[:, None].expand(10, 2))),
    ("training.train_eps_model", "cond", lambda: train(cond=labels(3))),
    ("training.train_eps_model", "cond", lambda: train(cond=z(10))),
    ("training.train_eps_model", "steps", lambda: train(steps=0)),
    ("training.train_eps_model", "lr", lambda: train(lr=NAN)),
    ("training.train_eps_model", "batch_size", lambda: train(batch_size=0)),
    ("training.train_eps_model", "ema_decay", lambda: train(ema_decay=1.0)),
    ("training.train_eps_model", "lr_decay", lambda: train(lr_decay="linear")),
    ("training.train_predictor", "targets",
     lambda: training.train_predictor(nets.NoiseAwareRegressor(2), z(10, 2), full((10,), NAN), S, steps=1, progress=False)),
    ("training.train_predictor", "targets",
     lambda: training.train_predictor(nets.NoiseAwareRegressor(2), z(10, 2), z(3), S, steps=1, progress=False)),
    ("training.train_predictor", "predictor",
     lambda: training.train_predictor(mlp(), z(10, 2), z(10), S, steps=1, progress=False)),
    ("training.train_predictor", "weight_decay",
     lambda: training.train_predictor(nets.NoiseAwareRegressor(2), z(10, 2), z(10), S, weight_decay=-1.0, steps=1,
                                      progress=False)),
    # -- systems --------------------------------------------------------------------------------------
    ("systems.AlanineDipeptide", "platform", lambda: systems.AlanineDipeptide(platform="GPU")),
    ("systems.AlanineDipeptide.energy", "x", lambda: ala().energy(z(2, 21, 3, dtype=torch.float64))),
    ("systems.AlanineDipeptide.energy", "x", lambda: ala().energy(full((2, 22, 3), NAN))),
    ("systems.AlanineDipeptide.gradient", "x", lambda: ala().gradient(z(22, 3))),
    ("systems.AlanineDipeptide.energy_terms", "x", lambda: ala().energy_terms([[0.0] * 3] * 22)),
    ("systems.AlanineDipeptide.energy_terms", "names", lambda: ala().energy_terms(ala().x_crd, names=("Bonds",))),
    ("systems.AlanineDipeptide.torsions", "x", lambda: ala().torsions(z(2, 22, 2))),
    ("systems.AlanineDipeptide.omegas", "x", lambda: ala().omegas(torch.zeros(2, 22, 3, dtype=torch.long))),
    ("systems.AlanineDipeptide.chirality", "x", lambda: ala().chirality(full((1, 22, 3), INF))),
    ("systems.AlanineDipeptide.is_valid", "E", lambda: ala().is_valid(ala().x_crd, E=z(2, dtype=torch.float64))),
    ("systems.AlanineDipeptide.is_valid", "x", lambda: ala().is_valid(z(1, 3, 22))),
    ("systems.AlanineDipeptide.project", "x", lambda: ala().project(z(4, 22))),
    ("systems.AlanineDipeptide.internal_features", "x_train", lambda: ala().internal_features(ala().x_crd)),
    ("systems.load_md_data", "path", lambda: systems.load_md_data(path="no-such-file.npz")),
    ("internal_coordinates.wrap", "theta", lambda: internal_coordinates.wrap([0.0])),
    ("internal_coordinates.bond_angle", "x_c", lambda: internal_coordinates.bond_angle(z(4, 3), z(4, 3), z(4, 2))),
    ("internal_coordinates.bond_angle", "x_b", lambda: internal_coordinates.bond_angle(z(4, 3), meta(4, 3), z(4, 3))),
    ("internal_coordinates.dihedral", "x_d",
     lambda: internal_coordinates.dihedral(z(4, 3), z(4, 3), z(4, 3), full((4, 3), NAN))),
    ("internal_coordinates.nerf", "bond", lambda: internal_coordinates.nerf(z(4, 3), z(4, 3), z(4, 3), z(4, 1), z(4), z(4))),
    ("internal_coordinates.nerf", "torsion", lambda: internal_coordinates.nerf(z(4, 3), z(4, 3), z(4, 3), z(4), z(4), z(5))),
    ("internal_coordinates.nerf", "x_a",
     lambda: internal_coordinates.nerf(z(2, 4, 3), z(2, 4, 3), z(2, 4, 3), z(2), z(2), z(2))),
    ("internal_coordinates.kabsch_align", "y", lambda: internal_coordinates.kabsch_align(z(2, 5, 3), z(2, 4, 3))),
    ("internal_coordinates.kabsch_align", "x", lambda: internal_coordinates.kabsch_align(z(2, 5), z(2, 5, 3))),
    ("internal_coordinates.ZMatrix", "rows", lambda: internal_coordinates.ZMatrix((0, 1, 2), ((3, 2, 1, 7),))),
    ("internal_coordinates.ZMatrix", "root", lambda: internal_coordinates.ZMatrix((0, 1), ())),
    ("internal_coordinates.ZMatrix.to_internal", "x", lambda: TOY.to_internal(z(2, 6, 3))),
    ("internal_coordinates.ZMatrix.to_cartesian", "bonds", lambda: TOY.to_cartesian(z(4), z(2, 3), z(2, 2))),
    ("internal_coordinates.ZMatrix.to_cartesian", "angles", lambda: TOY.to_cartesian(z(2, 4), z(2, 4), z(2, 2))),
    ("internal_coordinates.ZMatrix.to_cartesian", "torsions", lambda: TOY.to_cartesian(z(2, 4), z(2, 3), meta(2, 2))),
    ("internal_coordinates.ZMatrix.project", "r0", lambda: TOY.project(z(2, 5, 3), z(5))),
    ("internal_coordinates.ZMatrix.project", "x", lambda: TOY.project(z(2, 5), z(4))),
    ("internal_coordinates.InternalFeatures.encode", "x", lambda: features().encode(z(2, 6, 3))),
    ("internal_coordinates.InternalFeatures.decode", "f", lambda: features().decode(z(2, 3))),
    ("internal_coordinates.InternalFeatures.decode", "f", lambda: features().decode(full((2, 6), NAN))),
    ("alanine_md.simulate", "ala", lambda: alanine_md.simulate("alanine", 300.0, 2, seed=1)),
    ("alanine_md.simulate", "temperature", lambda: alanine_md.simulate(ala(), NAN, 2, seed=1)),
    ("alanine_md.simulate", "n_frames", lambda: alanine_md.simulate(ala(), 300.0, 0, seed=1)),
    ("alanine_md.simulate", "seed", lambda: alanine_md.simulate(ala(), 300.0, 2, seed=0)),
    ("alanine_md.simulate", "x0", lambda: alanine_md.simulate(ala(), 300.0, 2, seed=1, x0=z(21, 3).numpy())),
    ("alanine_md.build_md_data", "ns_train", lambda: alanine_md.build_md_data(ns_train=0.0)),
    ("alanine_md.build_md_data", "ns_test", lambda: alanine_md.build_md_data(ns_test=NAN)),
    ("alanine_md.load_md_data", "path", lambda: alanine_md.load_md_data(path=pathlib.Path("no-such-file.npz"))),
    ("alanine_md.build_extra_data", "ns", lambda: alanine_md.build_extra_data(ns=0.0)),
    ("alanine_md.build_extra_data", "ns_floor", lambda: alanine_md.build_extra_data(ns_floor=NAN)),
    ("alanine_md.load_extra_data", "path", lambda: alanine_md.load_extra_data(path=pathlib.Path("no-such-file.npz"))),
    ("temperature.mbar_free_energies", "temperature_of_frame",
     lambda: temperature_dial.mbar_free_energies(torch.ones(4), torch.ones(3))),
    ("temperature.canonical_weights", "temperature",
     lambda: temperature_dial.canonical_weights(torch.ones(4), torch.full((4,), 300.0), 0.0)),
    ("temperature.log_density_of_states", "edges",
     lambda: temperature_dial.log_density_of_states(torch.ones(4), torch.full((4,), 300.0), torch.tensor([1.0]))),
    ("temperature.temperature_dial", "sample_at_energy",
     lambda: temperature_dial.temperature_dial("model", torch.ones(4), torch.full((4,), 300.0), 300.0, 2)),
    ("temperature.temperature_dial", "n",
     lambda: temperature_dial.temperature_dial(lambda e: e, torch.ones(4), torch.full((4,), 300.0), 300.0, 0)),
    ("systems.MullerBrown.energy", "x", lambda: systems.MullerBrown().energy(z(3, 3))),
    ("systems.MullerBrown.energy", "x", lambda: systems.MullerBrown().energy(full((3, 2), NAN))),
    ("systems.MullerBrown.energy", "x", lambda: systems.MullerBrown().energy(labels(3)[:, None].expand(3, 2))),
    ("systems.MullerBrown.gradient", "x", lambda: systems.MullerBrown().gradient([[0.0, 0.0]])),
    ("systems.MullerBrown.gradient", "x", lambda: systems.MullerBrown().gradient(labels(3)[:, None].expand(3, 2))),
    ("systems.MullerBrown.grid", "resolution", lambda: systems.MullerBrown().grid(1)),
    ("systems.MullerBrown.grid", "resolution", lambda: systems.MullerBrown().grid(2.5)),
    ("systems.MullerBrown.basin", "steps", lambda: systems.MullerBrown().basin(z(4, 2), steps=0)),
    ("systems.MullerBrown.basin", "step_size", lambda: systems.MullerBrown().basin(z(4, 2), step_size=NAN)),
    ("systems.MullerBrown.basin", "x", lambda: systems.MullerBrown().basin(z(4))),
    ("systems.BoltzmannData.standardize", "x", lambda: data().standardize(z(4, 3))),
    ("systems.BoltzmannData.in_band", "E", lambda: data().in_band("energies")),
    ("systems.MullerBrown.level_set_weights", "E_star", lambda: systems.MullerBrown().level_set_weights(NAN)),
    ("systems.MullerBrown.level_set_weights", "E_star", lambda: systems.MullerBrown().level_set_weights(1e9)),
    ("systems.MullerBrown.level_set_weights", "resolution", lambda: systems.MullerBrown().level_set_weights(-60.0, resolution=3)),
    ("systems.boltzmann_dataset", "heldout_band",
     lambda: systems.boltzmann_dataset(10, 10, resolution=20, heldout_band=(-90.0, -100.0))),
    ("systems.BoltzmannData.standardize", "x", lambda: data().standardize([[0.0, 0.0]])),
    ("systems.BoltzmannData.unstandardize", "z", lambda: data().unstandardize(full((4, 2), NAN))),
    ("systems.BoltzmannData.log_density", "x", lambda: data().log_density(z(4))),
    ("systems.BoltzmannData.conditional_reference", "E_star", lambda: data().conditional_reference(NAN, 10)),
    ("systems.BoltzmannData.conditional_reference", "delta", lambda: data().conditional_reference(-100.0, 10, delta=0.0)),
    ("systems.BoltzmannData.conditional_reference", "n", lambda: data().conditional_reference(-100.0, 0)),
    ("systems.boltzmann_dataset", "n_train", lambda: systems.boltzmann_dataset(0)),
    ("systems.boltzmann_dataset", "n_test", lambda: systems.boltzmann_dataset(10, -1)),
    ("systems.boltzmann_dataset", "temperatures", lambda: systems.boltzmann_dataset(10, 10, temperatures=5.0)),
    ("systems.boltzmann_dataset", "temperatures", lambda: systems.boltzmann_dataset(10, 10, temperatures=(10.0, -1.0))),
    ("systems.boltzmann_dataset", "temperatures", lambda: systems.boltzmann_dataset(10, 10, temperatures=(NAN,))),
    ("systems.boltzmann_dataset", "resolution", lambda: systems.boltzmann_dataset(10, 10, resolution=5)),
    # -- metrics --------------------------------------------------------------------------------------
    ("metrics.energy_error", "energies", lambda: metrics.energy_error(torch.tensor([NAN]), 1.0)),
    ("metrics.energy_error", "energies", lambda: metrics.energy_error(z(3, 2), 1.0)),
    ("metrics.energy_error", "target", lambda: metrics.energy_error(z(3), INF)),
    ("metrics.wasserstein_1d", "a", lambda: metrics.wasserstein_1d(torch.tensor([]), z(3))),
    ("metrics.wasserstein_1d", "b", lambda: metrics.wasserstein_1d(z(3), [1.0, NAN])),
    ("metrics.sliced_wasserstein", "x", lambda: metrics.sliced_wasserstein(full((3, 2), NAN), z(3, 2))),
    ("metrics.sliced_wasserstein", "y", lambda: metrics.sliced_wasserstein(z(3, 2), z(3))),
    ("metrics.sliced_wasserstein", "n_projections", lambda: metrics.sliced_wasserstein(z(3, 2), z(3, 2), n_projections=0)),
    ("metrics.sliced_wasserstein", "x_weights", lambda: metrics.sliced_wasserstein(z(3, 2), z(3, 2), x_weights=z(2))),
    ("metrics.sliced_wasserstein", "y_weights", lambda: metrics.sliced_wasserstein(z(3, 2), z(3, 2), y_weights=-torch.ones(3))),
    ("metrics.basin_occupancy", "basins", lambda: metrics.basin_occupancy(torch.tensor([0, 3]), 3)),
    ("metrics.basin_occupancy", "basins", lambda: metrics.basin_occupancy(torch.zeros(4, 2, dtype=torch.long), 3)),
    ("metrics.basin_occupancy", "n_basins", lambda: metrics.basin_occupancy(labels(), 0)),
    ("metrics.classifier_accuracy", "classifier", lambda: metrics.classifier_accuracy("judge", z(4, 2), labels())),
    ("metrics.classifier_accuracy", "labels", lambda: metrics.classifier_accuracy(lambda x: x, z(4, 2), labels(3))),
    ("metrics.classifier_accuracy", "x", lambda: metrics.classifier_accuracy(lambda x: x, full((4, 2), NAN), labels())),
    ("metrics.within_class_distance", "labels", lambda: metrics.within_class_distance(z(3, 2), labels(4), 2)),
    ("metrics.within_class_distance", "num_classes", lambda: metrics.within_class_distance(z(4, 2), labels(), 0)),
    ("metrics.within_class_distance", "x", lambda: metrics.within_class_distance(full((4, 2), NAN), labels(), 2)),
    ("metrics.z_scores", "regressor", lambda: metrics.z_scores("regressor", z(4, 2), 0, z(4))),
    ("metrics.z_scores", "E", lambda: metrics.z_scores(lambda x, t: (z(4), z(4)), z(4, 2), 0, z(3))),
    ("metrics.coverage", "z", lambda: metrics.coverage(z(4, 2), 0.95)),
    ("metrics.coverage", "level", lambda: metrics.coverage(z(4), 1.5)),
    ("metrics.coverage", "level", lambda: metrics.coverage(z(4), NAN)),
    ("metrics.circular_wasserstein", "a", lambda: metrics.circular_wasserstein(torch.tensor([]), z(3))),
    ("metrics.circular_wasserstein", "b", lambda: metrics.circular_wasserstein(z(3), [0.0, INF])),
    # -- reporting ------------------------------------------------------------------------------------
    ("reporting.significant", "digits", lambda: reporting.significant(1.0, 0)),
    ("reporting.significant", "value", lambda: reporting.significant("1.0")),
    ("reporting.decimals_for", "se", lambda: reporting.decimals_for(-1.0)),
    ("reporting.fmt", "decimals", lambda: reporting.fmt(1.0, -1)),
    ("reporting.estimate", "se", lambda: reporting.estimate(1.0, 0.0)),
    ("reporting.mean_and_se", "values", lambda: reporting.mean_and_se([1.0])),
    # -- stats ----------------------------------------------------------------------------------------
    ("stats.t_quantile", "dof", lambda: stats.t_quantile(0)),
    ("stats.t_quantile", "level", lambda: stats.t_quantile(3, level=95)),
    ("stats.replicates", "values", lambda: stats.replicates([1.0])),
    ("stats.replicates", "values", lambda: stats.replicates([1.0, NAN])),
    ("stats.replicates", "level", lambda: stats.replicates([1.0, 2.0], level=0.0)),
    ("stats.paired", "a", lambda: stats.paired([1.0, 2.0], [1.0, 2.0, 3.0])),
    ("stats.paired", "b", lambda: stats.paired([1.0, 2.0], "ab")),
    ("stats.paired", "names", lambda: stats.paired([1.0, 2.0], [2.0, 3.0], names=("A",))),
    ("stats.unpaired", "a", lambda: stats.unpaired([[1.0, 2.0]], [1.0, 2.0])),
    ("stats.unpaired", "names", lambda: stats.unpaired([1.0, 2.0], [2.0, 3.0], names="AB")),
    ("stats.against", "values", lambda: stats.against([1.0], 0.5)),
    ("stats.against", "reference", lambda: stats.against([1.0, 2.0], NAN)),
    ("stats.against", "reference_se", lambda: stats.against([1.0, 2.0], 0.5, reference_se=-0.1)),
    ("stats.against", "names", lambda: stats.against([1.0, 2.0], 0.5, names=("A",))),
    ("stats.statistical_inefficiency", "series", lambda: stats.statistical_inefficiency([1.0, 2.0])),
    ("stats.effective_size", "series", lambda: stats.effective_size([1.0, INF, 2.0])),
    ("stats.series_mean", "series", lambda: stats.series_mean(z(3, 2))),
    ("stats.series_mean", "level", lambda: stats.series_mean([1.0, 2.0, 3.0], level=2)),
    ("stats.share", "indicator", lambda: stats.share([0.0, 0.5, 1.0])),
    ("stats.share", "level", lambda: stats.share([0.0, 1.0, 1.0], level=-1)),
    ("stats.pymbar_module", "name", lambda: stats.pymbar_module("no_such_module")),
    ("stats.Estimate.contains", "value", lambda: stats.replicates([1.0, 2.0]).contains("x")),
    # -- grading: the bad input is the student's function, reported as "fail", never raised -------------
    *[(f"grading.{name}", FAILS, lambda name=name, bad=bad: getattr(grading, name)(bad))
      for name in ("check_classifier_guided_eps", "check_shifted_mean", "check_grad_log_likelihood", "check_cfg",
                   "check_drop_condition", "check_cfg_sampler")
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((2, 2), NAN))],
    *[(f"grading.{name}", FAILS, lambda name=name, bad=bad: getattr(grading, name)(bad))
      for name in ("check_gaussian_nll", "check_z_scores", "check_coverage")
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((2, 2), NAN))],
    *[(f"grading.{name}", FAILS, lambda name=name, bad=bad: getattr(grading, name)(bad))
      for name in ("check_mmps_eps", "check_exact_posterior", "check_interval_cfg", "check_window_moments")
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((2, 2), NAN))],
    *[("grading.check_guided_ddim", FAILS, lambda bad=bad: grading.check_guided_ddim(bad))
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((64, 2), NAN))],
    ("grading.check_guided_table", FAILS, lambda: grading.check_guided_table("table", seed=0)),
    ("grading.check_guided_table", FAILS, lambda: grading.check_guided_table({}, seed="0")),
    ("grading.check_dropout_experiment", FAILS, lambda: grading.check_dropout_experiment(
        "results", trained={}, seed=0, mixture=None, schedule=None, rates=(0.05, 0.5), gammas=(1.0, 3.0), n_nets=2,
        n=10, num_steps=5, make_net=None)),
    ("grading.check_dropout_experiment", FAILS, lambda: grading.check_dropout_experiment(
        {}, trained={}, seed=None, mixture=None, schedule=None, rates=(0.05, 0.5), gammas=(1.0, 3.0), n_nets=2,
        n=10, num_steps=5, make_net=None)),
    ("grading.check_mmps_report", FAILS, lambda: mmps_report("report", z(4, 2))),
    ("grading.check_mmps_report", FAILS, lambda: mmps_report({}, full((20, 2), NAN))),
    ("grading.check_mmps_report", "prior", lambda: mmps_report(None, None, prior="prior")),
    ("grading.check_mmps_report", "a", lambda: mmps_report(None, None, a=torch.ones(3, dtype=torch.float64))),
    ("grading.check_mmps_report", "sigma_y", lambda: mmps_report(None, None, sigma_y=0.0)),
    ("grading.check_mmps_report", "schedule", lambda: mmps_report(None, None, schedule="linear")),
    ("grading.check_mmps_report", "num_steps", lambda: mmps_report(None, None, num_steps=0)),
    *[(f"grading.{name}", FAILS, lambda name=name, bad=bad: getattr(grading, name)(bad))
      for name in ("check_log_weight_increment", "check_systematic_resample", "check_smc_sampler")
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((2, 2), NAN),
                  lambda *args: (torch.full((2, 2), NAN), torch.zeros(2)))],
    # the student's report and samples: a "fail" report
    ("grading.check_energy_report", FAILS, lambda: energy_report("report", {})),
    ("grading.check_energy_report", FAILS,
     lambda: energy_report({g: {"energy_error": NAN, "sliced_w1": 1.0} for g in (1.0, 2.0, 3.0)},
                           {g: z(4, 2) for g in (1.0, 2.0, 3.0)})),
    ("grading.check_energy_report", FAILS,
     lambda: energy_report({g: {"energy_error": 0.0, "sliced_w1": 0.0} for g in (1.0, 2.0, 3.0)},
                           {g: "samples" for g in (1.0, 2.0, 3.0)})),
    ("grading.check_energy_report", FAILS,
     lambda: energy_report({g: {"energy_error": 0.0, "sliced_w1": 0.0} for g in (1.0, 2.0, 3.0)},
                           {g: full((4, 2), NAN) for g in (1.0, 2.0, 3.0)})),
    ("grading.check_guided_report", FAILS, lambda: guided_report({"energy_error": 0.0}, "samples")),
    ("grading.check_guided_report", FAILS, lambda: guided_report({"energy_error": 0.0}, full((4, 2), INF))),
    ("grading.check_guided_report", FAILS, lambda: guided_report("report", z(4, 2))),
    # the notebook's own arguments: an error that names them
    ("grading.check_energy_report", "data", lambda: energy_report(None, None, data="data")),
    ("grading.check_energy_report", "eps_model", lambda: energy_report(None, None, eps_model=lambda x, t, c: x)),
    ("grading.check_energy_report", "schedule", lambda: energy_report(None, None, schedule="linear")),
    ("grading.check_energy_report", "schedule", lambda: energy_report(None, None, schedule=S)),
    ("grading.check_energy_report", "target", lambda: energy_report(None, None, target=NAN)),
    ("grading.check_energy_report", "n", lambda: energy_report(None, None, n=0)),
    ("grading.check_guided_report", "regressor", lambda: guided_report(None, None, regressor="regressor")),
    ("grading.check_guided_report", "scale", lambda: guided_report(None, None, scale=-1.0)),
    ("grading.check_guided_report", "target", lambda: guided_report(None, None, target="E")),
    # the block form (assignments 3 and 4): the notebook's blocks and shipped regressor
    ("grading.check_energy_report", "blocks", lambda: energy_report(None, None, blocks=1)),
    ("grading.check_energy_report", "blocks", lambda: energy_report(None, None, blocks=5.0)),
    ("grading.check_guided_report", "blocks", lambda: guided_report(None, None, blocks=True,
                                                                    shipped=muller_brown()[2])),
    ("grading.check_guided_report", "shipped", lambda: guided_report(None, None, blocks=5, shipped="regressor")),
    ("grading.check_guided_report", "shipped", lambda: guided_report(None, None, blocks=5)),
    ("grading.check_guided_report", "shipped", lambda: guided_report(None, None, shipped=muller_brown()[2])),
    # the student's blocks: a "fail" report
    ("grading.check_energy_report", FAILS,
     lambda: energy_report({g: {"energy_error": 0.0, "sliced_w1": 0.0} for g in (1.0, 2.0, 3.0)},
                           {g: z(4, 2) for g in (1.0, 2.0, 3.0)}, blocks=2)),
    ("grading.check_energy_report", FAILS,
     lambda: energy_report({g: {"energy_error": {"blocks": [NAN, 0.0]}, "sliced_w1": 0.0} for g in (1.0, 2.0, 3.0)},
                           {g: full((2, 4, 2), NAN) for g in (1.0, 2.0, 3.0)}, blocks=2)),
    ("grading.check_guided_report", FAILS,
     lambda: guided_report({"yours": [0.0, 0.0]}, z(2, 4, 2), blocks=2, shipped=muller_brown()[2])),
    ("grading.check_guided_report", FAILS,
     lambda: guided_report("report", {"yours": z(2, 4, 2), "shipped": z(3, 4, 2)}, blocks=2,
                           shipped=muller_brown()[2])),
    # chapter 9b: the newer CFG variants
    ("sampling.gaussian_sampler_moments", "gamma",
     lambda: sampling.gaussian_sampler_moments(0.0, 1.0, S, gamma=lambda t: -1.0, mean_u=0.0, var_u=1.0)),
    ("variants.QUANTITIES", "quantity", lambda: variants.guide_in(lambda c, u: c, z(4, 2), z(4, 2), z(4, 2), 3, S, quantity="x1")),
    ("variants.guide_in", "rule", lambda: variants.guide_in(3, z(4, 2), z(4, 2), z(4, 2), 3, S, quantity="eps")),
    ("variants.guide_in", "rule", lambda: variants.guide_in(lambda c, u: c[:, 0], z(4, 2), z(4, 2), z(4, 2), 3, S, quantity="eps")),
    ("variants.guide_in", "schedule", lambda: variants.guide_in(lambda c, u: c, z(4, 2), z(4, 2), z(4, 2), 3, None, quantity="x0")),
    ("variants.guide_in", "eps_uncond", lambda: variants.guide_in(lambda c, u: c, z(4, 2), meta(4, 2), z(4, 2), 3, S, quantity="eps")),
    ("variants.guide_in", "x_t", lambda: variants.guide_in(lambda c, u: c, z(4, 2), z(4, 2), meta(4, 2), 3, S, quantity="eps")),
    ("variants.cfgpp_scale", "lam", lambda: variants.cfgpp_scale(S, 5, 3, -1.0)),
    ("variants.cfgpp_scale", "t_prev", lambda: variants.cfgpp_scale(S, 5, 7, 0.5)),
    ("variants.cfgpp_scale", "eta", lambda: variants.cfgpp_scale(S, 5, 3, 0.5, eta=NAN)),
    ("variants.CFGPlusPlusModel", "lam", lambda: variants.CFGPlusPlusModel(exact()[0], NAN, S, num_steps=5)),
    ("variants.CFGPlusPlusModel", "num_steps", lambda: variants.CFGPlusPlusModel(exact()[0], 0.5, S, num_steps=20)),
    ("variants.CFGPlusPlusModel.scale_at", "t", lambda: variants.CFGPlusPlusModel(exact()[0], 0.5, S, num_steps=5).scale_at(3)),
    ("variants.CFGPlusPlusModel.scale_at", "t", lambda: variants.CFGPlusPlusModel(exact()[0], 0.5, S, num_steps=5).scale_at(2.5)),
    ("variants.cfgpp_model", "eta", lambda: variants.cfgpp_model(exact()[0], 0.5, S, num_steps=5, eta=-1.0)),
    ("variants.cfgpp_model", "spacing", lambda: variants.cfgpp_model(exact()[0], 0.5, S, num_steps=5, spacing="middle")),
    ("variants.cfgpp_model", "t", lambda: variants.cfgpp_model(exact()[0], 0.5, S, num_steps=5)(z(4, 2), 6, labels())),
    ("variants.cfgpp_model", "t", lambda: variants.cfgpp_model(exact()[0], 0.5, S, num_steps=5)(z(4, 2), t4(8), labels())),
    ("variants.apg", "pred_uncond", lambda: variants.apg(z(4, 2), meta(4, 2), 2.0)),
    ("variants.apg", "pred_cond", lambda: variants.apg(z(4), z(4), 2.0)),
    ("variants.apg", "form", lambda: variants.apg(z(4, 2), z(4, 2), 2.0, form="original")),
    ("variants.apg", "norm_threshold", lambda: variants.apg(z(4, 2), z(4, 2), 2.0, norm_threshold=-1.0)),
    ("variants.apg", "eta", lambda: variants.apg(z(4, 2), z(4, 2), 2.0, eta=NAN)),
    ("variants.apg", "gamma", lambda: variants.apg(z(4, 2), z(4, 2), -1.0)),
    ("variants.APGModel", "momentum", lambda: variants.APGModel(exact()[0], 2.0, momentum=1.0, quantity="eps")),
    ("variants.APGModel", "quantity", lambda: variants.APGModel(exact()[0], 2.0, quantity="x1")),
    ("variants.APGModel", "schedule", lambda: variants.APGModel(exact()[0], 2.0, quantity="x0")),
    ("variants.APGModel", "gamma", lambda: variants.APGModel(exact()[0], NAN, quantity="eps")),
    ("variants.APGModel.__call__", "cond", lambda: variants.APGModel(exact()[0], 2.0, quantity="eps")(z(4, 2), 5, None)),
    ("variants.APGModel.__call__", "t",
     lambda: variants.APGModel(exact()[0], 2.0, momentum=-0.5, quantity="eps")(z(4, 2), t4(5), labels())),
    ("variants.apg_model", "eps_model", lambda: variants.apg_model("model", 2.0, null=-1, quantity="eps")),
    ("variants.apg_model", "form", lambda: variants.apg_model(exact()[0], 2.0, form="x", quantity="eps")),
    ("variants.zero_star_scale", "pred_uncond", lambda: variants.zero_star_scale(z(4, 2), meta(4, 2))),
    ("variants.zero_star_scale", "pred_cond", lambda: variants.zero_star_scale(labels(4), labels(4))),
    ("variants.cfg_zero_star", "gamma", lambda: variants.cfg_zero_star(z(4, 2), z(4, 2), NAN)),
    ("variants.cfg_zero_star", "pred_uncond", lambda: variants.cfg_zero_star(z(4, 2), z(4, 3), 2.0)),
    ("variants.CFGZeroStarModel", "zero_init_steps", lambda: variants.CFGZeroStarModel(exact()[0], 2.0, zero_init_steps=-1, quantity="eps")),
    ("variants.CFGZeroStarModel", "optimized_scale", lambda: variants.CFGZeroStarModel(exact()[0], 2.0, optimized_scale="yes", quantity="eps")),
    ("variants.CFGZeroStarModel", "schedule", lambda: variants.CFGZeroStarModel(exact()[0], 2.0)),
    ("variants.CFGZeroStarModel.__call__", "t", lambda: variants.CFGZeroStarModel(exact()[0], 2.0, quantity="eps")(z(4, 2), t4(5), labels())),
    ("variants.CFGZeroStarModel.__call__", "cond", lambda: variants.CFGZeroStarModel(exact()[0], 2.0, quantity="eps")(z(4, 2), 5, None)),
    ("variants.cfg_zero_star_model", "gamma", lambda: variants.cfg_zero_star_model(exact()[0], -1.0, quantity="eps")),
    # tweedie (chapter 9)
    ("tweedie.tweedie_vjp", "eps_model", lambda: tweedie.tweedie_vjp("model", z(4, 2), 5, None, S)),
    ("tweedie.tweedie_vjp", "schedule", lambda: tweedie.tweedie_vjp(exact()[0], z(4, 2), 5, None, "linear")),
    ("tweedie.tweedie_vjp", "x_t", lambda: tweedie.tweedie_vjp(exact()[0], [[0.0, 0.0]], 5, None, S)),
    ("tweedie.tweedie_vjp", "x_t", lambda: tweedie.tweedie_vjp(exact()[0], z(4, 2, dtype=torch.long), 5, None, S)),
    ("tweedie.posterior_covariance", "schedule",
     lambda: tweedie.posterior_covariance(exact()[0], z(4, 2), 5, None, None)),
    ("tweedie.posterior_covariance", "x_t", lambda: tweedie.posterior_covariance(exact()[0], 3.0, 5, None, S)),
    ("tweedie.DPSModel", "eps_model", lambda: tweedie.DPSModel("model", lambda x0, y: x0.sum(1), S)),
    ("tweedie.DPSModel", "log_likelihood", lambda: tweedie.DPSModel(exact()[0], "gaussian", S)),
    ("tweedie.DPSModel", "schedule", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), "linear")),
    ("tweedie.DPSModel", "scale", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), S, scale=-1.0)),
    ("tweedie.DPSModel", "scale", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), S, scale=NAN)),
    ("tweedie.DPSModel", "model_cond", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), S, model_cond=1)),
    ("tweedie.DPSModel.__call__", "cond", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), S)(z(4, 2), 5, None)),
    ("tweedie.DPSModel.__call__", "x_t", lambda: tweedie.DPSModel(exact()[0], lambda x0, y: x0.sum(1), S)(3.0, 5, z(4))),
    ("tweedie.dps_model", "log_likelihood", lambda: tweedie.dps_model(exact()[0], None, S)),
    ("tweedie.dps_model", "scale", lambda: tweedie.dps_model(exact()[0], lambda x0, y: x0.sum(1), S, scale=INF)),
    ("tweedie.MMPSModel", "observe", lambda: tweedie.MMPSModel(exact()[0], "identity", 0.1, S)),
    ("tweedie.MMPSModel", "observe", lambda: tweedie.MMPSModel(exact()[0], z(2), 0.1, S)),
    ("tweedie.MMPSModel", "observe", lambda: tweedie.MMPSModel(exact()[0], full((1, 2), NAN), 0.1, S)),
    ("tweedie.MMPSModel", "sigma_y", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.0, S)),
    ("tweedie.MMPSModel", "sigma_y", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), NAN, S)),
    ("tweedie.MMPSModel", "schedule", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.1, 1000)),
    ("tweedie.MMPSModel", "scale", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.1, S, scale=-0.5)),
    ("tweedie.MMPSModel", "model_cond", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.1, S, model_cond="no")),
    ("tweedie.MMPSModel.__call__", "cond", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.1, S)(z(4, 2), 5, None)),
    ("tweedie.MMPSModel.__call__", "x_t", lambda: tweedie.MMPSModel(exact()[0], z(1, 2), 0.1, S)(None, 5, z(4))),
    ("tweedie.mmps_model", "sigma_y", lambda: tweedie.mmps_model(exact()[0], z(1, 2), -1.0, S)),
    ("tweedie.mmps_model", "eps_model", lambda: tweedie.mmps_model(None, z(1, 2), 0.1, S)),
    ("tweedie.PiGDMModel", "observe", lambda: tweedie.PiGDMModel(exact()[0], "mask", 0.1, S)),
    ("tweedie.PiGDMModel", "observe", lambda: tweedie.PiGDMModel(exact()[0], z(2, dtype=torch.long).reshape(1, 2), 0.1, S)),
    ("tweedie.PiGDMModel", "sigma_y", lambda: tweedie.PiGDMModel(exact()[0], z(1, 2), -0.1, S)),
    ("tweedie.PiGDMModel", "schedule", lambda: tweedie.PiGDMModel(exact()[0], z(1, 2), 0.1, "linear")),
    ("tweedie.PiGDMModel", "model_cond", lambda: tweedie.PiGDMModel(exact()[0], z(1, 2), 0.1, S, model_cond=None)),
    ("tweedie.PiGDMModel.__call__", "cond", lambda: tweedie.PiGDMModel(exact()[0], z(1, 2), 0.1, S)(z(4, 2), 5, None)),
    ("tweedie.pigdm_model", "eps_model", lambda: tweedie.pigdm_model(3, z(1, 2), 0.1, S)),
    ("tweedie.pigdm_model", "scale", lambda: tweedie.pigdm_model(exact()[0], z(1, 2), 0.1, S, scale=NAN)),
    ("tweedie.TMPDModel", "observe", lambda: tweedie.TMPDModel(exact()[0], z(2, 2, 2), 0.1, S)),
    ("tweedie.TMPDModel", "sigma_y", lambda: tweedie.TMPDModel(exact()[0], z(1, 2), INF, S)),
    ("tweedie.TMPDModel", "scale", lambda: tweedie.TMPDModel(exact()[0], z(1, 2), 0.1, S, scale=-1.0)),
    ("tweedie.TMPDModel.__call__", "x_t", lambda: tweedie.TMPDModel(exact()[0], z(1, 2), 0.1, S)([[0.0, 0.0]], 5, z(1))),
    ("tweedie.tmpd_model", "sigma_y", lambda: tweedie.tmpd_model(exact()[0], z(1, 2), 0.0, S)),
    ("tweedie.tmpd_model", "eps_model", lambda: tweedie.tmpd_model("model", z(1, 2), 0.1, S)),
    # with model_cond=True the eps-model's condition check is passed on (a label outside its 3 classes)
    ("tweedie.DPSModel.check_condition", "cond", lambda: tweedie.DPSModel(
        mlp(cond="label", num_classes=3), lambda x0, y: x0.sum(1), S, model_cond=True).check_condition(labels(4, 3))),
    ("tweedie.MMPSModel.check_condition", "cond", lambda: tweedie.MMPSModel(
        mlp(cond="label", num_classes=3), z(1, 2), 0.1, S, model_cond=True).check_condition(labels(4, 3))),
    ("tweedie.PiGDMModel.check_condition", "cond", lambda: tweedie.PiGDMModel(
        mlp(cond="label", num_classes=3), z(1, 2), 0.1, S, model_cond=True).check_condition(labels(4, -2))),
    ("tweedie.TMPDModel.check_condition", "cond", lambda: tweedie.TMPDModel(
        mlp(cond="label", num_classes=3), z(1, 2), 0.1, S, model_cond=True).check_condition(labels(4, 3))),
    ("tweedie.energy_guided_model", "energy", lambda: tweedie.energy_guided_model(exact()[0], "V", S, 1.0)),
    ("tweedie.energy_guided_model", "tau", lambda: tweedie.energy_guided_model(exact()[0], lambda x: x.sum(1), S, 0.0)),
    ("tweedie.energy_guided_model", "tau", lambda: tweedie.energy_guided_model(exact()[0], lambda x: x.sum(1), S, NAN)),
    ("tweedie.energy_guided_model", "covariance",
     lambda: tweedie.energy_guided_model(exact()[0], lambda x: x.sum(1), S, 1.0, covariance="mmps")),
    ("tweedie.energy_guided_model", "schedule",
     lambda: tweedie.energy_guided_model(exact()[0], lambda x: x.sum(1), "linear", 1.0, covariance=False)),
    ("tweedie.energy_guided_model", "scale",
     lambda: tweedie.energy_guided_model(exact()[0], lambda x: x.sum(1), S, 1.0, scale=-2.0)),
    ("tweedie.affine_sampler_moments", "eps_model", lambda: tweedie.affine_sampler_moments("model", S, 2)),
    ("tweedie.affine_sampler_moments", "dim", lambda: tweedie.affine_sampler_moments(exact()[0], S, 0)),
    ("tweedie.affine_sampler_moments", "schedule", lambda: tweedie.affine_sampler_moments(exact()[0], "linear", 2)),
    ("tweedie.affine_sampler_moments", "variance",
     lambda: tweedie.affine_sampler_moments(exact()[0], S, 2, variance="medium")),
    ("tweedie.affine_sampler_moments", "num_steps",
     lambda: tweedie.affine_sampler_moments(exact()[0], S, 2, sampler="ddpm", num_steps=5)),
    ("tweedie.affine_sampler_moments", "eps_model",
     lambda: tweedie.affine_sampler_moments(exact()[0], S, 2, sampler="ddim", num_steps=3)),
    # -- grader ------------------------------------------------------------------------------------------
    ("grader.Task", "kind", lambda: grader.Task("t", "a2-07", 2, "multiple choice")),
    ("grader.rubrics", "assignment", lambda: grader.rubrics("a9_none")),
    ("grader.Task", "points", lambda: grader.Task("t", "a2-07", -1, "written")),
    ("grader.Task", "check", lambda: grader.Task("t", "a2-07", 2, "function")),
    ("grader.screen", "source", lambda: grader.screen(["def f(): pass"], set())),
    ("grader.copied", "source", lambda: grader.copied(b"def f(): pass")),
    ("grader.grade_notebook", "path", lambda: grader.grade_notebook("no such notebook.ipynb")),
    ("grader.grade_notebook", "timeout",
     lambda: grader.grade_notebook(grader.TEMPLATES / "a2_classifier_free_guidance.ipynb", timeout=0)),
    ("grader.grade_folder", "folder", lambda: grader.grade_folder("no such folder")),
    ("grader.grade_folder", "jobs", lambda: grader.grade_folder(grader.TEMPLATES, jobs=0)),
    ("grader.main", "folder", lambda: grader.main(["no such folder"])),
    # -- assignment 7: the student's functions and report (a "fail"), the notebook's own arguments (an error)
    *[(f"grading.{name}", FAILS, lambda name=name, bad=bad: getattr(grading, name)(bad))
      for name in ("check_nerf_place", "check_band_share", "check_gap_verdict")
      for bad in ("not a function", None, not_a_function, lambda *args: torch.full((2, 2), NAN))],
    ("grading.check_core_report", FAILS, lambda: core_report({}, "samples")),
    ("grading.check_core_report", FAILS, lambda: core_report({}, full((4, 22, 3), NAN))),
    ("grading.check_core_report", FAILS, lambda: core_report({}, z(4, 22, 3), seed="0")),
    ("grading.check_core_report", "system", lambda: core_report(None, None, system="system")),
    ("grading.check_core_report", "features", lambda: core_report(None, None, features="features")),
    ("grading.check_core_report", "eps_model", lambda: core_report(None, None, eps_model=lambda x, t, c: x)),
    ("grading.check_core_report", "schedule", lambda: core_report(None, None, schedule="linear")),
    ("grading.check_core_report", "target", lambda: core_report(None, None, target=NAN)),
    ("grading.check_core_report", "n", lambda: core_report(None, None, n=0)),
    ("grading.check_core_report", "num_steps", lambda: core_report(None, None, num_steps=0)),
    ("grading.check_core_gaps", FAILS, lambda: grading.check_core_gaps("gaps", report=CORES, reference=CORES, n=64)),
    ("grading.check_core_gaps", "report", lambda: grading.check_core_gaps({}, report={}, reference=CORES, n=64)),
    ("grading.check_core_gaps", "reference", lambda: grading.check_core_gaps({}, report=CORES, reference=None, n=64)),
    ("grading.check_core_gaps", "n", lambda: grading.check_core_gaps({}, report=CORES, reference=CORES, n=1)),
    ("grading.check_smc_estimates", FAILS, lambda: smc_estimates("estimates")),
    ("grading.check_smc_estimates", FAILS, lambda: smc_estimates({4: {}}, seed="0")),
    ("grading.check_smc_estimates", "particle_counts", lambda: smc_estimates(None, particle_counts={})),
    ("grading.check_smc_estimates", "number of systems", lambda: smc_estimates(None, particle_counts={4: 0})),
    ("grading.check_smc_estimates", "timesteps", lambda: smc_estimates(None, timesteps=[1000])),
    ("grading.check_smc_estimates", "schedule", lambda: smc_estimates(None, schedule="linear")),
]


def _names_the_argument(arg: str) -> str:
    """A regular expression for the argument's name as a word of its own (``t``, not the t of ``x_t``)."""
    return rf"(?<![\w]){re.escape(arg)}(?!\w)"


@pytest.mark.parametrize("name, arg, call", ROWS,
                         ids=[f"{name}-{'fails' if arg is FAILS else arg}" for name, arg, _ in ROWS])
def test_bad_input_is_refused_naming_the_argument(name, arg, call, capsys):
    if arg is FAILS:
        result = call()
        assert isinstance(result, grading.CheckResult) and result.status == "fail", result
        assert "[FAIL]" in capsys.readouterr().out
        return
    with pytest.raises((ValueError, TypeError), match=_names_the_argument(arg)):
        call()


def _public_names():
    """'module.name' for every name in a module's __all__ (but classes whose constructor takes no argument or
    is the package's own business), and 'module.Class.method' for each public method with arguments
    (``__call__`` included) that a public class defines itself or takes from a private base of its module (the
    shared step of several public classes is each one's own)."""
    for module in MODULES:
        short = module.__name__.rsplit(".", 1)[1]
        for name in module.__all__:
            obj = getattr(module, name)
            if not inspect.isclass(obj):
                yield f"{short}.{name}"
                continue
            if inspect.signature(obj).parameters and f"{short}.{name}" not in BUILT_BY_THE_PACKAGE:
                yield f"{short}.{name}"
            own = {}
            for base in reversed(obj.__mro__):
                if base is obj or (base.__name__.startswith("_") and base.__module__ == module.__name__):
                    own.update(vars(base))
            for method, member in own.items():
                if (method.startswith("_") and method != "__call__") or not inspect.isfunction(member):
                    continue
                if len(inspect.signature(member).parameters) > 1:
                    yield f"{short}.{name}.{method}"


# the contract's own call signatures: a protocol and an abstract base, with nothing to refuse
ABSTRACT = {"models.EpsModel.__call__", "models.Wrapper.__call__"}


def test_the_table_covers_every_public_name():
    covered = {name for name, _, _ in ROWS} | ABSTRACT
    missing = [name for name in _public_names() if name not in covered]
    assert not missing, f"add rows for {missing} to ROWS in tests/test_bad_input.py"


def test_every_row_names_a_public_name():
    public = set(_public_names())
    assert not [name for name, _, _ in ROWS if name not in public]
    assert ABSTRACT <= public
