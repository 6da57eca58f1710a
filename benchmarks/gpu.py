"""6. GPU throughput: samples per second of 50-step DDIM with classifier-free guidance at batch 4096.

The networks run under autocast (bf16 by default, ``--dtype fp16``), while the guidance arithmetic stays
in float32: ``guidance.cfg`` upcasts both branches (``_f32``), which this script checks before timing.
``--compile`` wraps each network in ``torch.compile`` (opt-in: compiling takes a minute and needs a
compiler). Each mode is also timed without guidance, to print the CFG / conditional-only ratio on the GPU.

Nets: chapter 6's trained CFG network (the shipped weights of ``tutorial_pkg.zoo``; nothing is downloaded
or retrained) and the book's label MLP of chapters 2 and 5 (fresh weights: only its cost matters here).
Without CUDA it prints so and exits 0. ``benchmarks/gpu.sh`` runs it.

    python benchmarks/gpu.py [--batch 4096] [--dtype bf16|fp16] [--compile] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import sys
import time

import torch

from tutorial_pkg import guidance, models, nets, sampling, zoo
from tutorial_pkg.schedules import linear_schedule

HERE = pathlib.Path(__file__).resolve().parent
GAMMA = 3.0
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Autocast(models.Wrapper):
    """An eps-model run under ``torch.autocast``: the network in low precision, its contract (and its
    ``null_value``, passed on by the wrapper) unchanged."""

    def __init__(self, net, device_type: str, dtype):
        super().__init__(net, name="net")
        self.device_type, self.dtype = device_type, dtype

    def __call__(self, x_t, t, cond):
        with torch.autocast(self.device_type, dtype=self.dtype, enabled=self.dtype is not None):
            return self.inner_model(x_t, t, cond)


def book_nets(device) -> dict:
    """name -> (network, a batch of conditions maker)."""
    mb = zoo.load("muller_brown_cfg", device=device, retrain=False, progress=False).model
    emb = mb.cond_embedding
    torch.manual_seed(0)
    label = nets.MLPEpsModel(2, cond="label", num_classes=3).to(device).eval()
    return {
        "ch. 6 CFG MLP (hidden 128, depth 3, trained)":
            (mb, lambda b, g: emb.energy_shift + emb.energy_scale * torch.randn(b, generator=g, device=device)),
        "book label MLP (hidden 64, depth 2)":
            (label, lambda b, g: torch.randint(0, 3, (b,), generator=g, device=device)),
    }


def check_precision(model: Autocast, guided, x, t, cond) -> str:
    """The net's output is in the autocast dtype; the guided eps is float32. Returns what was found."""
    with torch.no_grad():
        raw, out = model(x, t, cond).dtype, guided(x, t, cond).dtype
    assert out == torch.float32, f"guided eps came back in {out}; the guidance arithmetic must run in float32"
    if model.dtype is not None:
        assert raw == model.dtype, f"the net returned {raw} under autocast {model.dtype}"
    return f"net output {raw}, guided eps {out}"


def time_sampler(fn, device, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps (default 50)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="autocast dtype (default bf16)")
    parser.add_argument("--compile", action="store_true", help="also time the nets under torch.compile")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only as a smoke test of this script")
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "results" / "gpu_throughput.json",
                        help="where to write the results (default benchmarks/results/gpu_throughput.json)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"No CUDA device visible to torch {torch.__version__} (torch.cuda.is_available() is False): "
              "nothing to measure. Run benchmarks/gpu.sh on a machine with an NVIDIA GPU and a CUDA build "
              "of torch (PYTHON=... selects the interpreter).")
        return 0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"{name}, torch {torch.__version__}, batch {args.batch}, DDIM {args.steps} steps, CFG gamma {GAMMA}")
    schedule = linear_schedule(1000)
    modes = [("fp32", None, False), (f"autocast {args.dtype}", DTYPES[args.dtype], False)]
    if args.compile:
        modes.append((f"autocast {args.dtype} + torch.compile", DTYPES[args.dtype], True))
    rows = []
    for net_name, (net, make_cond) in book_nets(device).items():
        g = torch.Generator(device).manual_seed(1)
        cond = make_cond(args.batch, g)
        x = torch.randn(args.batch, 2, generator=g, device=device)
        t = torch.full((args.batch,), 500, device=device, dtype=torch.long)
        print(f"\n{net_name}")
        for mode, dtype, compiled in modes:
            model = Autocast(torch.compile(net, dynamic=False) if compiled else net, device.type, dtype)
            guided = guidance.cfg_model(model, GAMMA)
            precision = check_precision(model, guided, x, t, cond)

            def sample(m):
                return lambda: sampling.ddim_sample(m, (args.batch, 2), schedule, num_steps=args.steps, cond=cond,
                                                    device=device, generator=torch.Generator(device).manual_seed(0))

            warmup = 3 if compiled else 1
            t_cfg = time_sampler(sample(guided), device, args.repeats, warmup)
            t_cond = time_sampler(sample(model), device, args.repeats, warmup)
            row = {"net": net_name, "mode": mode, "precision": precision, "cfg_seconds": t_cfg,
                   "cond_only_seconds": t_cond, "cfg_samples_per_s": args.batch / t_cfg,
                   "cfg_over_cond": t_cfg / t_cond}
            rows.append(row)
            print(f"  {mode:<34} CFG {t_cfg * 1e3:8.1f} ms = {row['cfg_samples_per_s']:10.0f} samples/s; "
                  f"conditional only {t_cond * 1e3:7.1f} ms; CFG / conditional {row['cfg_over_cond']:.2f}  ({precision})")
    if device.type == "cuda":
        out = args.out
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"device": name, "torch": torch.__version__, "cuda": torch.version.cuda,
                                   "batch": args.batch, "steps": args.steps, "gamma": GAMMA, "results": rows},
                                  indent=2) + "\n")
        print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
