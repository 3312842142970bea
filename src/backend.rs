//! Compute devices: Burn's wgpu backend (WebGPU in the browser, Vulkan/Metal natively) or the
//! `flex` pure-Rust CPU backend, always wrapped in autodiff (Grad-CAM and filter patterns need
//! gradients; a forward pass with no tensor requiring grad records nothing). Also the one place
//! tensors are read back to the host, asynchronously, as the browser requires.

use burn::tensor::{Device, Tensor};

use crate::choice::{self, ValueEnum};
use crate::error::{Error, Result};

/// Which backend to compute on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// GPU through wgpu (WebGPU / Vulkan / Metal).
    #[value(aliases = ["webgpu", "gpu"])]
    Wgpu,
    /// The flex CPU backend.
    #[value(alias = "flex")]
    Cpu,
}

impl Backend {
    pub fn parse(name: &str) -> Result<Self> {
        choice::parse("backend", name)
    }

    pub fn name(self) -> String {
        choice::name(&self)
    }

    /// The autodiff device for this backend (native: blocks while the GPU is acquired).
    #[cfg(not(target_family = "wasm"))]
    pub fn device(self) -> Result<Device> {
        let device = match self {
            Self::Cpu => Device::flex(),
            #[cfg(feature = "gpu")]
            Self::Wgpu => {
                quiet_mesa();
                Device::wgpu_options().init().map_err(|e| Error::Backend(format!("no usable GPU adapter ({e}); try --backend cpu")))?
            }
            #[cfg(not(feature = "gpu"))]
            Self::Wgpu => return Err(cpu_only()),
        };
        Ok(device.autodiff())
    }

    /// The autodiff device for this backend, acquired asynchronously (required in the browser).
    pub async fn device_async(self) -> Result<Device> {
        let device = match self {
            Self::Cpu => Device::flex(),
            #[cfg(feature = "gpu")]
            Self::Wgpu => Device::wgpu_options().init_async().await.map_err(|e| Error::Backend(format!("WebGPU is not usable here ({e})")))?,
            #[cfg(not(feature = "gpu"))]
            Self::Wgpu => return Err(cpu_only()),
        };
        Ok(device.autodiff())
    }
}

/// Whether tensors on `device` are computed by flex, the CPU backend (autodiff or not).
pub fn is_cpu(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// For native programs, called first thing in `main`: glibc keeps freed blocks of up to 32 MiB in
/// its heap for reuse. flex allocates every intermediate afresh, and by default glibc hands such
/// blocks back to the kernel on free, so each layer paid page faults, zeroing and TLB shootdowns
/// again (VGG16's filter grid: 0.31 → 0.22 s; peak memory unchanged). Elsewhere it does nothing.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets two of the allocator's thresholds; it reads no memory of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// The answer of a build without the `gpu` feature (the browser's threaded CPU build) to a GPU request.
#[cfg(not(feature = "gpu"))]
fn cpu_only() -> Error {
    Error::Backend("this build of ConvLens computes on the CPU only (it was built without the `gpu` feature)".into())
}

/// Natively, the backend to use when the user did not choose: the GPU when wgpu finds a real card,
/// else the CPU (a software rasterizer such as lavapipe is ~10× slower than flex). Returns the
/// device and a one-line note saying what was picked and why.
#[cfg(all(feature = "gpu", not(target_family = "wasm")))]
pub fn auto_device() -> (Device, Backend, String) {
    quiet_mesa();
    match Device::wgpu_options().init() {
        Ok(device) => match device.identity() {
            Some(id) if id.physical.is_some() => (device.autodiff(), Backend::Wgpu, format!("using the GPU ({})", id.name)),
            Some(id) => (Device::flex().autodiff(), Backend::Cpu, format!("using the CPU: the only GPU adapter is a software one ({})", id.name)),
            None => (Device::flex().autodiff(), Backend::Cpu, "using the CPU: the GPU adapter did not identify itself".into()),
        },
        Err(e) => (Device::flex().autodiff(), Backend::Cpu, format!("using the CPU: no GPU adapter ({e})")),
    }
}

#[cfg(all(not(feature = "gpu"), not(target_family = "wasm")))]
pub fn auto_device() -> (Device, Backend, String) {
    (Device::flex().autodiff(), Backend::Cpu, "using the CPU: this build has no GPU backend".into())
}

/// Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set in the environment."
/// several times per adapter probe when that variable is missing (containers, CI, ssh sessions):
/// a false alarm for a program that opens no window. Points it at a private directory first; any
/// failure leaves the environment as it was.
#[cfg(all(unix, feature = "gpu", not(target_family = "wasm")))]
fn quiet_mesa() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir()) {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("convlens-runtime-{user}"));
    let private = std::fs::create_dir_all(&dir).and_then(|_| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)));
    if private.is_ok() {
        std::env::set_var("XDG_RUNTIME_DIR", dir);
    }
}

#[cfg(all(not(unix), feature = "gpu", not(target_family = "wasm")))]
fn quiet_mesa() {}

/// Reads a tensor's values to the host as f32 (asynchronously: synchronous reads panic in wasm).
pub async fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    let data = tensor.into_data_async().await.map_err(|e| Error::Backend(format!("reading a result failed: {e:?}")))?;
    data.try_cast_as::<f32>()
        .map_err(|e| Error::Backend(format!("unexpected result type: {e:?}")))?
        .try_into_vec::<f32>()
        .map_err(|e| Error::Backend(format!("unexpected result type: {e:?}")))
}

/// Lets the browser's event loop run (a zero-delay timer), so a worker computing on the CPU
/// backend, which never waits for a GPU, still hears a cancel request between steps. Natively a
/// no-op.
#[cfg(target_family = "wasm")]
pub async fn yield_now() {
    use wasm_bindgen::JsCast;
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        let global = js_sys::global();
        let timer = js_sys::Reflect::get(&global, &"setTimeout".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok());
        let scheduled = timer.is_some_and(|set_timeout| set_timeout.call2(&global, &resolve, &0.into()).is_ok());
        if !scheduled {
            let _ = resolve.call0(&wasm_bindgen::JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

#[cfg(not(target_family = "wasm"))]
pub async fn yield_now() {}
