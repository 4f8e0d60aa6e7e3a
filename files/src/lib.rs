//! Safe file access shared by the converter, the runtime and the tools.
//!
//! Every file these programs read or write goes through here, so that hostile paths
//! get one rule everywhere:
//! - [`open_regular`]: an input that must be a regular file is refused, with its
//!   kind named, when it is a directory, a FIFO, a device or a socket. The open
//!   itself never blocks (a FIFO is opened non-blocking and then refused).
//! - [`read_capped`] / [`read_to_string_capped`]: a file loaded whole is refused when
//!   it is larger than a documented limit ([`limits`]), before anything is read.
//! - [`check_output`] / [`AtomicFile`]: an output may replace only a regular file,
//!   never one of the process's inputs (same device and inode, so hard links and
//!   symlinks count), and appears atomically (temporary file beside it, fsync,
//!   rename). The temporary file is removed when the writer is dropped and when the
//!   process is killed by SIGINT, SIGTERM or SIGHUP ([`signals`]).

pub mod atomic;
pub mod error;
pub mod human;
pub mod limits;
pub mod read;
pub mod signals;

pub use atomic::{check_output, stale_temp_files, temp_path_for, AtomicFile};
pub use error::FileError;
pub use human::human_bytes;
pub use read::{file_kind, open_regular, read_capped, read_to_string_capped, same_file};
