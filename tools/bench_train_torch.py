#!/usr/bin/env python3
"""PyTorch side of `cargo xtask bench train`: one training epoch of the same network on the same
data, batch size, optimiser and thread count, as a PyTorch user would write it (nn.Module, shift
by pad + slice + cat, float32, NCHW). Prints one JSON line: {"images_per_second", ...}.

usage: bench_train_torch.py GRAPH.json MNIST_DIR --batch 64 --threads 2 [--steps N]
"""
import argparse
import json
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_graph import GraphNet  # noqa: E402  (the graph as nn.Module, shift by pad + slice)


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8).reshape(dims)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("graph")
    ap.add_argument("mnist_dir")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0, help="0 = one full epoch")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    graph = json.load(open(a.graph))
    net = GraphNet(graph)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    imgs = read_idx(os.path.join(a.mnist_dir, "train-images-idx3-ubyte"))
    labels = read_idx(os.path.join(a.mnist_dir, "train-labels-idx1-ubyte")).long()
    n = imgs.shape[0]
    steps = a.steps or n // a.batch
    x_all = ((imgs.float() / 255.0 - 0.1307) / 0.3081)[:, None]
    perm = torch.randperm(n)
    net.train()
    t0 = None
    for s in range(steps + 3):
        if s == 3:  # three warm-up steps, then time
            t0 = time.perf_counter()
        idx = perm[(s % steps) * a.batch : (s % steps + 1) * a.batch]
        # random crop with 2-pixel zero padding, as the Rust trainer's MNIST augmentation
        xb = F.pad(x_all[idx], (2, 2, 2, 2))
        dy, dx = torch.randint(0, 5, (2,)).tolist()
        xb = xb[:, :, dy : dy + 28, dx : dx + 28]
        loss = F.cross_entropy(net(xb), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    secs = time.perf_counter() - t0
    print(json.dumps({"images_per_second": steps * a.batch / secs, "steps": steps, "batch": a.batch,
                      "threads": a.threads, "seconds": secs, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
