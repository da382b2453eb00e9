#!/usr/bin/env bash
# One device call: GPU name, CUDA parity tests, our training benchmark, the PyTorch peer on the
# same GPU, and a table with the ratio. Binaries are built on a machine with Rust and carried in
# .gpu/ (see tools/gpu_bench/README.md):
#   cargo build --release -p host-train
#   cargo test --release -p host-train --test cuda_parity --no-run
#   mkdir -p .gpu && cp target/release/shiftkit-train .gpu/ && cp <cuda_parity test binary> .gpu/cuda_parity
# Usage: tools/gpu_bench/run.sh [BIN_DIR=.gpu]   (writes logs to $OUT or ./gpu-bench-out)
set -u
BIN=${1:-.gpu}
OUT=${OUT:-gpu-bench-out}
mkdir -p "$OUT"
STEPS=${STEPS:-50}
WARMUP=${WARMUP:-10}
MODELS="cifar-flat-4c cifar-multishift101-4c"

# cudarc loads libcuda/libcublas/libnvrtc at run time: add the CUDA toolkit and the NVIDIA
# wheels PyTorch ships (libcublas.so.13, libnvrtc.so.13) to the search path.
NV=$(python3 - <<'PY' 2>/dev/null
import glob, os, site
dirs = set()
for sp in site.getsitepackages():
    for lib in glob.glob(os.path.join(sp, "nvidia", "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
PY
)
export LD_LIBRARY_PATH="${NV}:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}"

echo "== GPU"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"

echo "== CUDA parity tests"
"$BIN/cuda_parity" --nocapture --test-threads=1 2>&1 | tee "$OUT/parity.txt"
echo "parity exit: ${PIPESTATUS[0]}" | tee -a "$OUT/parity.txt"

echo "== shiftkit bench-gpu"
"$BIN/shiftkit-train" bench-gpu --models "${MODELS// /,}" --batch 128 --warmup "$WARMUP" --steps "$STEPS" 2>&1 | tee "$OUT/ours.txt"

echo "== PyTorch"
G=()
for m in $MODELS; do
    "$BIN/shiftkit-train" zoo --graph "$m" > "$OUT/$m.json"
    G+=("$OUT/$m.json")
done
python3 "$(dirname "$0")/bench_torch.py" "${G[@]}" --batch 128 --warmup "$WARMUP" --steps "$STEPS" 2>&1 | tee "$OUT/torch.txt"

echo "== table (training images/s, batch 128, FP32; ratio = shiftkit / best PyTorch layout)"
python3 - "$OUT" <<'PY'
import re, sys
out = sys.argv[1]
def parse(path, key):
    rows = {}
    for line in open(path):
        if not line.startswith(key):
            continue
        kv = dict(re.findall(r'(\w+)=("[^"]*"|\S+)', line))
        rows.setdefault(kv["model"], {})[kv.get("layout", "shiftkit")] = float(kv["img_per_s"])
    return rows
ours = parse(f"{out}/ours.txt", "bench-gpu")
torch = parse(f"{out}/torch.txt", "bench-torch")
gpu = open(f"{out}/gpu.txt").read().strip()
lines = [f"GPU: {gpu}", "",
         "| model | shiftkit img/s | torch NCHW img/s | torch channels_last img/s | ratio (shiftkit / best torch) |",
         "|---|---:|---:|---:|---:|"]
for m in sorted(set(ours) | set(torch)):
    o = ours.get(m, {}).get("shiftkit")
    t = torch.get(m, {})
    best = max(t.values()) if t else None
    r = f"{o / best:.2f}x" if o and best else "n/a"
    f = lambda v: f"{v:,.0f}" if v else "n/a"
    lines.append(f"| {m} | {f(o)} | {f(t.get('nchw'))} | {f(t.get('channels_last'))} | {r} |")
print("\n".join(lines))
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
PY
