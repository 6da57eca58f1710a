"""The SMC / Feynman-Kac sampler of the tilted target, against exact answers (chapter 10)."""

import math

import pytest
import torch

from tutorial_pkg import guidance, sampling, schedules, smc
from tutorial_pkg.analytic import GaussianMixture

S = schedules.linear_schedule(1000)
MU_C, VAR_C, MU_U, VAR_U = 1.0, 0.25, 0.0, 1.0


def tilted(gamma):
    """Mean and variance of N(MU_C, VAR_C)^gamma N(MU_U, VAR_U)^(1 - gamma), in closed form."""
    precision = gamma / VAR_C + (1 - gamma) / VAR_U
    return (gamma * MU_C / VAR_C + (1 - gamma) * MU_U / VAR_U) / precision, 1 / precision


def two_gaussians():
    """An exact eps-model: cond = 1 is N(MU_C, VAR_C), the null cond = 0 is N(MU_U, VAR_U)."""
    p_c = GaussianMixture([1.0], [[MU_C]], [[[VAR_C]]]).eps_model(S)
    p_u = GaussianMixture([1.0], [[MU_U]], [[[VAR_U]]]).eps_model(S)

    def model(x_t, t, cond):
        return torch.where((cond == 1)[:, None], p_c(x_t, t, None), p_u(x_t, t, None))
    model.null_value = 0
    return model


def affine(t, mean, var):
    ab = S.alpha_bars[t]
    a = (1 - ab).sqrt() / (ab * var + 1 - ab)
    return a, -a * ab.sqrt() * mean


def infinite_particle_limit(gamma, steps):
    """The weighted law of the output as K -> infinity: the start N(0, 1) reweighted by exp(k_t (d1 x + d0)^2) and
    moved by the guided step, both exact on Gaussians (resampling keeps the weighted law)."""
    M, V = 0.0, 1.0
    for t, t_prev in steps:
        (a_c, c_c), (a_u, c_u) = affine(t, MU_C, VAR_C), affine(t, MU_U, VAR_U)
        k = smc.log_weight_factor(S, t, gamma, t_prev=t_prev)
        precision = 1 / V - 2 * k * (a_c - a_u) ** 2
        M, V = (M / V + 2 * k * (a_c - a_u) * (c_c - c_u)) / precision, 1 / precision
        c_x, c_eps, sigma = sampling.ddim_coefficients(S, t, t_prev, 1.0)
        A = c_x + c_eps * (gamma * a_c + (1 - gamma) * a_u)
        M, V = A * M + c_eps * (gamma * c_c + (1 - gamma) * c_u), A ** 2 * V + sigma ** 2
    return float(M), float(V)


@pytest.mark.parametrize("ess_threshold", [0.5, 1.0])
def test_weighted_particles_reach_the_infinite_particle_limit_and_the_tilted_target(ess_threshold):
    gamma, K, G = 3.0, 2000, 4
    steps = sampling.sampler_steps(S, sampler="ddim", num_steps=250, spacing="trailing")
    result = smc.smc_sample(guidance.cfg_model(two_gaussians(), gamma), (G * K, 1), S, cond=1, groups=G,
                            timesteps=[t for t, _ in steps], ess_threshold=ess_threshold,
                            generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, var = (m[:, 0] for m in result.moments())
    M, V = infinite_particle_limit(gamma, steps)
    assert abs(mean.mean() - M) < 4 * mean.std() / G ** 0.5 + 1e-3
    assert abs(var.mean() - V) < 4 * var.std() / G ** 0.5 + 1e-3
    # the limit is the tilted target up to the discretisation of the weights, far closer than plain CFG
    m_g, v_g = tilted(gamma)
    M_cfg, V_cfg = sampling.gaussian_sampler_moments(MU_C, VAR_C, S, sampler="ddim", timesteps=[t for t, _ in steps],
                                                     eta=1.0, gamma=gamma, mean_u=MU_U, var_u=VAR_U)
    assert abs(M - m_g) < 0.2 * abs(M_cfg - m_g) and abs(V - v_g) < 0.5 * abs(V_cfg - v_g)
    # and the limit approaches the target as the steps shrink (first order)
    M1, V1 = infinite_particle_limit(gamma, sampling.sampler_steps(S, sampler="ddim", timesteps=list(range(999, -1, -1))))
    assert abs(M1 - m_g) < 0.3 * abs(M - m_g) and abs(V1 - v_g) < 0.3 * abs(V - v_g)
    assert result.ess.shape == (len(steps), G) and bool((result.ess <= K + 1e-6).all())


def test_gamma_one_gives_flat_weights_and_never_resamples():
    K = 500
    result = smc.smc_sample(guidance.cfg_model(two_gaussians(), 1.0), (K, 1), S, cond=1, num_steps=20,
                            generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(result.log_weights, torch.full((K,), -math.log(K), dtype=torch.float64))
    assert torch.allclose(result.ess, torch.full_like(result.ess, K)) and result.num_resampled == 0


def test_the_increment_is_the_score_form_and_the_terms_are_the_wrappers_own():
    gamma = 2.5
    mixture = GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.5, 0.0]], [[[0.3, 0.1], [0.1, 0.4]], [[0.5, 0.0], [0.0, 0.2]]])
    model = guidance.cfg_model(mixture.eps_model(S), gamma)
    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    cond = torch.ones(64, dtype=torch.long)
    for t in (0, 300, 999):
        eps, eps_diff = smc.guidance_terms(model, x, t, cond)
        assert torch.allclose(eps, model(x, t, cond), atol=1e-12)
        ab = S.alpha_bars[t].item()
        score_diff = mixture.conditional_score(x, 1, ab) - mixture.score(x, ab)
        by_score = 0.5 * gamma * (gamma - 1) * S.betas[t] * score_diff.pow(2).sum(1)      # (1/2) g(g-1) beta ||ds||^2
        assert torch.allclose(smc.log_weight_factor(S, t, gamma) * eps_diff.pow(2).sum(1), by_score, atol=1e-10)
        # classifier guidance of the unconditional model by the exact classifier has the same eps_c - eps_u
        cg = guidance.classifier_guided_model(mixture.eps_model(S), mixture.classifier(S), S, gamma)
        eps_cg, diff_cg = smc.guidance_terms(cg, x, t, cond)
        assert torch.allclose(eps_cg, cg(x, t, cond), atol=1e-10)
        assert torch.allclose(diff_cg, eps_diff, atol=1e-8) and torch.allclose(eps_cg, eps, atol=1e-8)


def test_systematic_resampling_copies_floor_or_ceiling_and_is_unbiased():
    K, draws = 50, 4000
    log_w = torch.randn(K, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 1.5
    w = torch.softmax(log_w, 0)
    gen = torch.Generator().manual_seed(3)
    counts = torch.stack([torch.bincount(smc.systematic_resample(log_w, generator=gen), minlength=K)
                          for _ in range(draws)]).double()
    assert bool(((counts == (K * w).floor()) | (counts == (K * w).ceil())).all())
    assert bool(((counts.mean(0) - K * w).abs() <= 4 * counts.std(0) / draws ** 0.5 + 1e-9).all())
    # one uniform per system for (G, K) log-weights, each row indexing its own system
    rows = smc.systematic_resample(torch.stack([log_w, torch.zeros(K, dtype=torch.float64)]), generator=gen)
    assert rows.shape == (2, K) and torch.equal(rows[1], torch.arange(K))


def test_effective_sample_size():
    K = 40
    log_w = torch.randn(K, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    w = log_w.exp()
    assert torch.allclose(smc.effective_sample_size(log_w), w.sum() ** 2 / (w ** 2).sum())
    assert torch.allclose(smc.effective_sample_size(log_w + 7.0), smc.effective_sample_size(log_w))
    assert torch.allclose(smc.effective_sample_size(torch.zeros(K)), torch.tensor(float(K)))
    one_hot = torch.full((K,), -1e4, dtype=torch.float64)
    one_hot[3] = 0.0
    assert torch.allclose(smc.effective_sample_size(one_hot), torch.tensor(1.0, dtype=torch.float64))


def test_conditions_must_be_one_per_system():
    model = guidance.cfg_model(two_gaussians(), 2.0)
    cond = torch.tensor([1, 1, 0, 0])
    smc.smc_sample(model, (4, 1), S, cond=cond, groups=2, num_steps=2)          # one condition per system: fine
    with pytest.raises(ValueError, match="cond"):
        smc.smc_sample(model, (4, 1), S, cond=cond, groups=1, num_steps=2)


def test_a_zero_weight_written_as_minus_infinity_is_a_zero_weight():
    """log w = -inf is the natural way to write a weight of zero: the ESS counts the other particles and
    resampling never copies a particle of weight zero."""
    log_w = torch.tensor([[0.0, -float("inf"), 0.0, -float("inf")], [0.0, 0.0, 0.0, 0.0]])
    assert smc.effective_sample_size(log_w).tolist() == pytest.approx([2.0, 4.0])
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = smc.systematic_resample(log_w[0], generator=g)
        assert set(idx.tolist()) <= {0, 2}
