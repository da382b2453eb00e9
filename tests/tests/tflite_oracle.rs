//! Google's LiteRT interpreter as an outside oracle, on one network of every zoo family.
//!
//! Each network (fresh weights, a reduced input, RGB so the stem's per-channel padding is
//! exported too) is quantized with TFLite's own constants (`--requant tflite`), exported by
//! `quantize::tflite::export`, and run by LiteRT (`tools/litert/run_tflite.py` in the project's
//! `.venv`, which `cargo xtask setup` makes) with its reference kernels on random images: every
//! int8 logit must equal our engine's. LiteRT's optimised kernels are run too and their largest
//! difference printed: they round differently from TFLite's own reference kernels, so they are
//! reported, not asserted (BENCHMARKS.md, "LiteRT").
//!
//! Without the virtualenv the test says why it did not run, and fails where
//! `SHIFTKIT_REQUIRE_LITERT` is set (CI sets it).
use host_train::data::Rng;
use host_train::model::{Model, Normalization};
use host_train::zoo;
use quantize::quant::RequantMode;
use quantize::{skq, FloatModel};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One network of each family (docs/design.md, "Model specs"), small; the last has the
/// ImageNet stem (7x7/2 conv and a 3x3/2 max pool) and a grey input (a `PADV2` stem pad).
const NETS: &[&str] = &[
    "bottleneck:in=16x16x3,blocks=1-1,w=32",
    "noshift:in=16x16x3,blocks=1-1,w=32",
    "shift-4c:in=16x16x3,blocks=1-1,w=40",
    "shift-8c:in=16x16x3,blocks=1-1,w=72",
    "multishift-4c:in=16x16x3,blocks=1-1,w=40",
    "multishift-8c:in=16x16x3,blocks=1-1,w=72",
    "flat-4c:in=16x16x3,blocks=1-1",
    "flat-8c:in=16x16x3,blocks=1-1,w=18",
    "basic:in=16x16x3,blocks=1-1",
    "basic-4c:in=16x16x3,blocks=1-1",
    "basic-8c:in=16x16x3,blocks=1-1,w=18",
    "basic-4c:in=32x32x1,stem-stride=4,blocks=1-1",
];
const IMAGES: usize = 8;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn litert(python: &Path, model: &Path, images: &Path, kernels: &str) -> Vec<Vec<i32>> {
    let out = model.with_extension(format!("{kernels}.json"));
    let o = Command::new(python)
        .arg(root().join("tools/litert/run_tflite.py"))
        .arg(model)
        .arg(images)
        .args(["--kernels", kernels, "--out"])
        .arg(&out)
        .env("TF_CPP_MIN_LOG_LEVEL", "2")
        .output()
        .expect("runs the virtualenv's python");
    assert!(
        o.status.success(),
        "LiteRT ({kernels}) on {}: {}",
        model.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    v["logits"]
        .as_array()
        .expect("a logits array")
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_i64().unwrap() as i32)
                .collect()
        })
        .collect()
}

#[test]
fn litert_reference_kernels_equal_the_engine_on_every_zoo_family() {
    let python = root().join(".venv/bin/python");
    if !python.is_file() {
        let why = format!(
            "not run: {} is missing (`cargo xtask setup` makes the virtualenv with LiteRT)",
            python.display()
        );
        assert!(
            std::env::var_os("SHIFTKIT_REQUIRE_LITERT").is_none(),
            "{why}"
        );
        eprintln!("{why}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("shiftkit-litert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ops_seen: Vec<&str> = Vec::new();
    for (n, spec) in NETS.iter().enumerate() {
        let arch = zoo::resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let c = arch.input.c;
        let il = arch.input.numel();
        let norm = Normalization {
            mean: [0.45, 0.2, 0.6][..c].to_vec(),
            std: vec![0.25; c],
        };
        let mut model = Model::new(arch);
        model.init(11 + n as u64);
        let json = host_train::io::ModelJson::new(&model, norm, vec![]);
        let mut fm = FloatModel { model, json };
        let mut rng = Rng::new(7 + n as u64);
        let px: Vec<u8> = (0..IMAGES * il)
            .map(|_| (rng.next_u64() >> 56) as u8)
            .collect();
        let (_, qm) = quantize::quantize_model_with(
            &mut fm,
            &px,
            IMAGES,
            quantize::DEFAULT_METHOD,
            RequantMode::Tflite,
        )
        .unwrap_or_else(|e| panic!("{spec}: quantizes: {e}"));
        let bytes = skq::to_bytes(&qm).unwrap();
        let e = quantize::tflite::export(&bytes).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert!(
            e.bit_exact(),
            "{spec}: TFLite recomputes {} of {} channels and {} of {} adds exactly",
            e.exact_channels,
            e.channels,
            e.exact_adds,
            e.adds
        );
        for (op, _) in &e.ops {
            if !ops_seen.contains(op) {
                ops_seen.push(op);
            }
        }
        let tfl = dir.join(format!("net{n}.tflite"));
        std::fs::write(&tfl, &e.bytes).unwrap();
        let images = dir.join(format!("net{n}.npy"));
        let x = fm.model.graph.input_shape();
        std::fs::write(
            &images,
            quantize::testset::npy_u8(&[IMAGES, x.h, x.w, x.c], &px),
        )
        .unwrap();

        let m = firmware::Model::from_bytes(&bytes).unwrap();
        let mut arena = vec![0i8; m.arena_bytes() + 16];
        let off = arena.as_ptr().align_offset(m.arena_align().max(1));
        let ours: Vec<Vec<i32>> = px
            .chunks_exact(il)
            .map(|p| {
                firmware::run(&m, p, &mut arena[off..], &mut firmware::NoProfiler)
                    .unwrap()
                    .iter()
                    .map(|&v| i32::from(v))
                    .collect()
            })
            .collect();
        let reference = litert(&python, &tfl, &images, "ref");
        assert_eq!(reference.len(), IMAGES, "{spec}");
        assert_eq!(reference, ours, "{spec}: LiteRT's reference kernels differ");
        let optimised = litert(&python, &tfl, &images, "builtin");
        let max = ours
            .iter()
            .flatten()
            .zip(optimised.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .max()
            .unwrap_or(0);
        eprintln!(
            "{spec}: {} ops, LiteRT reference kernels: all {} logits equal; optimised kernels: max {max} LSB",
            e.ops.iter().map(|(_, c)| c).sum::<usize>(),
            ours.len() * ours[0].len()
        );
    }
    // The exporter's every op ran in LiteRT.
    for op in [
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "ADD",
        "AVERAGE_POOL_2D",
        "MAX_POOL_2D",
        "PADV2",
        "CONCATENATION",
    ] {
        assert!(
            ops_seen.contains(&op),
            "no network exported {op}: {ops_seen:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
