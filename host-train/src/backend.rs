//! The backend boundary: what the trainer needs from a device — one SGD step on a batch, an
//! evaluation pass, and the parameters + momentum in the host `Params` layout (for checkpoints
//! and outputs, which stay host code). [`CpuBackend`] wraps `Model`, `Workspace` and
//! [`sgd_step`] unchanged; `CudaBackend` (feature `cuda`) runs the same ops on the GPU.
use crate::config::{Device, TrainConfig, TrainError};
use crate::data::Dataset;
use crate::layers::loss;
use crate::model::{Model, Normalization, Workspace};

pub trait Backend {
    /// Forward, loss, backward and SGD on one batch (dense u8 NHWC): (mean loss, correct).
    fn train_step(
        &mut self,
        imgs: &[u8],
        labels: &[u8],
        lr: f32,
    ) -> Result<(f32, usize), TrainError>;
    /// (loss, accuracy) on a split with BN in inference mode.
    fn evaluate(&mut self, ds: &Dataset, batch: usize) -> Result<(f32, f32), TrainError>;
    /// The current parameters and momentum, in the host layout.
    fn host(&mut self) -> Result<(&Model, &[f32]), TrainError>;
}

/// The CPU trainer: exactly the loop body the trainer had before the boundary.
pub struct CpuBackend {
    model: Model,
    ws: Workspace,
    grads: Vec<f32>,
    momentum: Vec<f32>,
    norm: Normalization,
    cfg: TrainConfig,
}

impl CpuBackend {
    pub fn new(
        model: Model,
        momentum: Vec<f32>,
        norm: Normalization,
        cfg: &TrainConfig,
    ) -> CpuBackend {
        let mut ws = model.workspace(cfg.batch);
        if std::env::var_os("SHIFTKIT_PROFILE").is_some() {
            ws.profile = Some(vec![(0.0, 0.0); model.graph.ops.len()]);
        }
        let grads = model.params.zeros_like();
        CpuBackend {
            model,
            ws,
            grads,
            momentum,
            norm,
            cfg: cfg.clone(),
        }
    }
}

/// With `SHIFTKIT_PROFILE` set, the per-op time table goes to stderr when training ends.
impl Drop for CpuBackend {
    fn drop(&mut self) {
        if self.ws.profile.is_some() {
            eprint!("{}", self.model.profile_table(&self.ws));
        }
    }
}

impl Backend for CpuBackend {
    fn train_step(
        &mut self,
        imgs: &[u8],
        labels: &[u8],
        lr: f32,
    ) -> Result<(f32, usize), TrainError> {
        if self.ws.n != labels.len() {
            self.ws = self.model.workspace(labels.len());
        }
        self.model.forward(&mut self.ws, imgs, &self.norm, true);
        self.grads.fill(0.0);
        let (l, c) = self.model.backward(&mut self.ws, labels, &mut self.grads);
        sgd_step(
            &mut self.model,
            &self.grads,
            &mut self.momentum,
            &self.cfg,
            lr,
        );
        Ok((l, c))
    }
    fn evaluate(&mut self, ds: &Dataset, batch: usize) -> Result<(f32, f32), TrainError> {
        Ok(evaluate(&mut self.model, ds, &self.norm, batch))
    }
    fn host(&mut self) -> Result<(&Model, &[f32]), TrainError> {
        Ok((&self.model, &self.momentum))
    }
}

/// The GPU trainer; keeps a host copy that `host()` refreshes.
#[cfg(feature = "cuda")]
pub struct CudaBackend {
    gpu: crate::cuda::CudaTrainer,
    model: Model,
    momentum: Vec<f32>,
    cfg: TrainConfig,
}

#[cfg(feature = "cuda")]
impl CudaBackend {
    pub fn new(
        model: Model,
        momentum: Vec<f32>,
        norm: Normalization,
        cfg: &TrainConfig,
    ) -> Result<CudaBackend, TrainError> {
        let gpu = crate::cuda::CudaTrainer::new(&model, &momentum, &norm).map_err(cuda_err)?;
        Ok(CudaBackend {
            gpu,
            model,
            momentum,
            cfg: cfg.clone(),
        })
    }
    pub fn device_name(&self) -> &str {
        &self.gpu.gpu.name
    }
    pub fn sync(&self) -> Result<(), TrainError> {
        self.gpu.sync().map_err(cuda_err)
    }
}

#[cfg(feature = "cuda")]
fn cuda_err(e: crate::cuda::CudaError) -> TrainError {
    TrainError::Cuda(e.0)
}

#[cfg(feature = "cuda")]
impl Backend for CudaBackend {
    fn train_step(
        &mut self,
        imgs: &[u8],
        labels: &[u8],
        lr: f32,
    ) -> Result<(f32, usize), TrainError> {
        let c = &self.cfg;
        self.gpu
            .step(imgs, labels, lr, c.momentum, c.weight_decay, c.nesterov)
            .map_err(cuda_err)
    }
    fn evaluate(&mut self, ds: &Dataset, batch: usize) -> Result<(f32, f32), TrainError> {
        self.gpu
            .evaluate(&ds.images, &ds.labels, batch)
            .map_err(cuda_err)
    }
    fn host(&mut self) -> Result<(&Model, &[f32]), TrainError> {
        self.gpu
            .download(&mut self.model, &mut self.momentum)
            .map_err(cuda_err)?;
        Ok((&self.model, &self.momentum))
    }
}

/// The backend `cfg.device` names. Without a usable GPU, `Cuda` is one clear error.
pub fn create(
    model: Model,
    momentum: Vec<f32>,
    norm: Normalization,
    cfg: &TrainConfig,
) -> Result<Box<dyn Backend>, TrainError> {
    match cfg.device {
        Device::Cpu => Ok(Box::new(CpuBackend::new(model, momentum, norm, cfg))),
        #[cfg(feature = "cuda")]
        Device::Cuda => Ok(Box::new(CudaBackend::new(model, momentum, norm, cfg)?)),
        #[cfg(not(feature = "cuda"))]
        Device::Cuda => {
            let _ = (model, momentum, norm);
            Err(TrainError::Cuda("this build has no CUDA backend (built without the `cuda` feature); use --device cpu".into()))
        }
    }
}

/// SGD with momentum, PyTorch semantics: `d = g + wd * p; buf = m * buf + d;
/// p -= lr * (nesterov ? d + m * buf : buf)`. Weight decay applies to every trainable tensor
/// (the authors' setting); BN running statistics are not touched.
pub fn sgd_step(
    model: &mut Model,
    grads: &[f32],
    momentum_buf: &mut [f32],
    cfg: &TrainConfig,
    lr: f32,
) {
    for i in 0..model.params.info.len() {
        if !model.params.info[i].trainable {
            continue;
        }
        let r = model.params.range(i);
        let p = &mut model.params.data[r.clone()];
        for ((w, g), b) in p
            .iter_mut()
            .zip(&grads[r.clone()])
            .zip(&mut momentum_buf[r.clone()])
        {
            let d = g + cfg.weight_decay * *w;
            *b = cfg.momentum * *b + d;
            let step = if cfg.nesterov {
                d + cfg.momentum * *b
            } else {
                *b
            };
            *w -= lr * step;
        }
    }
}

/// Runs `f` on batches of the split in order (last batch may be short): (images, labels).
fn eval_batches(ds: &Dataset, batch: usize, mut f: impl FnMut(&[u8], &[u8])) {
    let il = ds.image_len();
    for s in (0..ds.len()).step_by(batch) {
        let e = (s + batch).min(ds.len());
        f(&ds.images[s * il..e * il], &ds.labels[s..e]);
    }
}

/// Test-set loss and accuracy with BN in inference mode.
pub fn evaluate(model: &mut Model, ds: &Dataset, norm: &Normalization, batch: usize) -> (f32, f32) {
    let mut ws: Option<Workspace> = None;
    let (mut loss_sum, mut correct) = (0.0f64, 0usize);
    let classes = model.graph.classes();
    eval_batches(ds, batch, |imgs, labels| {
        let n = labels.len();
        if ws.as_ref().map(|w| w.n) != Some(n) {
            ws = Some(model.workspace(n));
        }
        let w = ws.as_mut().expect("set above");
        model.forward(w, imgs, norm, false);
        let mut d = vec![0.0; n * classes];
        let (l, c) = loss::softmax_xent(&mut d, &w.logits, labels, classes);
        loss_sum += l as f64 * n as f64;
        correct += c;
    });
    (
        (loss_sum / ds.len() as f64) as f32,
        correct as f32 / ds.len() as f32,
    )
}
