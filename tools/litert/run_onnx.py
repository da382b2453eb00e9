#!/usr/bin/env python3
"""Runs an ONNX model in onnxruntime (CPU) on u8 images and writes its logits as JSON, for
`cargo xtask oracle --onnx` to compare with shiftkit.

usage: run_onnx.py MODEL.onnx IMAGES.npy --out LOGITS.json

IMAGES.npy: u8 NHWC pixels (`eval --inputs`). A float input takes pixel / 255, a uint8 input the
pixels, both as NCHW (what `export onnx` writes). Every failure is one line on stderr, exit 1.
"""
import argparse
import json
import sys


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("images")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        import numpy as np
        import onnx
        import onnxruntime as ort
    except ImportError as e:
        fail(f"{e}: run `cargo xtask setup`, which installs onnxruntime, onnx and numpy into .venv")
    try:
        m = onnx.load(a.model)
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:
        fail(f"{a.model}: not a valid ONNX model: {str(e).strip().splitlines()[0] if str(e).strip() else e}")
    try:
        s = ort.InferenceSession(a.model, providers=["CPUExecutionProvider"])
    except Exception as e:
        fail(f"{a.model}: onnxruntime cannot load it: {str(e).strip().splitlines()[0]}")
    try:
        x = np.load(a.images)
    except Exception as e:
        fail(f"{a.images}: not a .npy file: {e}")
    if x.dtype != np.uint8 or x.ndim != 4:
        fail(f"{a.images}: expected u8 NHWC images, found {x.dtype} of shape {x.shape}")
    inp = s.get_inputs()[0]
    x = x.transpose(0, 3, 1, 2)
    if list(inp.shape[1:]) != list(x.shape[1:]):
        fail(f"{a.model} takes {inp.shape[1:]} (NCHW), {a.images} holds {list(x.shape[1:])}")
    if inp.type == "tensor(float)":
        feed = x.astype(np.float32) / 255.0
    elif inp.type == "tensor(uint8)":
        feed = x
    else:
        fail(f"{a.model}: input type {inp.type}, not float or uint8")
    logits = []
    for img in feed:
        y = s.run(None, {inp.name: img[None]})[0].ravel()
        logits.append([float(v) for v in y] if y.dtype == np.float32 else [int(v) for v in y])
    with open(a.out, "w") as f:
        json.dump({"model": a.model, "logits": logits}, f)


if __name__ == "__main__":
    main()
