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

import torch
import torch.nn as nn
import torch.nn.functional as F

DIRS = {"4c": [(1, 0), (0, -1), (-1, 0), (0, 1)],
        "8c": [(1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1)]}


def shift_groups(spec, c):
    """The same channel groups as graph.rs ShiftSpec::groups."""
    dirs = DIRS[spec["kind"]]
    n = len(dirs)
    centre = spec["centre_group"]
    g = c // (n + 1) if centre else c // n
    out = []
    for i, (dh, dw) in enumerate(dirs):
        c1 = c if (not centre and i == n - 1) else (i + 1) * g
        out.append((dh, dw, i * g, c1))
    if centre:
        out.append((0, 0, n * g, c))
    return out


def shift(x, groups):
    """out[h][w] = in[h-dh][w-dw], zero outside: pad + slice per group."""
    h, w = x.shape[2], x.shape[3]
    parts = []
    for dh, dw, c0, c1 in groups:
        xg = x[:, c0:c1]
        if dh == 0 and dw == 0:
            parts.append(xg)
        else:
            p = F.pad(xg, (1, 1, 1, 1))
            parts.append(p[:, :, 1 - dh:1 - dh + h, 1 - dw:1 - dw + w])
    return torch.cat(parts, dim=1)


class GraphNet(nn.Module):
    def __init__(self, g):
        super().__init__()
        self.g = g
        t = g["tensors"]
        self.mods = nn.ModuleList()
        self.groups = []
        for op in g["ops"]:
            kind = op["op"]
            m, grp = None, None
            if kind == "conv":
                cin, cout = t[op["x"]]["c"], t[op["y"]]["c"]
                m = nn.Conv2d(cin, cout, op["k"], op["stride"], op["pad"], bias=False)
                if op["shift"] is not None:
                    grp = shift_groups(op["shift"], cin)
            elif kind == "batch_norm":
                m = nn.BatchNorm2d(t[op["x"]]["c"])
            elif kind == "linear":
                m = nn.Linear(t[op["x"]]["c"], t[op["y"]]["c"])
            self.mods.append(m if m is not None else nn.Identity())
            self.groups.append(grp)

    def forward(self, x):
        vals = {self.g["input"]: x}
        for op, m, grp in zip(self.g["ops"], self.mods, self.groups):
            k = op["op"]
            if k == "conv":
                xi = vals[op["x"]]
                y = m(shift(xi, grp) if grp else xi)
            elif k == "batch_norm":
                y = m(vals[op["x"]])
            elif k == "relu":
                y = F.relu(vals[op["x"]])
            elif k == "add":
                y = vals[op["a"]] + vals[op["b"]]
            elif k == "avg_pool2":
                y = F.avg_pool2d(vals[op["x"]], 2)
            elif k == "max_pool3s2":
                y = F.max_pool2d(vals[op["x"]], 3, 2, 1)
            elif k == "global_avg_pool":
                y = vals[op["x"]].mean(dim=(2, 3), keepdim=True)
            elif k == "linear":
                y = m(vals[op["x"]].flatten(1))
            else:
                raise ValueError(k)
            vals[op["y"]] = y
        return vals[self.g["output"]]


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
