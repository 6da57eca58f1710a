"""Accelerators without an accelerator: no float64 tensor on a GPU or an Apple chip, shipped weights everywhere.

MPS has no float64 at all, and a float64 tensor on a CUDA device is slow, so the package never creates one
on a device other than the CPU: its float64 tables are cast while they move, and its exact models compute
in float64 on the CPU. These tests prove it on a machine with no accelerator. On PyTorch's meta
device a tensor has a shape, a dtype and a device but no data; a dispatch mode on top records the dtype and device of every operation's output, and answers the host reads (``.item()``,
``bool(tensor)``) that would otherwise need data. The device is ``meta``, which stands in for any device
that is not the CPU (a CPU-only build of torch can give a fake tensor the device ``cuda:0`` but cannot
index it). The exact models copy their input to the CPU, which a meta tensor allows only under
``FakeTensorMode``.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

import tutorial_pkg as tp
from tutorial_pkg import guidance, nets, sampling, schedules, training, zoo
from tutorial_pkg.analytic import GaussianMixture, LinearGaussianLikelihood
from tutorial_pkg.systems import MullerBrown

DEVICES = [torch.device("meta")]


class Recorder(TorchDispatchMode):
    """Records (op, dtype, device) of every tensor an operation returns; answers host reads with a number."""

    def __init__(self, *, answer_cpu_reads: bool = False):
        super().__init__()
        self.outputs, self.host_reads, self.answer_cpu_reads = [], 0, answer_cpu_reads
        self._producer = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default and (self.answer_cpu_reads
                                                                     or args[0].device.type != "cpu"):
            self.host_reads += 1
            return self._benign(args[0])
        out = func(*args, **kwargs)
        for o in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(o, torch.Tensor):
                self.outputs.append((str(func), o.dtype, o.device))
                self._producer[id(o)] = (func.overloadpacket, o)
        return out

    def _benign(self, tensor):
        """The answer that lets a check pass: ``all`` is True, ``any`` is False, a step flag is -1, a number 1."""
        op = self._producer.get(id(tensor), (None, None))[0]
        if op is torch.ops.aten.all:
            return True
        if op is torch.ops.aten.where and not tensor.dtype.is_floating_point:
            return -1                        # a divergence flag (a where over step indices): nothing diverged
        if op is torch.ops.aten.any:
            return False
        return 1.0 if tensor.dtype.is_floating_point else (True if tensor.dtype == torch.bool else 1)

    def float64_off_cpu(self) -> list:
        return [o for o in self.outputs if o[1] == torch.float64 and o[2].type != "cpu"]


@contextlib.contextmanager
def accelerator(*, fake: bool = False):
    """Record what runs. ``fake=True`` adds ``FakeTensorMode``, under which a meta tensor can be copied to
    the CPU (every tensor then holds no data, so a host read of a CPU tensor is answered too)."""
    with contextlib.ExitStack() as stack:
        if fake:
            stack.enter_context(FakeTensorMode(allow_non_fake_inputs=True))
        yield stack.enter_context(Recorder(answer_cpu_reads=fake))


@pytest.fixture
def schedule():
    return schedules.linear_schedule(50)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_schedule_identities_cast_their_tables_while_moving(device, schedule):
    with accelerator() as rec:
        x0 = torch.randn(8, 2, device=device)
        eps = torch.randn(8, 2, device=device)
        t = torch.randint(0, 50, (8,), device=device)
        x_t = schedule.q_sample(x0, t, eps)
        schedule.predict_x0(x_t, t, eps)
        schedule.posterior_mean_variance(x0, x_t, 7)
        schedule.eps_to_score(eps, t)
    assert rec.outputs and not rec.float64_off_cpu(), rec.float64_off_cpu()[:3]


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_networks_predictors_and_guided_samplers_stay_in_float32(device, schedule):
    torch.manual_seed(0)
    label_net = nets.MLPEpsModel(2, cond="label", num_classes=3)
    energy_net = nets.MLPEpsModel(2, cond="energy")
    classifier = nets.NoiseAwareClassifier(2, 3)
    regressor = nets.NoiseAwareRegressor(2)
    with accelerator() as rec:
        label_net, energy_net = label_net.to(device), energy_net.to(device)
        classifier, regressor = classifier.to(device), regressor.to(device)
        y = torch.randint(0, 3, (16,), device=device)
        E = torch.randn(16, device=device)
        runs = [
            (sampling.ddim_sample, guidance.cfg_model(label_net, 3.0), y),
            (sampling.ddim_sample, guidance.cfg_model(energy_net, guidance.guidance_interval(2.0, 10, 30)), E),
            (sampling.ddim_sample, guidance.classifier_guided_model(label_net, classifier, schedule, 2.0), y),
            (sampling.ddpm_sample, guidance.classifier_guided_model(energy_net, regressor, schedule, 2.0, form="mean"), E),
        ]
        for sampler, model, cond in runs:
            kwargs = {"num_steps": 5} if sampler is sampling.ddim_sample else {}
            sampler(model, (16, 2), schedule, cond=cond, device=device, **kwargs)
    assert not rec.float64_off_cpu(), rec.float64_off_cpu()[:3]
    assert {o[2].type for o in rec.outputs} >= {device.type}


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_exact_models_compute_in_float64_on_the_cpu_only(device, schedule):
    mixture = GaussianMixture([0.5, 0.5], [[-1.0, 0.0], [1.0, 0.0]], [[[0.3, 0.0], [0.0, 0.3]]] * 2)
    likelihood = LinearGaussianLikelihood(mixture, h=[1.0, 0.5], tau=0.3)
    with accelerator(fake=True) as rec:
        x = torch.randn(8, 2, device=device)
        t = torch.randint(0, 50, (8,), device=device)
        y = torch.randint(0, 2, (8,), device=device)
        eps = mixture.eps_model(schedule)(x, t, y)
        guidance.grad_log_likelihood(mixture.classifier(schedule), x, t, y)
        likelihood.eps_model(schedule)(x, t, torch.randn(8, device=device))
        guidance.grad_log_likelihood(likelihood.predictor(schedule), x, t, torch.randn(8, device=device))
    assert eps.device == x.device and eps.dtype == torch.float32
    assert not rec.float64_off_cpu(), rec.float64_off_cpu()[:3]
    assert any(o[1] == torch.float64 and o[2].type == "cpu" for o in rec.outputs), "the exact model ran in float64"


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_the_physical_system_and_training_stay_in_float32(device, schedule, monkeypatch):
    mb = MullerBrown()
    torch.manual_seed(0)
    net = nets.MLPEpsModel(2, cond="energy")
    x0 = torch.randn(64, 2)
    E = mb.energy(x0.double()).float()
    # the loss history becomes a numpy array at the end of training; fake tensors hold no numbers to convert
    monkeypatch.setattr(torch.Tensor, "numpy", lambda self: np.zeros(tuple(self.shape)))
    with accelerator(fake=True) as rec:
        x = torch.randn(16, 2, device=device)
        mb.energy(x)
        mb.gradient(x)
        mb.basin(x, steps=2)
    with accelerator(fake=True) as rec_training:
        net = net.to(device)
        training.train_eps_model(net, x0.to(device), schedule, cond=E.to(device), p_uncond=0.2, steps=2,
                                 batch_size=8, ema_decay=0.9, progress=False)
    assert not rec.float64_off_cpu(), rec.float64_off_cpu()[:3]
    assert not rec_training.float64_off_cpu(), rec_training.float64_off_cpu()[:3]


def test_shipped_weights_are_float32_so_that_every_device_can_hold_them():
    for name in zoo.RECIPES:
        state = torch.load(zoo.verify(name), weights_only=True)
        kinds = {v.dtype for v in state.values() if v.is_floating_point()}
        assert kinds == {torch.float32}, (name, kinds)


@pytest.mark.parametrize("name", sorted(zoo.RECIPES))
def test_shipped_weights_load_onto_another_device(name):
    # the meta device stands in for an accelerator: the load maps every tensor there
    loaded = zoo.load(name, device="meta", progress=False)
    assert loaded.source == "shipped"
    assert all(p.device.type == "meta" for p in loaded.model.parameters())


def test_a_gpu_loads_the_shipped_weights_instead_of_retraining(monkeypatch):
    """Before, zoo.load retrained whenever torch.cuda.is_available(): on Colab every chapter trained anew."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv(zoo.RETRAIN_ENV, raising=False)
    recipe = zoo.RECIPES["muller_brown_regressor"]
    trained = []
    fake = zoo.Recipe(recipe.name, recipe.description, recipe.make_model,
                      lambda model, steps, progress: trained.append(steps) or model, recipe.steps)
    monkeypatch.setitem(zoo.RECIPES, "muller_brown_regressor", fake)
    loaded = zoo.load("muller_brown_regressor", device="cpu", progress=False)
    assert loaded.source == "shipped" and trained == []
    assert "shipped weights" in loaded.note
    retrained = zoo.load("muller_brown_regressor", device="cpu", retrain=True, progress=False)
    assert retrained.source == "retrained" and trained == [recipe.steps] and "retrain=True" in retrained.note


def test_the_device_defaults_to_the_chapters_device(monkeypatch):
    monkeypatch.setattr(zoo, "default_device", lambda: torch.device("meta"))
    loaded = zoo.load("muller_brown_regressor", progress=False)
    assert next(loaded.model.parameters()).device.type == "meta"


@pytest.mark.parametrize("wrap", ["net", "cfg", "cfg_interval", "classifier", "autoguidance"])
def test_sampling_reads_nothing_from_the_device_inside_the_loop(wrap, schedule):
    """The host reads of a run do not grow with its steps: one, at the end, for the divergence flag (and those of
    the checks at the door). Before, every step read the state's finiteness and every forward pass the timestep."""
    torch.manual_seed(0)
    net, weak = nets.MLPEpsModel(2, cond="label", num_classes=3), nets.MLPEpsModel(2, cond="label", num_classes=3)
    classifier = nets.NoiseAwareClassifier(2, 3)
    reads = {}
    for steps in (5, 25):
        with accelerator() as rec:
            device = torch.device("meta")
            model = {"net": lambda: net.to(device),
                     "cfg": lambda: guidance.cfg_model(net.to(device), 3.0),
                     "cfg_interval": lambda: guidance.cfg_model(net.to(device), guidance.guidance_interval(3.0, 10, 30)),
                     "classifier": lambda: guidance.classifier_guided_model(net.to(device), classifier.to(device),
                                                                            schedule, 2.0, model_cond=True),
                     "autoguidance": lambda: guidance.autoguidance_model(net.to(device), weak.to(device), 2.0)}[wrap]()
            y = torch.randint(0, 3, (16,), device=device)
            before = rec.host_reads
            sampling.ddim_sample(model, (16, 2), schedule, num_steps=steps, cond=y, device=device)
            reads[steps] = rec.host_reads - before
    assert reads[5] == reads[25] <= 5, reads     # the door: a label range (min, max) per checker; the end: one


def test_the_device_can_be_chosen_by_the_environment(monkeypatch):
    monkeypatch.setenv("TUTORIAL_PKG_DEVICE", "cpu")
    assert tp.default_device() == torch.device("cpu")
    monkeypatch.setenv("TUTORIAL_PKG_DEVICE", "tpu")
    with pytest.raises(ValueError, match="TUTORIAL_PKG_DEVICE must be one of cpu, cuda, mps, got 'tpu'"):
        tp.default_device()
