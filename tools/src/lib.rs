//! placeholder
pub mod bench;
pub mod cli;
pub mod device;
pub mod inspect;
pub mod inspect_content;
pub mod perplexity;
pub mod rss;
pub mod run;
pub mod svg;
