"""Shipped weights: the recipes still run, the files match their hashes, tampered files are refused."""

import importlib.util

import pytest
import torch

from tutorial_pkg import zoo

# the alanine-dipeptide recipes need OpenMM (the molecules extra) for their data; without it they skip
HAS_OPENMM = importlib.util.find_spec("openmm") is not None
RECIPE_PARAMS = [pytest.param(name, marks=pytest.mark.skipif(name.startswith("alanine") and not HAS_OPENMM,
                                                             reason="needs OpenMM (the molecules extra)"))
                 for name in sorted(zoo.RECIPES)]


@pytest.mark.parametrize("name", RECIPE_PARAMS)
def test_every_recipe_retrains_for_a_few_steps_and_loads_back(name, tmp_path):
    path = zoo.build(name, steps=3, out=tmp_path, progress=False)
    assert path.exists() and (tmp_path / "SHA256SUMS").read_text().count(path.name) == 1
    loaded = zoo.load(name, folder=tmp_path, retrain=False)
    assert loaded.source == "shipped"
    state = torch.load(path, weights_only=True)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state[key])


@pytest.mark.parametrize("name", RECIPE_PARAMS)
def test_shipped_weights_match_their_recorded_hash_and_load(name):
    path = zoo.verify(name)
    assert path.stat().st_size < 4_000_000
    loaded = zoo.load(name, retrain=False)
    assert loaded.source == "shipped" and not loaded.model.training


def test_all_shipped_weights_are_a_few_megabytes():
    total = sum((zoo.WEIGHTS_DIR / f"{name}.pt").stat().st_size for name in zoo.RECIPES)
    # chapters 1-5 replicate their claims over independently trained small networks (0.14-0.15 MB each)
    assert total < 26_000_000


def test_a_tampered_file_is_refused(tmp_path):
    path = zoo.build("muller_brown_regressor", steps=1, out=tmp_path, progress=False)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its recorded SHA-256"):
        zoo.load("muller_brown_regressor", folder=tmp_path, retrain=False)


def test_a_truncated_file_is_refused(tmp_path):
    path = zoo.build("muller_brown_regressor", steps=1, out=tmp_path, progress=False)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="changed, truncated or corrupted"):
        zoo.load("muller_brown_regressor", folder=tmp_path, retrain=False)


def test_a_pickle_that_is_not_tensors_is_refused_even_with_a_matching_hash(tmp_path):
    """weights_only=True: a file that would run code when unpickled is refused, not executed."""
    path = tmp_path / "muller_brown_regressor.pt"
    torch.save({"payload": _Evil()}, path)
    (tmp_path / "SHA256SUMS").write_text(f"{zoo.sha256(path)}  {path.name}\n")
    with pytest.raises(ValueError, match="weights_only=True"):
        zoo.load("muller_brown_regressor", folder=tmp_path, retrain=False)


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_missing_hash_and_unknown_name(tmp_path):
    with pytest.raises(ValueError, match="no SHA-256 is recorded"):
        zoo.verify("digits_eps", folder=tmp_path)
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.load("imagenet")


def test_retrain_environment_variable(monkeypatch):
    calls = []
    recipe = zoo.RECIPES["muller_brown_regressor"]
    fake = zoo.Recipe(recipe.name, recipe.description, recipe.make_model,
                      lambda model, steps, progress: calls.append(steps) or model, recipe.steps)
    monkeypatch.setitem(zoo.RECIPES, "muller_brown_regressor", fake)
    monkeypatch.setenv(zoo.RETRAIN_ENV, "1")
    assert zoo.load("muller_brown_regressor").source == "retrained" and calls == [recipe.steps]


@pytest.mark.skipif(not HAS_OPENMM, reason="needs OpenMM (the molecules extra)")
def test_shipped_alanine_models_respond_to_the_energy_and_the_regressor_is_calibrated():
    """Smoke test of chapter 11's models: conditional samples land nearer E* than unconditional ones, and the
    regressor's z-scores have a standard deviation near 1 where it is calibrated."""
    from tutorial_pkg import guidance, metrics, sampling
    from tutorial_pkg.schedules import linear_schedule

    system, md, features = zoo.alanine_data()
    schedule = linear_schedule(zoo.SCHEDULE_T)
    eps_model = zoo.load("alanine_cfg", device="cpu").model
    target, n = torch.quantile(md.E_test, 0.5).item(), 200
    errors = {}
    for gamma in (0.0, 1.0):
        f = sampling.ddim_sample(guidance.cfg_model(eps_model, gamma), (n, features.dim), schedule, num_steps=20,
                                 cond=torch.full((n,), target), generator=torch.Generator().manual_seed(0))
        x = features.decode(f.double())
        E = system.energy(x)
        errors[gamma] = (E - target).abs().median().item()
        assert system.is_valid(x, E).double().mean() > 0.9
    assert errors[1.0] < 8 and errors[1.0] < errors[0.0] / 2, errors
    # the regressor is calibrated on its training frames at low noise, and on held-out frames at high noise
    # (at low noise it is overconfident on held-out frames: chapter 11 shows and discusses it)
    regressor = zoo.load("alanine_regressor", device="cpu").model
    for x, E, t in ((md.x_train[::8], md.E_train[::8], 10), (md.x_test[::2], md.E_test[::2], 700)):
        f = features.encode(x.double()).float()
        x_t = schedule.q_sample(f, t, torch.randn(f.shape, generator=torch.Generator().manual_seed(1)))
        z = metrics.z_scores(regressor, x_t, t, E.float())
        assert 0.8 < z.std().item() < 1.25 and abs(metrics.coverage(z) - 0.95) < 0.05


def test_chapter_1_data_is_the_mixture_seed_0_sample_and_matches_the_exact_moments():
    mixture, x0 = zoo.ch1_mixture_data()
    again, x0_again = zoo.ch1_mixture_data()
    assert x0.shape == (4000, 2) and x0.dtype == torch.float64 and torch.equal(x0, x0_again)
    assert torch.equal(x0, mixture.sample(4000, generator=torch.Generator().manual_seed(0))[0])
    se = (torch.diagonal(mixture.covariance()) / len(x0)).sqrt()
    assert ((x0.mean(0) - mixture.mean()) / se).abs().max() < 4
    # the three chapter-1 networks differ only by their training seed: different initial weights
    first = [zoo.RECIPES[f"ch1_mixture_seed{k}"].make_model().state_dict() for k in range(3)]
    assert not torch.equal(next(iter(first[0].values())), next(iter(first[1].values())))


def test_ch2_training_sets_are_the_chapters_draws_and_differ_by_seed():
    from tutorial_pkg.analytic import LinearGaussianLikelihood

    x0, labels, energies, likelihood = zoo.ch2_data(0)
    mixture = zoo.ch2_mixture()
    x_ref, y_ref = mixture.sample(4000, generator=torch.Generator().manual_seed(0))
    e_ref = LinearGaussianLikelihood(mixture, h=[1.0, 0.6], b=0.0, tau=0.3).sample(
        x_ref, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x0, x_ref) and torch.equal(labels, y_ref) and torch.equal(energies, e_ref)
    assert likelihood.tau == 0.3 and zoo.ch2_data(0, tau=1.0)[3].tau == 1.0
    assert not torch.equal(zoo.ch2_data(1)[0], x0)
    assert {f"ch2_energy_{n}_seed{s}" for n in (300, 2000) for s in zoo.CH2_SEEDS} <= set(zoo.RECIPES)
    with pytest.raises(ValueError, match="seed"):
        zoo.ch2_data(-1)


def test_ch2_fourier_seed_recipes_draw_their_own_frequencies_and_have_linear_controls():
    base = zoo.RECIPES["ch2_energy_2000_seed0"].make_model().cond_embedding.fourier.freqs
    seen = [base]
    for s, f in zoo.CH2_FSEEDS.items():
        assert s not in zoo.CH2_SEEDS and f != 0
        model = zoo.RECIPES[f"ch2_energy_2000_fseed{f}_seed{s}"].make_model()
        assert model.cond_embedding.fourier.freqs.shape == base.shape
        assert all(not torch.equal(model.cond_embedding.fourier.freqs, other) for other in seen)
        seen.append(model.cond_embedding.fourier.freqs)
        linear = zoo.RECIPES[f"ch2_energy_linear_2000_seed{s}"].make_model()
        assert linear.cond_embedding.energy_features == "linear"
        assert zoo.RECIPES[f"ch2_energy_2000_fseed{f}_seed{s}"].steps == 2000
