//! [`Device`]: where a model runs, as the `--device` flag spells it.

use crate::error::{Result, RuntimeError};
use std::fmt;
use std::str::FromStr;

/// Where a model runs: `cpu`, or GPU number N (`hip:N`, `cuda:N` and `gpu:N` are
/// the same device N of whichever platform this build supports).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// GPU number N.
    Gpu(usize),
}

impl FromStr for Device {
    type Err = RuntimeError;

    fn from_str(s: &str) -> Result<Device> {
        let bad = || {
            RuntimeError::Device(format!(
                "unknown device '{s}' (expected cpu, hip:N, cuda:N or gpu:N)"
            ))
        };
        if s.eq_ignore_ascii_case("cpu") {
            return Ok(Device::Cpu);
        }
        let (kind, idx) = s.split_once(':').ok_or_else(bad)?;
        let idx: usize = idx.parse().map_err(|_| bad())?;
        match kind.to_ascii_lowercase().as_str() {
            "hip" | "cuda" | "gpu" => Ok(Device::Gpu(idx)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Gpu(i) => write!(f, "gpu:{i}"),
        }
    }
}

impl Device {
    /// The GPU index, or `None` for the CPU.
    pub fn gpu_index(self) -> Option<usize> {
        match self {
            Device::Cpu => None,
            Device::Gpu(i) => Some(i),
        }
    }

    /// Ok when this device can run models here; for a GPU, a clear error when the
    /// build has no GPU support, no device is present, or the index is too large.
    pub fn ensure_available(self) -> Result<()> {
        match self {
            Device::Cpu => Ok(()),
            Device::Gpu(i) => mamba_kernels::gpu::set_device(i).map_err(super::dev_err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_devices() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CPU".parse::<Device>().unwrap(), Device::Cpu);
        for s in ["hip:1", "cuda:1", "gpu:1", "HIP:1"] {
            assert_eq!(s.parse::<Device>().unwrap(), Device::Gpu(1), "{s}");
        }
        for bad in ["", "gpu", "cuda", "cuda:x", "hip:-1", "tpu:0", "hip:0:1"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        assert_eq!(
            Device::Gpu(3).to_string().parse::<Device>().unwrap(),
            Device::Gpu(3)
        );
        assert_eq!(Device::Cpu.to_string(), "cpu");
        assert!(Device::Cpu.ensure_available().is_ok());
        if mamba_kernels::gpu::platform().is_none() {
            let e = Device::Gpu(0).ensure_available().unwrap_err().to_string();
            assert!(e.contains("no GPU support"), "{e}");
        }
    }
}
