#!/usr/bin/env python3
"""The PyTorch CPU peer of the attack-step benchmark (issue 12): Carlini & Wagner's L2 step, as
src/attacks/cw.rs computes it, on the lab's own nets and weights (models/<dataset>.safetensors),
at batch 1 and 64, timed natively. PyTorch on the CPU is what ART, foolbox and torchattacks users
run. Prints JSON (make bench hands it to tests/bench/run.mjs, which puts it in BENCHMARKS.md).

    python tests/bench/torch_step.py [--rounds 5] [--min-ms 1000] [--min-steps 1] [--max-steps 50]

Environment: BENCH_TORCH_THREADS sets torch's intra-op threads (default: torch's own, all cores).
"""

import argparse
import json
import os
import struct
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[2]
TANH_SCALE = 0.999999
# The step benchmark's attack settings, the same as tests/bench/page.js uses for the lab and tfjs.
KAPPA, LR, CONST = 0.0, 0.01, 1.0


def read_safetensors(path):
    """{name: float32 array} (u64 little-endian header length, JSON header, raw data)."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise ValueError(f"{name}: dtype {t['dtype']}, expected F32")
        a, b = t["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").copy().reshape(t["shape"]))
    return out


class Net:
    """The C&W classifier of src/models/mod.rs. burn's conv weights are [out, in, kh, kw] as torch's;
    its linear weights are [in, out], so they are transposed for F.linear; the flatten order (NCHW)
    is the same."""

    def __init__(self, w):
        self.w = {k: (v.t().contiguous() if k.startswith("fc") and k.endswith(".weight") else v) for k, v in w.items()}

    def __call__(self, x):
        w = self.w
        h = F.relu(F.conv2d(x, w["conv1.weight"], w["conv1.bias"]))
        h = F.relu(F.conv2d(h, w["conv2.weight"], w["conv2.bias"]))
        h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, w["conv3.weight"], w["conv3.bias"]))
        h = F.relu(F.conv2d(h, w["conv4.weight"], w["conv4.bias"]))
        h = F.max_pool2d(h, 2).flatten(1)
        h = F.relu(F.linear(h, w["fc1.weight"], w["fc1.bias"]))
        h = F.relu(F.linear(h, w["fc2.weight"], w["fc2.bias"]))
        return F.linear(h, w["fc3.weight"], w["fc3.bias"])


def samples(dataset, n):
    meta = json.loads((REPO / "models" / f"{dataset}-samples.json").read_text())
    c, h, w = meta["shape"]
    raw = np.frombuffer((REPO / "models" / meta["file"]).read_bytes(), dtype=np.uint8)
    images = torch.from_numpy(raw[: n * c * h * w].astype(np.float32) / 255.0).reshape(n, c, h, w)
    return images, torch.tensor(meta["labels"][:n])


class Attack:
    """State of one C&W round on a batch: the perturbation w (tanh space), Adam's moments, the
    best-so-far bookkeeping; `step` is one step of src/attacks/cw.rs."""

    def __init__(self, net, images, labels):
        self.net = net
        n = images.shape[0]
        self.timg = torch.atanh((images * 2 - 1) * TANH_SCALE)
        self.reference = torch.tanh(self.timg) * 0.5 + 0.5
        self.onehot = F.one_hot(labels, 10).float()
        self.labels = labels
        self.c = torch.full((n,), CONST)
        self.w = torch.zeros_like(images)
        self.m = torch.zeros_like(images)
        self.v = torch.zeros_like(images)
        self.t = 0
        self.best_l2 = torch.full((n,), 1e10)
        self.best_img = images.clone()
        self.best_success = torch.zeros(n, dtype=torch.bool)

    def step(self):
        w = self.w.clone().requires_grad_(True)
        x = torch.tanh(w + self.timg) * 0.5 + 0.5
        l2 = ((x - self.reference) ** 2).flatten(1).sum(1)
        logits = self.net(x)
        real = (logits * self.onehot).sum(1)
        other = (logits * (1 - self.onehot) - self.onehot * 10000).max(1).values
        f = torch.clamp(real - other + KAPPA, min=0)
        loss = l2.sum() + (f * self.c).sum()
        (g,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            # Success judged on the logits the loss computed (as C&W's reference code does).
            success = (logits + self.onehot * KAPPA).argmax(1) != self.labels
            improved = success & (l2 < self.best_l2)
            self.best_l2 = torch.where(improved, l2, self.best_l2)
            self.best_img = torch.where(improved[:, None, None, None], x, self.best_img)
            self.best_success |= success
            # Adam as TensorFlow 1 computes it (C&W used tf.train.AdamOptimizer).
            self.t += 1
            b1, b2 = 0.9, 0.999
            self.m = self.m * b1 + g * (1 - b1)
            self.v = self.v * b2 + g * g * (1 - b2)
            lr_t = LR * (1 - b2**self.t) ** 0.5 / (1 - b1**self.t)
            self.w = self.w - self.m / (self.v.sqrt() + 1e-8) * lr_t
        return loss.detach()


def measure(net, images, labels, min_ms, min_steps, max_steps):
    """One timed run after a warm-up step; the loss is read every 10th step (the lab's early-abort
    check at the page's 100 steps)."""
    a = Attack(net, images, labels)
    a.step().item()
    t0 = time.perf_counter()
    steps = 0
    while True:
        loss = a.step()
        steps += 1
        if steps % 10 == 0:
            loss.item()
        elapsed = (time.perf_counter() - t0) * 1000
        if steps >= min_steps and (elapsed >= min_ms or steps >= max_steps):
            loss.item()
            return (time.perf_counter() - t0) * 1000 / steps, steps


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_TORCH_ROUNDS", 5)))
    p.add_argument("--min-ms", type=float, default=float(os.environ.get("BENCH_MIN_MS", 1000)))
    p.add_argument("--min-steps", type=int, default=int(os.environ.get("BENCH_MIN_STEPS", 1)))
    p.add_argument("--max-steps", type=int, default=int(os.environ.get("BENCH_MAX_STEPS", 50)))
    p.add_argument("--cells", default=os.environ.get("BENCH_CELLS", "mnist:1,mnist:64,cifar10:1,cifar10:64:1"))
    args = p.parse_args()
    if os.environ.get("BENCH_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_TORCH_THREADS"]))
    torch.manual_seed(0)
    cells = [(c.split(":")[0], int(c.split(":")[1])) for c in args.cells.split(",")]  # data set:batch[:rounds of the browser run]
    nets = {d: Net(read_safetensors(REPO / "models" / f"{d}.safetensors")) for d in {d for d, _ in cells}}
    # What the fairness check compares with the lab: log-softmax of the first 8 sample images.
    logprobs = {}
    with torch.no_grad():
        for d, net in nets.items():
            x, _ = samples(d, 8)
            logprobs[d] = F.log_softmax(net(x), 1).flatten().tolist()
    results = []
    for d, n in cells:
        images, labels = samples(d, n)
        runs = []
        for _ in range(args.rounds):
            ms, steps = measure(nets[d], images, labels, args.min_ms, args.min_steps, args.max_steps)
            runs.append({"ms_per_step": ms, "steps": steps})
            print(f"torch {d}:{n} {ms:.1f} ms/step ({steps} steps)", file=sys.stderr)
        results.append({"dataset": d, "batch": n, "ms_per_step_median": float(np.median([r["ms_per_step"] for r in runs])), "runs": runs})
    print(
        json.dumps(
            {
                "command": "python tests/bench/torch_step.py " + " ".join(sys.argv[1:]),
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "rounds": args.rounds,
                "steps": f"at least {args.min_steps} step(s) and {args.min_ms:.0f} ms, at most {args.max_steps} steps, after an untimed step",
                "results": results,
                "logprobs": logprobs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
