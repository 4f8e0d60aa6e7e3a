//! Size limits for files that are loaded whole into memory. Each is far above any
//! real file of its kind and far below what would exhaust a machine; a larger file
//! is refused before it is read (`/dev/zero` as a tokenizer is refused as a device
//! before these apply).

/// `config.json` and similar small JSON files: 16 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// A sharded checkpoint's `model.safetensors.index.json`: 64 MiB.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// A text or token-id file given to a tool (a prompt, a perplexity corpus): 1 GiB.
pub const MAX_TEXT_BYTES: u64 = 1 << 30;

/// A saved session state file: 4 GiB.
pub const MAX_STATE_BYTES: u64 = 4 << 30;
