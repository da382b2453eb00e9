"""The shiftkit op graph (`shiftkit-train zoo --graph NAME`) as an ordinary PyTorch nn.Module, for
the benchmarks that compare our trainer with PyTorch (tools/bench_train_torch.py on the CPU,
tools/gpu_bench/bench_torch.py on the GPU).

The shift is written as users write it: per channel group, pad by one and slice (zero fill),
then concatenate the groups and run the 1x1 conv.
"""
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
