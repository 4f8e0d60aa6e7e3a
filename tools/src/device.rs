//! The `--device` flag.
//!
//! TODO(gpu): the runtime's GPU backend will provide `mamba_runtime::Device` and
//! `mamba_runtime::gpu::{GpuModel, GpuSession, GpuBatch}`; until then devices are
//! parsed here and every non-CPU device is refused with a clear error.

use std::fmt;
use std::str::FromStr;

/// Where a model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Device {
    /// The CPU kernels.
    #[default]
    Cpu,
    /// AMD GPU number N (`hip:N`).
    Hip(usize),
    /// NVIDIA GPU number N (`cuda:N`).
    Cuda(usize),
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Device, String> {
        let bad = || format!("unknown device '{s}' (expected cpu, hip:N or cuda:N)");
        if s.eq_ignore_ascii_case("cpu") {
            return Ok(Device::Cpu);
        }
        let (kind, idx) = s.split_once(':').ok_or_else(bad)?;
        let idx: usize = idx.parse().map_err(|_| bad())?;
        match kind.to_ascii_lowercase().as_str() {
            "hip" => Ok(Device::Hip(idx)),
            "cuda" => Ok(Device::Cuda(idx)),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Hip(i) => write!(f, "hip:{i}"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl Device {
    /// Errors for a device this build cannot use (every GPU, for now).
    pub fn ensure_available(self) -> anyhow::Result<()> {
        match self {
            Device::Cpu => Ok(()),
            gpu => anyhow::bail!("--device {gpu}: GPU support is not available in this build"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("hip:1".parse(), Ok(Device::Hip(1)));
        assert_eq!("cuda:0".parse(), Ok(Device::Cuda(0)));
        for bad in ["", "gpu", "cuda", "cuda:x", "hip:-1", "tpu:0"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
        assert_eq!(Device::Cuda(3).to_string(), "cuda:3");
        assert!(Device::Cpu.ensure_available().is_ok());
        assert!(Device::Hip(0)
            .ensure_available()
            .unwrap_err()
            .to_string()
            .contains("not available"));
    }
}
