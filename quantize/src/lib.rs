//! shiftkit quantizer: a float run folder (`model.json` + `weights.safetensors`) -> the int8
//! `.skq` model the firmware runs, and a report of what quantisation cost.
//!
//! The steps, one module each:
//! - [`fold`]: BN folded into the conv before it, ReLU fused into its producer, the input
//!   normalisation folded into the stem;
//! - [`calib`]: activation ranges from the float model on training images (min/max, percentile,
//!   MSE-optimal clipping);
//! - [`quant`]: tensor quantisation, per-channel int8 weights, int32 biases, every requantisation
//!   constant ([`requant`] holds TFLite's integer arithmetic and `QuantizeMultiplier`);
//! - [`plan`]: the arena memory plan (in-place ops, buffer reuse), and [`conventional`]: the
//!   arena a conventional engine would need for the same network, to compare with; [`skq`]: the
//!   file bytes;
//! - [`engine`]: running a model (the firmware engine, or [`reference`], the plain integer
//!   interpreter it is checked against); [`report`]: float vs int8 accuracy, per-layer SQNR.
#![forbid(unsafe_code)]
pub mod calib;
pub mod conventional;
pub mod engine;
pub mod fold;
pub mod onnx;
pub mod plan;
pub mod predict;
pub mod quant;
pub mod reference;
pub mod report;
pub mod requant;
pub mod skq;
pub mod testset;
pub mod tflite;

use host_train::io::{self, FileError, ModelJson};
use host_train::model::{Model, Normalization};
use std::path::{Path, PathBuf};

/// Everything quantisation can fail on; each message says what and where.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("{0}")]
    File(#[from] FileError),
    #[error("{0}")]
    Data(#[from] host_train::data::DataError),
    #[error("cannot quantize {0}")]
    Unsupported(String),
    #[error("quantisation constant out of range: {0}")]
    Range(String),
    #[error("encoding the model file: {0}")]
    Encode(String),
    #[error("{0}")]
    Engine(String),
    #[error("{0}")]
    Usage(String),
}

/// A run folder's float model, ready to run.
pub struct FloatModel {
    pub model: Model,
    pub json: ModelJson,
}

impl FloatModel {
    pub fn normalization(&self) -> &Normalization {
        &self.json.normalization
    }
}

/// Reads `dir/model.json` and `dir/weights.safetensors` and rebuilds the float model.
pub fn read_run(dir: &Path) -> Result<FloatModel, QuantError> {
    let mpath = dir.join("model.json");
    let json = ModelJson::read(&mpath)?;
    let model_arch = json.arch.clone();
    let mut model = Model::new(model_arch);
    if model.graph != json.graph {
        return Err(QuantError::File(FileError::Invalid {
            path: mpath,
            why: format!(
                "its graph differs from the one {} builds (written by another version?)",
                json.model
            ),
        }));
    }
    let wpath = dir.join("weights.safetensors");
    let file = io::read_tensors(&wpath)?;
    io::load_params(&mut model, &file, "", &wpath)?;
    Ok(FloatModel { model, json })
}

/// What `quantize DIR` does, as options.
#[derive(Clone, Debug)]
pub struct Options {
    pub calib: usize,
    pub method: calib::Method,
    /// Dataset for calibration and the report; default: the run's `train-config.json` data.
    pub data: Option<String>,
    /// Test images the per-layer SQNR is measured on.
    pub sqnr_images: usize,
    /// How conv and FC requantisation constants are derived.
    pub requant: quant::RequantMode,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            calib: DEFAULT_CALIB,
            method: DEFAULT_METHOD,
            data: None,
            sqnr_images: 300,
            requant: quant::RequantMode::Single,
        }
    }
}

/// Calibration images by default.
pub const DEFAULT_CALIB: usize = 500;
/// The default calibration method. On the trained default network (mnist-flat-4c, bundled
/// MNIST) at 100, 500 and 2000 calibration images, `mse` gives the highest mean per-layer SQNR
/// of the three methods, the best worst layer and int8 accuracy equal to float; min/max loses
/// SQNR as more images bring outliers, and the 99.99th percentile clips the logits (the
/// measurements: BENCHMARKS.md, calibration).
pub const DEFAULT_METHOD: calib::Method = calib::Method::Mse;

/// Folds, calibrates on `images` (dense u8 NHWC, `count` of them) and quantises `fm`, with the
/// engine's requantisation constants ([`quant::RequantMode::Single`]).
pub fn quantize_model(
    fm: &mut FloatModel,
    images: &[u8],
    count: usize,
    method: calib::Method,
) -> Result<(fold::Folded, quant::QModel), QuantError> {
    quantize_model_with(fm, images, count, method, quant::RequantMode::Single)
}

/// [`quantize_model`] with the requantisation constants of `requant`.
pub fn quantize_model_with(
    fm: &mut FloatModel,
    images: &[u8],
    count: usize,
    method: calib::Method,
    requant: quant::RequantMode,
) -> Result<(fold::Folded, quant::QModel), QuantError> {
    let norm = fm.json.normalization.clone();
    let mut folded = fold::fold(&fm.model, &norm)?;
    // The op order the memory plan prefers (the folded network keeps it, so its ops and the
    // file's stay index for index).
    plan::schedule_folded(&mut folded)?;
    let q = calib::calibrate(&mut fm.model, &folded, &norm, images, count, method);
    let mut qm = quant::lower(&folded, &q, requant)?;
    // The run's class names go into the file (format 5) when there is one per class.
    if fm.json.class_names.len() == qm.header.classes as usize {
        qm.class_names = fm.json.class_names.clone();
    }
    Ok((folded, qm))
}

/// The dataset spec of a run: `--data`, else its `train-config.json`, else the bundled MNIST.
pub fn data_spec(dir: &Path, data: Option<&str>) -> Result<host_train::data::DataSpec, QuantError> {
    Ok(run_data(dir, data, None)?.0)
}

/// The dataset of the run folder `dir` ([`data_spec`]) and how to load it: the run's folder
/// options and `--flip` from its `train-config.json`, the network's `input` (h, w, c: folder
/// images are resized to it), and `dir` as the cache of decoded folder images.
pub fn run_data(
    dir: &Path,
    data: Option<&str>,
    input: Option<(usize, usize, usize)>,
) -> Result<(host_train::data::DataSpec, host_train::data::LoadOptions), QuantError> {
    let saved = host_train::train::saved_config(dir).ok();
    let s = match (data, &saved) {
        (Some(d), _) => d.to_string(),
        (None, Some(c)) => c.data.clone(),
        (None, None) => "mnist".into(),
    };
    let opts = host_train::data::LoadOptions {
        input: input.map(|(h, w, c)| host_train::data::Target { h, w, c }),
        folder: saved.as_ref().map(|c| c.folder.clone()).unwrap_or_default(),
        cache_dir: Some(dir.to_path_buf()),
        flip: saved.as_ref().and_then(|c| c.flip),
        quiet: false,
        test_only: false,
    };
    Ok((s.parse()?, opts))
}

/// `quantize DIR`: writes `DIR/model.skq` and `DIR/quant-report.json`; returns the report.
pub fn quantize_dir(dir: &Path, opts: &Options) -> Result<report::Report, QuantError> {
    let mut fm = read_run(dir)?;
    let inp = fm.model.graph.input_shape();
    let (spec, load) = run_data(dir, opts.data.as_deref(), Some((inp.h, inp.w, inp.c)))?;
    let splits = host_train::data::load_with(&spec, &load)?;
    for ds in [&splits.train, &splits.test] {
        if (ds.h, ds.w, ds.c) != (inp.h, inp.w, inp.c) || ds.classes != fm.model.graph.classes() {
            return Err(QuantError::Usage(format!(
                "{}: the model takes {}x{}x{} images of {} classes, {spec} has {}x{}x{} of {} (pass the training data with --data)",
                dir.display(),
                inp.h, inp.w, inp.c, fm.model.graph.classes(), ds.h, ds.w, ds.c, ds.classes
            )));
        }
    }
    let count = opts.calib.clamp(1, splits.train.len());
    let (folded, qm) = quantize_model_with(
        &mut fm,
        &splits.train.images,
        count,
        opts.method,
        opts.requant,
    )?;
    let bytes = skq::to_bytes(&qm)?;
    let out: PathBuf = dir.join("model.skq");
    io::write_atomic(&out, &bytes)?;
    let eng = engine::Firmware::new(&bytes)
        .map_err(|e| QuantError::Engine(format!("{}: {e}", out.display())))?;
    let norm = fm.json.normalization.clone();
    let conventional_arena_bytes = conventional::of_graph(&fm.model.graph)?.arena;
    let rep = report::build(
        &mut fm.model,
        &norm,
        &folded,
        &qm,
        &eng,
        &splits.test,
        opts.sqnr_images,
        report::Meta {
            model: fm.json.model.clone(),
            method: opts.method.to_string(),
            requant: opts.requant.name().to_string(),
            calib_images: count,
            flash_bytes: bytes.len(),
            weights_bytes: qm.weights.len(),
            arena_bytes: qm.header.arena_bytes as usize,
            conventional_arena_bytes,
        },
    )?;
    let json = serde_json::to_string_pretty(&rep).map_err(|e| QuantError::Encode(e.to_string()))?;
    io::write_atomic(&dir.join("quant-report.json"), json.as_bytes())?;
    Ok(rep)
}
