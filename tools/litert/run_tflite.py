#!/usr/bin/env python3
"""Runs a .tflite model in Google's LiteRT interpreter (ai-edge-litert) on u8 images and writes
the int8 logits as JSON, the shape `shiftkit-quantize eval --logits` writes, for
`cargo xtask oracle` to compare with shiftkit's engine.

usage: run_tflite.py MODEL.tflite IMAGES.npy --kernels ref|builtin|xnnpack --out LOGITS.json

IMAGES.npy: u8 NHWC pixels (`eval --inputs`). An int8 input takes pixel - 128 (its zero point
must be -128 and its scale 1/255, as `export tflite` writes it); a uint8 input takes the pixels.
--kernels: ref = TFLite's reference kernels (BUILTIN_REF); builtin = its optimised kernels
without delegates (BUILTIN_WITHOUT_DEFAULT_DELEGATES); xnnpack = the default, the optimised
kernels with the XNNPACK delegate (AUTO).
Every failure is one line on stderr and exit status 1.
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
    p.add_argument("--kernels", choices=["ref", "builtin", "xnnpack"], required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        import numpy as np
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as e:
        fail(f"{e}: run `cargo xtask setup`, which installs ai-edge-litert and numpy into .venv")
    kind = {
        "ref": OpResolverType.BUILTIN_REF,
        "builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "xnnpack": OpResolverType.AUTO,
    }[a.kernels]
    try:
        with open(a.model, "rb") as f:
            content = f.read()
    except OSError as e:
        fail(f"{a.model}: {e.strerror}")
    if content[4:8] != b"TFL3":
        fail(f"{a.model}: not a TFLite flatbuffer (no TFL3 identifier at byte 4)")
    try:
        it = Interpreter(model_content=content, experimental_op_resolver_type=kind)
        it.allocate_tensors()
    except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own message
        fail(f"{a.model}: LiteRT cannot load it: {str(e).strip().splitlines()[-1] if str(e).strip() else e}")
    try:
        x = np.load(a.images)
    except Exception as e:
        fail(f"{a.images}: not a .npy file: {e}")
    if x.dtype != np.uint8 or x.ndim != 4:
        fail(f"{a.images}: expected u8 NHWC images, found {x.dtype} of shape {x.shape}")
    inp = it.get_input_details()[0]
    out = it.get_output_details()[0]
    if tuple(inp["shape"][1:]) != x.shape[1:]:
        fail(f"{a.model} takes {tuple(inp['shape'][1:])} images, {a.images} holds {x.shape[1:]}")
    if inp["dtype"] == np.int8:
        scale, zp = inp["quantization"]
        if zp != -128 or abs(scale * 255 - 1) > 1e-6:
            fail(f"{a.model}: int8 input with scale {scale} and zero point {zp}; expected 1/255 and -128")
        feed = (x.astype(np.int16) - 128).astype(np.int8)
    elif inp["dtype"] == np.uint8:
        feed = x
    else:
        fail(f"{a.model}: input type {inp['dtype']}, not int8 or uint8")
    if out["dtype"] != np.int8:
        fail(f"{a.model}: output type {out['dtype']}, not int8")
    logits = []
    for img in feed:
        it.set_tensor(inp["index"], img[None])
        it.invoke()
        logits.append(it.get_tensor(out["index"]).ravel().astype(int).tolist())
    with open(a.out, "w") as f:
        json.dump({"model": a.model, "kernels": a.kernels, "logits": logits}, f)


if __name__ == "__main__":
    main()
