#!/usr/bin/env python3
"""PyTorch peer of `shiftkit-train bench-gpu`: builds a zoo network from its graph JSON
(`shiftkit-train zoo --graph NAME`) and times training steps (forward + backward + SGD with
momentum, Nesterov, weight decay) on random CIFAR-shaped data on the GPU.

The shift is written as users write it: per channel group, pad by one and slice (zero fill),
then concatenate the groups and run the 1x1 conv. `--channels-last` runs NHWC memory format.
Prints one line per run: `bench-torch model=NAME layout=... img_per_s=X ms_per_step=Y`.
"""
import argparse
import json
import time

import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_graph import GraphNet  # noqa: E402

def bench(path, batch, warmup, steps, channels_last, dev):
    g = json.load(open(path))
    net = GraphNet(g).to(dev)
    s = g["tensors"][g["input"]]
    classes = g["tensors"][g["output"]]["c"]
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator(device="cpu").manual_seed(7)
    batches = []
    for _ in range(4):
        u8 = torch.randint(0, 256, (batch, s["c"], s["h"], s["w"]), generator=gen, dtype=torch.uint8)
        y = torch.randint(0, classes, (batch,), generator=gen)
        batches.append((u8.to(dev), y.to(dev)))
    mean = torch.full((1, s["c"], 1, 1), 0.5, device=dev)
    std = torch.full((1, s["c"], 1, 1), 0.25, device=dev)

    def step(i):
        u8, y = batches[i % 4]
        x = ((u8.float() / 255.0 - mean) / std).contiguous(memory_format=fmt)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    for i in range(warmup):
        step(i)
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        loss = step(i)
    sync()
    dt = time.perf_counter() - t0
    layout = "channels_last" if channels_last else "nchw"
    print(f"bench-torch model={g['name']} layout={layout} batch={batch} steps={steps} "
          f"img_per_s={steps * batch / dt:.1f} ms_per_step={1e3 * dt / steps:.3f} "
          f"last_loss={loss.item():.4f} torch={torch.__version__} gpu=\"{torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}\"",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("graphs", nargs="+", help="graph JSON files from `shiftkit-train zoo --graph NAME`")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--device", default="cuda", help="cuda (the benchmark) or cpu (a smoke test)")
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    # FP32 like ours: no TF32 in convs or matmuls.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for p in a.graphs:
        for cl in (False, True):
            bench(p, a.batch, a.warmup, a.steps, cl, a.device)


if __name__ == "__main__":
    main()
