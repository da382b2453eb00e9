//! The CUDA backend (cudarc, loaded at run time): the same ops as `layers/` over the same halo
//! layout on the GPU. 1x1 (shifted) convs and the FC layer are cuBLAS GEMMs, the shift being a
//! per-group pointer offset into the input over the whole span (`lda = cin`, groups accumulate
//! with `beta = 1`); everything else is an NVRTC kernel from `kernels.cu`, compiled once when
//! the backend is created. [`ops`] holds the launch wrappers, [`trainer`] the training step,
//! [`parity`] the layer-by-layer checks against the CPU layers.
pub mod ops;
#[deny(unsafe_code)]
pub mod parity;
#[deny(unsafe_code)]
pub mod trainer;

use cudarc::cublas::CudaBlas;
use cudarc::driver::{CudaContext, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr};
use std::collections::HashMap;
use std::sync::Arc;

pub use trainer::CudaTrainer;

const KERNELS: &str = include_str!("kernels.cu");
const KERNEL_NAMES: &[&str] = &[
    "input_norm",
    "zero_halo",
    "relu_fwd",
    "relu_bwd",
    "add_fwd",
    "accum",
    "bn_sums",
    "bn_train_coef",
    "bn_eval_coef",
    "bn_apply",
    "bn_bwd_coef",
    "bn_bwd_apply",
    "avgpool2_fwd",
    "avgpool2_bwd",
    "maxpool_fwd",
    "maxpool_bwd",
    "gap_fwd",
    "gap_bwd",
    "bias_add",
    "bias_grad",
    "softmax_xent",
    "im2col",
    "col2im",
    "sgd",
    "zero_f64",
];

/// Why the CUDA backend could not start or run (one line, shown after `--device cuda:`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CudaError(pub String);

impl CudaError {
    fn from<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> CudaError + '_ {
        move |e| CudaError(format!("{what}: {e:?}"))
    }
}

pub type CResult<T> = Result<T, CudaError>;

/// A device buffer with its raw address (event tracking is off: one stream orders every use).
pub struct DBuf<T: DeviceRepr = f32> {
    _s: CudaSlice<T>,
    pub ptr: u64,
    pub len: usize,
}

impl<T: DeviceRepr> DBuf<T> {
    /// Address of element `i`.
    pub fn at(&self, i: usize) -> u64 {
        assert!(i <= self.len, "device offset {i} past {}", self.len);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }
}

/// A bounded view into a device buffer: what the ops take. Each op asserts that the lengths fit
/// the geometry it is given, so a launch never addresses memory outside its views.
#[derive(Clone, Copy, Debug)]
pub struct DPtr {
    pub ptr: u64,
    pub len: usize,
}

impl DPtr {
    /// Address of f32 element `i` (may equal `len` for an empty tail).
    pub fn at(&self, i: usize) -> u64 {
        assert!(i <= self.len, "device offset {i} past {}", self.len);
        self.ptr + 4 * i as u64
    }
}

impl DBuf<f32> {
    pub fn view(&self) -> DPtr {
        DPtr {
            ptr: self.ptr,
            len: self.len,
        }
    }
    pub fn slice(&self, at: usize, len: usize) -> DPtr {
        assert!(at + len <= self.len, "device view out of range");
        DPtr {
            ptr: self.at(at),
            len,
        }
    }
}

/// One GPU: context, stream, cuBLAS handle and the compiled kernels.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub stream: Arc<CudaStream>,
    pub blas: CudaBlas,
    funcs: HashMap<&'static str, CudaFunction>,
    pub name: String,
}

/// Checks that the driver, cuBLAS and NVRTC libraries load and a GPU is there, without creating
/// anything (cudarc panics when it loads a missing library, so this comes first).
pub fn probe() -> CResult<()> {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(CudaError(
            "no CUDA driver found (libcuda.so could not be loaded); install the NVIDIA driver or use --device cpu".into(),
        ));
    }
    let count = std::panic::catch_unwind(CudaContext::device_count)
        .map_err(|_| CudaError("the CUDA driver failed to initialise; use --device cpu".into()))?
        .map_err(|e| {
            CudaError(format!(
                "the CUDA driver failed to initialise ({e:?}); use --device cpu"
            ))
        })?;
    if count < 1 {
        return Err(CudaError("no CUDA GPU found; use --device cpu".into()));
    }
    // SAFETY: as above, dlopen probes only.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(CudaError(
            "cuBLAS (libcublas) not found; install the CUDA toolkit libraries".into(),
        ));
    }
    // SAFETY: as above.
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(CudaError(
            "NVRTC (libnvrtc) not found; install the CUDA toolkit libraries".into(),
        ));
    }
    Ok(())
}

/// Compiles `kernels.cu` to a cubin for `sm_{major}{minor}` with NVRTC.
fn compile_cubin(major: i32, minor: i32) -> CResult<Vec<u8>> {
    use cudarc::nvrtc::{result, sys};
    let src = std::ffi::CString::new(KERNELS).expect("no NUL in kernels.cu");
    let prog = result::create_program(&src, None).map_err(CudaError::from("nvrtcCreateProgram"))?;
    let opts = [format!("--gpu-architecture=sm_{major}{minor}")];
    // SAFETY: prog is a live program created above and destroyed once below; the CUBIN buffer is
    // sized by nvrtcGetCUBINSize before NVRTC writes into it.
    unsafe {
        let r = result::compile_program(prog, &opts);
        let out = r
            .map_err(CudaError::from("nvrtcCompileProgram"))
            .and_then(|_| {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(prog, &mut size)
                    .result()
                    .map_err(CudaError::from("nvrtcGetCUBINSize"))?;
                let mut buf = vec![0u8; size];
                sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut _)
                    .result()
                    .map_err(CudaError::from("nvrtcGetCUBIN"))?;
                Ok(buf)
            });
        let _ = result::destroy_program(prog);
        out
    }
}

impl Gpu {
    pub fn new() -> CResult<Gpu> {
        probe()?;
        let ctx = std::panic::catch_unwind(|| CudaContext::new(0))
            .map_err(|_| CudaError("creating the CUDA context panicked".into()))?
            .map_err(CudaError::from("creating the CUDA context"))?;
        // SAFETY: everything runs on the one stream created here, so its order is the only
        // synchronisation needed; buffers are freed only after a stream synchronize (Drop).
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(CudaError::from("cuBLAS init"))?;
        let (major, minor) = ctx
            .compute_capability()
            .map_err(CudaError::from("compute capability"))?;
        // A cubin for this GPU first: it loads on any driver of the same CUDA major version,
        // where PTX from a newer NVRTC than the driver would be refused. PTX is the fallback.
        let module = match compile_cubin(major, minor) {
            Ok(cubin) => ctx.load_module(cudarc::nvrtc::Ptx::from_binary(cubin)),
            Err(_) => {
                let opts = cudarc::nvrtc::CompileOptions {
                    use_fast_math: Some(false),
                    arch: Some("compute_80"),
                    ..Default::default()
                };
                let ptx = cudarc::nvrtc::compile_ptx_with_opts(KERNELS, opts)
                    .map_err(CudaError::from("NVRTC compile of kernels.cu"))?;
                ctx.load_module(ptx)
            }
        }
        .map_err(CudaError::from("loading kernels"))?;
        let mut funcs = HashMap::new();
        for &n in KERNEL_NAMES {
            funcs.insert(n, module.load_function(n).map_err(CudaError::from(n))?);
        }
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        Ok(Gpu {
            ctx,
            stream,
            blas,
            funcs,
            name,
        })
    }

    pub(crate) fn func(&self, n: &str) -> &CudaFunction {
        &self.funcs[n]
    }

    pub fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        len: usize,
    ) -> CResult<DBuf<T>> {
        let s = self
            .stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(CudaError::from("cudaMalloc"))?;
        let (ptr, _g) = s.device_ptr(&self.stream);
        drop(_g);
        Ok(DBuf { _s: s, ptr, len })
    }

    pub fn upload<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        host: &[T],
    ) -> CResult<DBuf<T>> {
        let b = self.zeros::<T>(host.len())?;
        self.write(&b, 0, host)?;
        Ok(b)
    }

    /// Copies `host` into `dst` from element `at`.
    pub fn write<T: DeviceRepr>(&self, dst: &DBuf<T>, at: usize, host: &[T]) -> CResult<()> {
        assert!(at + host.len() <= dst.len, "device write out of range");
        if host.is_empty() {
            return Ok(());
        }
        // SAFETY: the destination range is inside dst (checked above); the source is a live host
        // slice; a pageable copy completes before the call returns.
        unsafe {
            cudarc::driver::result::memcpy_htod_async(dst.at(at), host, self.stream.cu_stream())
        }
        .map_err(CudaError::from("host to device copy"))
    }

    /// Copies `len` elements from element `at` of `src` to the host (synchronises the stream).
    pub fn read<T: DeviceRepr + Default + Clone>(
        &self,
        src: &DBuf<T>,
        at: usize,
        len: usize,
    ) -> CResult<Vec<T>> {
        assert!(at + len <= src.len, "device read out of range");
        let mut out = vec![T::default(); len];
        if len > 0 {
            // SAFETY: the source range is inside src; `out` is a live host buffer of len elements.
            unsafe {
                cudarc::driver::result::memcpy_dtoh_async(
                    &mut out,
                    src.at(at),
                    self.stream.cu_stream(),
                )
            }
            .map_err(CudaError::from("device to host copy"))?;
        }
        self.sync()?;
        Ok(out)
    }

    pub fn download(&self, src: &DBuf) -> CResult<Vec<f32>> {
        self.read(src, 0, src.len)
    }

    pub fn sync(&self) -> CResult<()> {
        self.stream
            .synchronize()
            .map_err(CudaError::from("stream synchronize"))
    }

    /// Zeroes `len` elements from element `at`.
    pub fn clear<T: DeviceRepr>(&self, b: &DBuf<T>, at: usize, len: usize) -> CResult<()> {
        assert!(at + len <= b.len);
        // SAFETY: the range is inside b (checked above).
        unsafe {
            cudarc::driver::result::memset_d8_async(
                b.at(at),
                0,
                len * std::mem::size_of::<T>(),
                self.stream.cu_stream(),
            )
        }
        .map_err(CudaError::from("memset"))
    }
}
