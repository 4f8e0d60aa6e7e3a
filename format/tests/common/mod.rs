//! Builders and byte-patching helpers shared by the integration tests and by
//! `examples/fuzz_seeds.rs`.
//!
//! Bad files are made two ways: by patching a field of a valid file and then
//! recomputing the checksums that guard it ([`reseal`]), so the reader gets past the
//! checksum to the rule under test; or by assembling raw metadata and index bytes
//! under a consistent header ([`assemble`]), for records whose length changes.
#![allow(dead_code)]

use mamba_format::checksum::checksum;
use mamba_format::header::{align_up, HEADER_SIZE};
use mamba_format::{
    write_to_vec, Array, MambaConfig, Metadata, QuantType, TensorRole, TensorSpec, Value,
};

// ---------------------------------------------------------------------------
// Header field offsets (SPEC.md §2)
// ---------------------------------------------------------------------------

/// Byte offsets of the header fields.
pub mod off {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const BYTE_ORDER: usize = 12;
    pub const HEADER_SIZE: usize = 16;
    pub const ALIGNMENT: usize = 20;
    pub const N_METADATA: usize = 24;
    pub const METADATA_OFFSET: usize = 32;
    pub const METADATA_SIZE: usize = 40;
    pub const N_TENSORS: usize = 48;
    pub const INDEX_OFFSET: usize = 56;
    pub const INDEX_SIZE: usize = 64;
    pub const DATA_OFFSET: usize = 72;
    pub const DATA_SIZE: usize = 80;
    pub const METADATA_CHECKSUM: usize = 88;
    pub const INDEX_CHECKSUM: usize = 96;
    pub const FLAGS: usize = 104;
    pub const RESERVED: usize = 112;
    pub const HEADER_CHECKSUM: usize = 120;
}

pub fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

pub fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Recomputes the header checksum (bytes 120..128 over 0..120).
pub fn reseal_header(b: &mut [u8]) {
    let sum = checksum(&b[..off::HEADER_CHECKSUM]);
    put_u64(b, off::HEADER_CHECKSUM, sum);
}

/// Recomputes the metadata and index checksums from the sections the header declares
/// (where they lie inside the file), then the header checksum.
pub fn reseal(b: &mut [u8]) {
    for (o, s, c) in [
        (
            off::METADATA_OFFSET,
            off::METADATA_SIZE,
            off::METADATA_CHECKSUM,
        ),
        (off::INDEX_OFFSET, off::INDEX_SIZE, off::INDEX_CHECKSUM),
    ] {
        let (start, len) = (get_u64(b, o) as usize, get_u64(b, s) as usize);
        if let Some(sec) = start.checked_add(len).and_then(|end| b.get(start..end)) {
            let sum = checksum(sec);
            put_u64(b, c, sum);
        }
    }
    reseal_header(b);
}

/// Sets a header field and reseals.
pub fn patch_header_u64(b: &mut [u8], at: usize, v: u64) {
    put_u64(b, at, v);
    reseal(b);
}

/// Offset of the first occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

// ---------------------------------------------------------------------------
// Raw records (SPEC.md §3, §4)
// ---------------------------------------------------------------------------

/// A metadata entry from raw parts: `u16 key_len | key | u8 tag | value`.
pub fn raw_entry(key: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = (key.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(key);
    out.push(tag);
    out.extend_from_slice(value);
    out
}

/// A string value: `u64 len | bytes`.
pub fn raw_str(s: &[u8]) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(s);
    out
}

/// An index record from raw parts.
pub struct RawRecord<'a> {
    pub name: &'a [u8],
    pub ty: u32,
    pub n_dims: u32,
    pub dims: [u64; 4],
    pub offset: u64,
    pub size: u64,
    pub checksum: u64,
}

impl RawRecord<'_> {
    /// A consistent record for a 1-D f32 tensor of `n` elements at `offset`.
    pub fn f32(name: &[u8], n: u64, offset: u64) -> RawRecord<'_> {
        RawRecord {
            name,
            ty: 0,
            n_dims: 1,
            dims: [n, 0, 0, 0],
            offset,
            size: 4 * n,
            checksum: checksum(&vec![0u8; 4 * n as usize]),
        }
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut out = (self.name.len() as u16).to_le_bytes().to_vec();
        out.extend_from_slice(self.name);
        out.extend_from_slice(&self.ty.to_le_bytes());
        out.extend_from_slice(&self.n_dims.to_le_bytes());
        for d in self.dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for v in [self.offset, self.size, self.checksum] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }
}

/// Offsets of the fields of one index record inside a file.
#[derive(Clone, Copy, Debug)]
pub struct RecordAt {
    pub start: usize,
    pub name: usize,
    pub ty: usize,
    pub n_dims: usize,
    pub dims: usize,
    pub offset: usize,
    pub size: usize,
    pub checksum: usize,
}

/// Walks the index of a (structurally valid) file and returns each record's field
/// offsets.
pub fn records(b: &[u8]) -> Vec<RecordAt> {
    let mut at = get_u64(b, off::INDEX_OFFSET) as usize;
    (0..get_u64(b, off::N_TENSORS))
        .map(|_| {
            let name_len = u16::from_le_bytes([b[at], b[at + 1]]) as usize;
            let name = at + 2;
            let ty = name + name_len;
            let r = RecordAt {
                start: at,
                name,
                ty,
                n_dims: ty + 4,
                dims: ty + 8,
                offset: ty + 40,
                size: ty + 48,
                checksum: ty + 56,
            };
            at = ty + 64;
            r
        })
        .collect()
}

/// A whole file around raw metadata, index and data bytes, with a consistent header,
/// correct checksums and zero padding: the reader reaches whatever rule the raw bytes
/// break.
pub fn assemble(n_meta: u64, meta: &[u8], n_tensors: u64, index: &[u8], data: &[u8]) -> Vec<u8> {
    let index_offset = (HEADER_SIZE + meta.len()) as u64;
    let data_offset = align_up(index_offset + index.len() as u64).unwrap();
    let mut b = vec![0u8; HEADER_SIZE];
    b[..8].copy_from_slice(&mamba_format::header::MAGIC);
    put_u32(&mut b, off::VERSION, 1);
    put_u32(&mut b, off::BYTE_ORDER, 0x0A0B_0C0D);
    put_u32(&mut b, off::HEADER_SIZE, 128);
    put_u32(&mut b, off::ALIGNMENT, 64);
    for (at, v) in [
        (off::N_METADATA, n_meta),
        (off::METADATA_OFFSET, HEADER_SIZE as u64),
        (off::METADATA_SIZE, meta.len() as u64),
        (off::N_TENSORS, n_tensors),
        (off::INDEX_OFFSET, index_offset),
        (off::INDEX_SIZE, index.len() as u64),
        (off::DATA_OFFSET, data_offset),
        (off::DATA_SIZE, data.len() as u64),
    ] {
        put_u64(&mut b, at, v);
    }
    b.extend_from_slice(meta);
    b.extend_from_slice(index);
    b.resize(data_offset as usize, 0);
    b.extend_from_slice(data);
    reseal(&mut b);
    b
}

/// [`assemble`] with one metadata entry and no tensors.
pub fn with_entry(entry: &[u8]) -> Vec<u8> {
    assemble(1, entry, 0, &[], &[])
}

/// [`assemble`] with no metadata, the given records and `data_size` zero bytes.
pub fn with_records(recs: &[RawRecord<'_>], data_size: usize) -> Vec<u8> {
    let index: Vec<u8> = recs.iter().flat_map(|r| r.bytes()).collect();
    assemble(0, &[], recs.len() as u64, &index, &vec![0u8; data_size])
}

// ---------------------------------------------------------------------------
// Valid files
// ---------------------------------------------------------------------------

/// ggml's deterministic test vector `0.1 + 2 cos(i)`.
pub fn cos_vector(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1 + 2.0 * (i as f64).cos()) as f32)
        .collect()
}

/// A tensor's bytes: [`cos_vector`] quantized row by row to `ty`.
pub fn quantized(ty: QuantType, shape: &[u64]) -> Vec<u8> {
    let n: u64 = shape.iter().product();
    let src = cos_vector(n as usize);
    let mut dst = vec![0u8; ty.bytes_for(n).unwrap() as usize];
    ty.quantize_row(&src, &mut dst);
    dst
}

/// Writes `specs` with [`quantized`] data.
pub fn file_of(md: &Metadata, specs: &[TensorSpec]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = specs.iter().map(|s| quantized(s.ty, &s.shape)).collect();
    let pairs: Vec<(TensorSpec, &[u8])> = specs
        .iter()
        .cloned()
        .zip(data.iter().map(|d| d.as_slice()))
        .collect();
    write_to_vec(md, &pairs).unwrap()
}

/// A small but realistic file: metadata of several kinds and four tensors of
/// different types whose lengths leave padding between them.
pub fn small_file() -> Vec<u8> {
    let mut md = Metadata::new();
    md.set("general.name", Value::String("small".into()))
        .unwrap();
    md.set("test.n", Value::U32(7)).unwrap();
    md.set("test.eps", Value::F64(1e-5)).unwrap();
    md.set("test.flag", Value::Bool(true)).unwrap();
    md.set("test.ids", Value::Array(Array::I32(vec![-1, 0, 1])))
        .unwrap();
    let specs = [
        TensorSpec::new("norm.weight", QuantType::F32, &[5]),
        TensorSpec::new("proj.weight", QuantType::Q8_0, &[2, 32]),
        TensorSpec::new("emb.weight", QuantType::Q4_K, &[256]),
        TensorSpec::new("half.weight", QuantType::F16, &[3, 3]),
    ];
    file_of(&md, &specs)
}

/// The hyper-parameters of a tiny Mamba: rows of 32 (every 32-block type fits the
/// matrices except dt_proj, whose row is `dt_rank`).
pub fn tiny_config() -> MambaConfig {
    MambaConfig {
        d_model: 32,
        n_layer: 2,
        d_state: 2,
        d_conv: 4,
        d_inner: 32,
        dt_rank: 2,
        vocab_size: 8,
        rms_norm_eps: 1e-5,
        tie_embeddings: false,
        conv_bias: true,
        proj_bias: false,
        mixer_rms_eps: None,
    }
}

/// The metadata of a Mamba model: hyper-parameters, tokenizer ids, provenance.
pub fn mamba_metadata(cfg: &MambaConfig) -> Metadata {
    let mut md = Metadata::new();
    cfg.to_metadata(&mut md).unwrap();
    md.set("general.name", Value::String("tiny".into()))
        .unwrap();
    md.set("general.synthetic", Value::Bool(true)).unwrap();
    md.set("tokenizer.bos_id", Value::U32(0)).unwrap();
    md.set("tokenizer.eos_id", Value::U32(1)).unwrap();
    md
}

/// The standard tensors of `cfg`; `matrix` picks the type of each
/// [`TensorRole::Matrix`] tensor (f32-only tensors are f32).
pub fn mamba_specs(cfg: &MambaConfig, matrix: impl Fn(&str) -> QuantType) -> Vec<TensorSpec> {
    cfg.tensor_defs()
        .into_iter()
        .map(|d| {
            let ty = match d.role {
                TensorRole::Matrix => matrix(&d.name),
                TensorRole::F32Only => QuantType::F32,
            };
            TensorSpec::new(d.name, ty, &d.shape)
        })
        .collect()
}

/// A file of `specs` with all-zero tensor data.
pub fn zero_file(md: &Metadata, specs: &[TensorSpec]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = specs
        .iter()
        .map(|s| vec![0u8; s.ty.bytes_for(s.shape.iter().product()).unwrap() as usize])
        .collect();
    let pairs: Vec<(TensorSpec, &[u8])> = specs
        .iter()
        .cloned()
        .zip(data.iter().map(|d| d.as_slice()))
        .collect();
    write_to_vec(md, &pairs).unwrap()
}

/// A valid Mamba file with zero tensor data (see [`mamba_specs`]).
pub fn mamba_file_with(
    cfg: &MambaConfig,
    md: &Metadata,
    matrix: impl Fn(&str) -> QuantType,
) -> Vec<u8> {
    zero_file(md, &mamba_specs(cfg, matrix))
}

/// [`mamba_file_with`] for [`tiny_config`], all matrices f32.
pub fn mamba_file() -> Vec<u8> {
    let cfg = tiny_config();
    mamba_file_with(&cfg, &mamba_metadata(&cfg), |_| QuantType::F32)
}
