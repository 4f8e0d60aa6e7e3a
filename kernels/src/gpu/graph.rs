//! Recorded launch sequences (CUDA/HIP graphs): a decode step launches the same
//! few hundred kernels with the same arguments every time, so it is recorded once
//! and replayed with one launch.

use super::{check, ffi, GpuError, Result};
use std::ffi::c_void;

/// An executable graph: the kernels launched on this thread while it was recorded,
/// with the arguments they had then (the device buffers they read are read again
/// at each replay, so changed contents are seen; changed pointers or sizes are not).
pub struct Graph {
    exec: *mut c_void,
}

impl Graph {
    /// Records the kernels `launch` makes on this thread instead of running them.
    /// `launch` must make no copies or allocations (they would break the
    /// recording). If `launch` fails the recording is dropped and its error
    /// returned; the caller's error type takes the GPU's errors through `From`.
    pub fn capture<R, E: From<GpuError>>(
        launch: impl FnOnce() -> std::result::Result<R, E>,
    ) -> std::result::Result<(R, Graph), E> {
        // SAFETY: a plain runtime call; it fails cleanly if already recording.
        check("hipStreamBeginCapture", unsafe {
            ffi::mamba_gpu_capture_begin()
        })?;
        let r = launch();
        let mut exec = std::ptr::null_mut();
        // SAFETY: `exec` is a valid out-pointer; set only on success.
        let end = check("hipStreamEndCapture", unsafe {
            ffi::mamba_gpu_capture_end(&mut exec)
        });
        let graph = Graph { exec };
        let r = r?;
        end?;
        Ok((r, graph))
    }

    /// Replays the recorded kernels, after the copies already issued and before
    /// any issued later.
    pub fn launch(&self) -> Result<()> {
        // SAFETY: `exec` came from a successful capture and is not yet destroyed.
        check("hipGraphLaunch", unsafe {
            ffi::mamba_gpu_graph_launch(self.exec)
        })
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        if !self.exec.is_null() {
            // SAFETY: created by capture_end, destroyed once here.
            unsafe { ffi::mamba_gpu_graph_destroy(self.exec) };
        }
    }
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph").finish_non_exhaustive()
    }
}
