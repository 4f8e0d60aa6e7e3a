//! The command-line tools' code: one module per tool, and what they share
//! ([`cli`]: argument rules and error lines; [`mem`]: size checks).
pub mod bench;
pub mod cli;
pub mod device;
pub mod inspect;
pub mod inspect_content;
pub mod mem;
pub mod perplexity;
pub mod rss;
pub mod run;
pub mod svg;
