//! Files of a run folder: atomic writes, safetensors of f32 tensors, `model.json`.
use crate::model::{Model, Normalization};
use crate::zoo::Arch;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Everything a failing file operation needs to say.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source} (check the path exists and is writable)")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Invalid { path: PathBuf, why: String },
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename. A kill at any
/// moment leaves either the old file or the new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

/// Serialises f32 tensors with string metadata.
pub fn tensors_to_bytes(
    tensors: &[(String, Vec<usize>, &[f32])],
    metadata: HashMap<String, String>,
) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, s, d)| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, s, b)| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b)
                .expect("shape matches data length by construction");
            (n.clone(), v)
        })
        .collect();
    safetensors::serialize(views, &Some(metadata)).expect("f32 tensors always serialise")
}

/// Tensors of a safetensors file, by name: (shape, values). Non-f32 tensors are an error.
pub struct TensorFile {
    pub tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    pub metadata: HashMap<String, String>,
}

pub fn read_tensors(path: &Path) -> Result<TensorFile, FileError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let bad = |why: String| FileError::Invalid {
        path: path.to_path_buf(),
        why,
    };
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e:?})")))?;
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!(
                "tensor {name} is {:?}, expected F32",
                view.dtype()
            )));
        }
        let vals = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.insert(name, (view.shape().to_vec(), vals));
    }
    Ok(TensorFile {
        tensors,
        metadata: meta.metadata().clone().unwrap_or_default(),
    })
}

/// `model.json`: what a run folder's weights mean.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ModelJson {
    pub format: String,
    pub version: u32,
    pub model: String,
    pub arch: Arch,
    pub normalization: Normalization,
    pub class_names: Vec<String>,
    /// The full op graph (tensor shapes and ops), so later stages need not rebuild the zoo.
    pub graph: crate::graph::Graph,
}

pub const MODEL_FORMAT: &str = "shiftkit-model";
pub const MODEL_VERSION: u32 = 1;

impl ModelJson {
    pub fn new(model: &Model, normalization: Normalization, class_names: Vec<String>) -> ModelJson {
        ModelJson {
            format: MODEL_FORMAT.into(),
            version: MODEL_VERSION,
            model: model.arch.name.clone(),
            arch: model.arch.clone(),
            normalization,
            class_names,
            graph: model.graph.clone(),
        }
    }

    pub fn read(path: &Path) -> Result<ModelJson, FileError> {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let bad = |why: String| FileError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let m: ModelJson = serde_json::from_str(&text).map_err(|e| bad(format!("{e}")))?;
        if m.format != MODEL_FORMAT || m.version != MODEL_VERSION {
            return Err(bad(format!(
                "format {} v{} is not {MODEL_FORMAT} v{MODEL_VERSION}",
                m.format, m.version
            )));
        }
        Ok(m)
    }
}

/// The parameters of `model` as named tensors.
pub fn param_tensors(model: &Model) -> Vec<(String, Vec<usize>, &[f32])> {
    let p = &model.params;
    (0..p.info.len())
        .map(|i| (p.info[i].name.clone(), p.info[i].shape.clone(), p.get(i)))
        .collect()
}

/// Loads parameters by name into `model`, checking every name and shape.
pub fn load_params(
    model: &mut Model,
    file: &TensorFile,
    prefix: &str,
    path: &Path,
) -> Result<(), FileError> {
    for i in 0..model.params.info.len() {
        let info = model.params.info[i].clone();
        let key = format!("{prefix}{}", info.name);
        let (shape, vals) = file.tensors.get(&key).ok_or_else(|| FileError::Invalid {
            path: path.to_path_buf(),
            why: format!("missing tensor {key}"),
        })?;
        if *shape != info.shape {
            return Err(FileError::Invalid {
                path: path.to_path_buf(),
                why: format!(
                    "tensor {key} has shape {shape:?}, the model needs {:?}",
                    info.shape
                ),
            });
        }
        model.params.get_mut(i).copy_from_slice(vals);
    }
    Ok(())
}

/// One line of metrics.jsonl.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f32,
    pub train_loss: f32,
    pub train_accuracy: f32,
    pub test_loss: f32,
    pub test_accuracy: f32,
    pub seconds: f32,
    pub images_per_second: f32,
}
