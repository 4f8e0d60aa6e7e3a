//! The `--device` flag: [`mamba_runtime::Device`] (`cpu`, `hip:N`, `cuda:N` or
//! `gpu:N`; default `cpu`).
//!
//! A GPU device needs a build with the `gpu` feature (`--features mamba-tools/gpu`);
//! without it the runtime answers a clear "no GPU support" error at run time, so
//! no `cfg` is needed here.

pub use mamba_runtime::Device;

/// The GPU index when `device` is a GPU, after checking it can be used here (a
/// clear error when the build has no GPU support or the device is absent).
pub fn gpu_index(device: Device) -> anyhow::Result<Option<usize>> {
    match device.ensure_available() {
        Ok(()) => Ok(device.gpu_index()),
        Err(mamba_runtime::RuntimeError::Device(msg)) => anyhow::bail!("--device {device}: {msg}"),
        Err(e) => anyhow::bail!("--device {device}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("hip:1".parse::<Device>().unwrap(), Device::Gpu(1));
        assert_eq!("cuda:0".parse::<Device>().unwrap(), Device::Gpu(0));
        for bad in ["", "gpu", "cuda", "cuda:x", "hip:-1", "tpu:0"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        assert_eq!(gpu_index(Device::Cpu).unwrap(), None);
    }
}
