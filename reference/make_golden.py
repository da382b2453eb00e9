#!/usr/bin/env python3
"""Writes reference/golden.safetensors: PyTorch results the Rust trainer is checked against.

An independent implementation: it reads the op graphs that `shiftkit-train zoo --graph NAME`
exported (reference/NAME.graph.json) and runs them op by op with plain torch ops (NCHW), the shift
written with F.pad + slicing from the paper's definition (docs/paper.md), not ported from the Rust
code. Everything is computed in float64 (so the golden values are as exact as f32 can hold) from inputs and
parameters that are first rounded to float32, i.e. exactly the numbers the Rust side loads.

    pip install torch safetensors
    python3 reference/make_golden.py          # from the repository root, or anywhere

The output is deterministic (same bytes on every run with the same torch version).
host-train/tests/golden.rs checks it; reference/README.md describes the tensors.
"""
import json
import os
import struct

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

FORMAT = "shiftkit-golden"
VERSION = "1"
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "golden.safetensors")

N = 6  # images per batch
SGD_STEPS = 5
LR, MOMENTUM, WEIGHT_DECAY, NESTEROV = 0.05, 0.9, 5e-4, True
SGD_TEXT = "lr=0.05 momentum=0.9 nesterov=true weight_decay=5e-4"  # the metadata, read by golden.rs
assert dict(kv.split("=") for kv in SGD_TEXT.split()) == {
    "lr": str(LR), "momentum": str(MOMENTUM), "nesterov": str(NESTEROV).lower(), "weight_decay": "5e-4"}
assert float("5e-4") == WEIGHT_DECAY

# net name -> (seed, per-channel normalisation mean, std); non-trivial on purpose.
NETS = {
    "tiny-multishift-4c": (1, [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]),
    "tiny-flat-8c": (2, [0.3, 0.6], [0.2, 0.35]),
}

# docs/paper.md, "The shift operator": offsets (dh, dw) in the authors' order; the centre group last.
DIRS = {
    "4c": [(1, 0), (0, -1), (-1, 0), (0, 1)],
    "8c": [(1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1)],
}


def f32(t):
    """Round to float32 and back: the value the Rust side will hold."""
    return t.to(torch.float32).to(torch.float64)


def shift_one(x, dh, dw):
    """out[h][w] = x[h-dh][w-dw], zero outside the image. x: (N, C, H, W)."""
    if dh == 0 and dw == 0:
        return x
    h, w = x.shape[2], x.shape[3]
    xp = F.pad(x, (1, 1, 1, 1))  # one zero pixel on every side
    return xp[:, :, 1 - dh : 1 - dh + h, 1 - dw : 1 - dw + w]


def shift(x, spec):
    dirs = DIRS[spec["kind"]]
    c = x.shape[1]
    if spec["centre_group"]:
        g = c // (len(dirs) + 1)
        bounds = [(i * g, (i + 1) * g) for i in range(len(dirs))] + [(len(dirs) * g, c)]
        offsets = dirs + [(0, 0)]
    else:  # every channel moves; the last shifted group takes the remainder
        g = c // len(dirs)
        bounds = [(i * g, (i + 1) * g if i < len(dirs) - 1 else c) for i in range(len(dirs))]
        offsets = dirs
    assert all(c1 > c0 for c0, c1 in bounds), f"too few channels ({c}) for a {spec} shift"
    return torch.cat([shift_one(x[:, c0:c1], dh, dw) for (c0, c1), (dh, dw) in zip(bounds, offsets)], dim=1)


def param_list(graph):
    """(name, shape in our layout, trainable) in the order of Graph::params."""
    t = graph["tensors"]
    out = []
    for op in graph["ops"]:
        if op["op"] == "conv":
            out.append((op["name"] + ".weight", [op["k"], op["k"], t[op["x"]]["c"], t[op["y"]]["c"]], True))
        elif op["op"] == "batch_norm":
            c = t[op["x"]]["c"]
            out += [(op["name"] + s, [c], tr) for s, tr in
                    [(".weight", True), (".bias", True), (".running_mean", False), (".running_var", False)]]
        elif op["op"] == "linear":
            ci, co = t[op["x"]]["c"], t[op["y"]]["c"]
            out += [(op["name"] + ".weight", [ci, co], True), (op["name"] + ".bias", [co], True)]
    return out


def init_params(graph, gen):
    """Seeded float64 parameters in our layouts, rounded to float32 values."""
    p = {}
    for name, shape, _ in param_list(graph):
        if len(shape) == 4:  # conv HWIO: kaiming normal, fan_out, ReLU gain
            fan_out = shape[0] * shape[1] * shape[3]
            v = torch.randn(shape, generator=gen, dtype=torch.float64) * (2.0 / fan_out) ** 0.5
        elif name.endswith(".running_mean"):
            v = torch.zeros(shape, dtype=torch.float64)
        elif name.endswith(".running_var"):
            v = torch.ones(shape, dtype=torch.float64)
        elif len(shape) == 2 or name == "fc.bias":  # FC: small uniform
            fan_in = shape[0] if len(shape) == 2 else p["fc.weight"].shape[0]
            v = (torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) / fan_in ** 0.5
        elif name.endswith(".weight"):  # BN gamma
            v = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
        else:  # BN beta
            v = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        p[name] = f32(v)
    return p


def forward(graph, p, x):
    """Training-mode forward of the graph. p: our-layout tensors (weights may require grad);
    BN running statistics in p are updated in place. x: (N, C, H, W) normalised input."""
    vals = {graph["input"]: x}
    for op in graph["ops"]:
        kind = op["op"]
        if kind == "conv":
            xin = vals[op["x"]]
            if op["shift"] is not None:
                xin = shift(xin, op["shift"])
            w = p[op["name"] + ".weight"].permute(3, 2, 0, 1)  # HWIO -> OIHW
            y = F.conv2d(xin, w, stride=op["stride"], padding=op["pad"])
        elif kind == "batch_norm":
            n = op["name"]
            y = F.batch_norm(vals[op["x"]], p[n + ".running_mean"], p[n + ".running_var"],
                             p[n + ".weight"], p[n + ".bias"], training=True, momentum=0.1, eps=1e-5)
        elif kind == "relu":
            y = F.relu(vals[op["x"]])
        elif kind == "add":
            y = vals[op["a"]] + vals[op["b"]]
        elif kind == "avg_pool2":
            y = F.avg_pool2d(vals[op["x"]], 2, 2)
        elif kind == "max_pool3s2":
            y = F.max_pool2d(vals[op["x"]], 3, 2, padding=1)
        elif kind == "global_avg_pool":
            y = vals[op["x"]].mean(dim=(2, 3), keepdim=True)
        elif kind == "linear":
            w = p[op["name"] + ".weight"].t()  # [cin, cout] -> [out, in]
            y = F.linear(vals[op["x"]].flatten(1), w, p[op["name"] + ".bias"])[:, :, None, None]
        else:
            raise ValueError(f"unknown op {kind}")
        want = graph["tensors"][op["y"]]
        assert list(y.shape[1:]) == [want["c"], want["h"], want["w"]], (op, y.shape)
        vals[op["y"]] = y
    return vals[graph["output"]].flatten(1)


def leaves(graph, init):
    """Fresh float64 copies of `init`; trainable ones require grad."""
    return {name: init[name].clone().requires_grad_(tr) for name, _, tr in param_list(graph)}


def make_net(name):
    seed, mean, std = NETS[name]
    with open(os.path.join(HERE, f"{name}.graph.json")) as f:
        graph = json.load(f)
    assert graph["name"] == name
    gen = torch.Generator().manual_seed(seed)
    shp = graph["tensors"][graph["input"]]
    h, w, c = shp["h"], shp["w"], shp["c"]
    classes = graph["tensors"][graph["output"]]["c"]
    assert len(mean) == c and len(std) == c

    init = init_params(graph, gen)
    img = torch.randint(0, 256, (N, h, w, c), generator=gen)  # u8 values, NHWC
    labels = torch.randint(0, classes, (N,), generator=gen)
    mean64, std64 = f32(torch.tensor(mean, dtype=torch.float64)), f32(torch.tensor(std, dtype=torch.float64))
    x = ((img.to(torch.float64) / 255.0 - mean64) / std64).permute(0, 3, 1, 2).contiguous()

    out = {
        "input_u8": img.to(torch.float32),
        "labels": labels.to(torch.float32),
        "norm_mean": mean64.to(torch.float32),
        "norm_std": std64.to(torch.float32),
    }
    for k, v in init.items():
        out[f"param.{k}"] = v.to(torch.float32)

    # One forward/backward from the initial parameters.
    p = leaves(graph, init)
    logits = forward(graph, p, x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    out["logits"] = logits.detach().to(torch.float32)
    out["loss"] = loss.detach().reshape(1).to(torch.float32)
    for k, _, tr in param_list(graph):
        if tr:
            out[f"grad.{k}"] = p[k].grad.to(torch.float32)

    # SGD_STEPS Nesterov SGD steps on the same batch, again from the initial parameters.
    p = leaves(graph, init)
    trainable = [p[k] for k, _, tr in param_list(graph) if tr]
    opt = torch.optim.SGD(trainable, lr=LR, momentum=MOMENTUM, nesterov=NESTEROV, weight_decay=WEIGHT_DECAY)
    losses = []
    for _ in range(SGD_STEPS):
        opt.zero_grad()
        loss = F.cross_entropy(forward(graph, p, x), labels)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    out["sgd_losses"] = torch.tensor(losses, dtype=torch.float32)
    for k, _, _ in param_list(graph):
        out[f"after_sgd.{k}"] = p[k].detach().to(torch.float32)

    return {f"{name}/{k}": v.contiguous() for k, v in out.items()}, graph


def write_safetensors(path, tensors, metadata):
    """A safetensors file with the header keys sorted. (safetensors.torch.save_file writes the
    metadata in hash-map order, so its bytes change from run to run.)"""
    header, blobs, offset = {"__metadata__": dict(sorted(metadata.items()))}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        assert t.dtype == torch.float32
        blob = t.contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def main():
    torch.set_num_threads(1)  # one fixed summation order -> the same bytes every run
    torch.use_deterministic_algorithms(True)
    tensors, meta = {}, {
        "format": FORMAT,
        "version": VERSION,
        "nets": ",".join(NETS),
        "sgd": SGD_TEXT,
        "torch": torch.__version__,
    }
    for name in NETS:
        t, graph = make_net(name)
        tensors.update(t)
        # The graph the values were computed on: the Rust test compares it with the zoo's, so a
        # changed zoo preset fails with "regenerate" instead of a wall of numeric mismatches.
        meta[f"graph.{name}"] = json.dumps(graph, sort_keys=True, separators=(",", ":"))
    write_safetensors(OUT, tensors, meta)
    back = load_file(OUT)  # read it back with the reference reader
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    print(f"wrote {OUT}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
