//! A checked reader of llama.cpp's GGUF container (versions 2 and 3): the header,
//! the metadata, the tensor index, and where each tensor's bytes are.
//!
//! The file is untrusted: every count is bounded by the bytes left to hold it,
//! every string is checked UTF-8, every tensor's shape, type, alignment and byte
//! range is checked (in the file, aligned, no overlap) before [`Gguf::tensor_data`]
//! hands out a slice. Nothing here indexes past the input or allocates more than
//! the input's size justifies. Model meaning (architectures, tensor names) is the
//! caller's business.
//!
//! Layout (ggml's `docs/gguf.md`): magic `GGUF`, u32 version, u64 tensor count, u64
//! metadata count; metadata entries (string key, u32 type, value); tensor infos
//! (string name, u32 n_dims, u64 dims innermost first, u32 ggml type, u64 offset
//! from the data section); padding to `general.alignment` (default 32); the data.
//! Strings are a u64 byte length and UTF-8 bytes; everything is little-endian.

mod error;
mod value;

use std::collections::HashSet;

pub use error::GgufError;
pub use value::GgufValue;

use crate::quant::QuantType;

/// The alignment of the data section and of every tensor when `general.alignment`
/// is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// ggml's most dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// ggml's longest tensor name in bytes (`GGML_MAX_NAME` - 1).
pub const MAX_NAME_LEN: u64 = 63;

/// The longest metadata key accepted; GGUF keys are short dotted names.
pub const MAX_KEY_LEN: u64 = 65_535;

/// One tensor's index entry, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensor {
    /// Its name (`blk.0.ssm_in.weight`).
    pub name: String,
    /// Dimensions as GGUF stores them, innermost (the row) first.
    pub dims: Vec<u64>,
    /// The block type.
    pub ty: QuantType,
    /// Absolute byte offset of its data in the file.
    pub offset: u64,
    /// Its data's length in bytes.
    pub n_bytes: u64,
}

impl GgufTensor {
    /// Elements in all.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape outermost first, as `.mbin` and PyTorch write it.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// A parsed GGUF file: its metadata in file order and its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Gguf {
    /// 2 or 3.
    pub version: u32,
    /// Metadata entries in file order (keys unique).
    pub metadata: Vec<(String, GgufValue)>,
    /// Tensors in index order (names unique).
    pub tensors: Vec<GgufTensor>,
    /// The alignment of the data section and of every tensor.
    pub alignment: u64,
    /// Where the data section starts.
    pub data_offset: u64,
}

/// ggml's name of a type id, for errors about types `.mbin` does not have.
pub fn ggml_type_name(id: u32) -> &'static str {
    const NAMES: [&str; 43] = [
        "f32",
        "f16",
        "q4_0",
        "q4_1",
        "q4_2",
        "q4_3",
        "q5_0",
        "q5_1",
        "q8_0",
        "q8_1",
        "q2_K",
        "q3_K",
        "q4_K",
        "q5_K",
        "q6_K",
        "q8_K",
        "iq2_xxs",
        "iq2_xs",
        "iq3_xxs",
        "iq1_s",
        "iq4_nl",
        "iq3_s",
        "iq2_s",
        "iq4_xs",
        "i8",
        "i16",
        "i32",
        "i64",
        "f64",
        "iq1_m",
        "bf16",
        "q4_0_4_4",
        "q4_0_4_8",
        "q4_0_8_8",
        "tq1_0",
        "tq2_0",
        "iq4_nl_4_4",
        "iq4_nl_4_8",
        "iq4_nl_8_8",
        "mxfp4",
        "nvfp4",
        "q1_0",
        "q2_0",
    ];
    NAMES.get(id as usize).copied().unwrap_or("unknown")
}

impl Gguf {
    /// Parses and checks `buf`, the whole file.
    ///
    /// # Errors
    /// A [`GgufError`] naming the first problem found.
    pub fn parse(buf: &[u8]) -> Result<Gguf, GgufError> {
        let mut c = Cursor { buf, pos: 0 };
        let magic = c
            .bytes(4, || "the magic".into())
            .map_err(|_| GgufError::BadMagic {
                found: buf[..buf.len().min(4)].to_vec(),
            })?;
        if magic != b"GGUF" {
            return Err(GgufError::BadMagic {
                found: magic.to_vec(),
            });
        }
        let version = c.u32(|| "the version".into())?;
        if !(2..=3).contains(&version) {
            return Err(GgufError::UnsupportedVersion(version));
        }
        let n_tensors = c.u64(|| "the tensor count".into())?;
        let n_kv = c.u64(|| "the metadata count".into())?;
        // The smallest metadata entry is a 1-byte key, a type and a 1-byte value (13
        // bytes); the smallest tensor info a 1-byte name, one dim, type, offset (37).
        c.bound("metadata entries", n_kv, 13)?;
        c.bound("tensors", n_tensors, 37)?;

        let mut metadata = Vec::with_capacity(n_kv as usize);
        let mut keys = HashSet::new();
        for i in 0..n_kv {
            let key = c.string(MAX_KEY_LEN, &|| format!("the key of metadata entry {i}"))?;
            let tag = c.u32(|| format!("the type of metadata {key:?}"))?;
            let value = c.value(&key, tag, true)?;
            if !keys.insert(key.clone()) {
                return Err(GgufError::Duplicate {
                    what: "metadata key",
                    name: key,
                });
            }
            metadata.push((key, value));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= 1 << 30 => a,
                _ => return Err(GgufError::BadAlignment(format!("{v:?}"))),
            },
        };

        let mut infos = Vec::with_capacity(n_tensors as usize);
        let mut names = HashSet::new();
        for i in 0..n_tensors {
            let name = c.string(MAX_NAME_LEN, &|| format!("the name of tensor {i}"))?;
            let n_dims = c.u32(|| format!("the rank of tensor {name:?}"))?;
            if n_dims == 0 || n_dims as usize > MAX_DIMS {
                return Err(GgufError::BadShape {
                    tensor: name,
                    why: format!("{n_dims} dimensions (1 to {MAX_DIMS} allowed)"),
                });
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for d in 0..n_dims {
                dims.push(c.u64(|| format!("dimension {d} of tensor {name:?}"))?);
            }
            let type_id = c.u32(|| format!("the type of tensor {name:?}"))?;
            let rel = c.u64(|| format!("the offset of tensor {name:?}"))?;
            if !names.insert(name.clone()) {
                return Err(GgufError::Duplicate {
                    what: "tensor",
                    name,
                });
            }
            infos.push((name, dims, type_id, rel));
        }
        let data_offset = align_up(c.pos as u64, alignment).ok_or(GgufError::Truncated {
            what: "the data section".into(),
            end: u64::MAX,
            len: buf.len() as u64,
        })?;
        let len = buf.len() as u64;

        let mut tensors = Vec::with_capacity(infos.len());
        for (name, dims, type_id, rel) in infos {
            let ty = QuantType::from_id(type_id).ok_or_else(|| GgufError::UnsupportedType {
                tensor: name.clone(),
                id: type_id,
                type_name: ggml_type_name(type_id),
            })?;
            let n_bytes = check_shape(&name, &dims, ty)?;
            let bad = |why: String| GgufError::BadOffset {
                tensor: name.clone(),
                why,
            };
            if rel % alignment != 0 {
                return Err(bad(format!(
                    "data offset {rel} is not a multiple of the alignment {alignment}"
                )));
            }
            let offset = data_offset
                .checked_add(rel)
                .filter(|o| o.checked_add(n_bytes).is_some_and(|end| end <= len))
                .ok_or_else(|| {
                    bad(format!(
                        "its {n_bytes} bytes at data offset {rel} run past the end of the \
                         {len}-byte file (data starts at {data_offset})"
                    ))
                })?;
            tensors.push(GgufTensor {
                name,
                dims,
                ty,
                offset,
                n_bytes,
            });
        }
        let mut spans: Vec<&GgufTensor> = tensors.iter().collect();
        spans.sort_by_key(|t| (t.offset, t.n_bytes));
        for w in spans.windows(2) {
            if w[0].offset + w[0].n_bytes > w[1].offset {
                return Err(GgufError::BadOffset {
                    tensor: w[1].name.clone(),
                    why: format!("its data overlaps that of {:?}", w[0].name),
                });
            }
        }
        Ok(Gguf {
            version,
            metadata,
            tensors,
            alignment,
            data_offset,
        })
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `key` as a non-negative integer of any width.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not such an integer.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>, GgufError> {
        value::expect(
            key,
            self.get(key),
            "a non-negative integer",
            GgufValue::as_u64,
        )
    }

    /// `key` as an f32 or f64.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not a float.
    pub fn get_f64(&self, key: &str) -> Result<Option<f64>, GgufError> {
        value::expect(key, self.get(key), "a float", GgufValue::as_f64)
    }

    /// `key` as a bool.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not a bool.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>, GgufError> {
        value::expect(key, self.get(key), "a bool", |v| match v {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        })
    }

    /// `key` as a string.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not a string.
    pub fn get_str(&self, key: &str) -> Result<Option<&str>, GgufError> {
        value::expect(key, self.get(key), "a string", |v| match v {
            GgufValue::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// `key` as an array of strings.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not an array of strings.
    pub fn get_str_array(&self, key: &str) -> Result<Option<Vec<&str>>, GgufError> {
        value::expect(key, self.get(key), "an array of strings", |v| match v {
            GgufValue::Array(a) => a
                .iter()
                .map(|e| match e {
                    GgufValue::String(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect(),
            _ => None,
        })
    }

    /// `key` as an array of integers of any width, widened to i64.
    ///
    /// # Errors
    /// [`GgufError::WrongType`] when it is present but not an array of integers.
    pub fn get_int_array(&self, key: &str) -> Result<Option<Vec<i64>>, GgufError> {
        value::expect(key, self.get(key), "an array of integers", |v| match v {
            GgufValue::Array(a) => a.iter().map(GgufValue::as_i64).collect(),
            _ => None,
        })
    }

    /// The tensor named `name`.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of `t` in `buf`, the buffer this index was parsed from.
    ///
    /// # Panics
    /// When `buf` is not that buffer and is too short; [`Gguf::parse`] checked every
    /// range against the original.
    pub fn tensor_data<'a>(&self, buf: &'a [u8], t: &GgufTensor) -> &'a [u8] {
        &buf[t.offset as usize..(t.offset + t.n_bytes) as usize]
    }
}

/// The byte size of a tensor of `dims` (innermost first) and type `ty`, after checking
/// that every dimension is positive, the row is whole blocks, and nothing overflows.
fn check_shape(name: &str, dims: &[u64], ty: QuantType) -> Result<u64, GgufError> {
    let bad = |why: String| GgufError::BadShape {
        tensor: name.into(),
        why,
    };
    if let Some(d) = dims.iter().position(|&d| d == 0) {
        return Err(bad(format!("dimension {d} is 0")));
    }
    let n = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= i64::MAX as u64)
        .ok_or_else(|| bad(format!("{dims:?} overflows the element count")))?;
    let block = ty.block_size() as u64;
    if !dims[0].is_multiple_of(block) {
        return Err(bad(format!(
            "rows of {} elements are not whole {}-element blocks of {}",
            dims[0],
            block,
            ty.name()
        )));
    }
    ty.bytes_for(n)
        .ok_or_else(|| bad(format!("{dims:?} overflows the byte count")))
}

fn align_up(x: u64, a: u64) -> Option<u64> {
    x.checked_add(a - 1).map(|v| v / a * a)
}

/// A little-endian reader that fails with [`GgufError::Truncated`] instead of
/// indexing out of bounds.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&mut self, n: u64, what: impl Fn() -> String) -> Result<&'a [u8], GgufError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(GgufError::Truncated {
                what: what(),
                end: (self.pos as u64).saturating_add(n),
                len: self.buf.len() as u64,
            });
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: impl Fn() -> String) -> Result<[u8; N], GgufError> {
        let b = self.bytes(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    fn u32(&mut self, what: impl Fn() -> String) -> Result<u32, GgufError> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: impl Fn() -> String) -> Result<u64, GgufError> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// Refuses `count` items of at least `min_size` bytes each when the rest of the
    /// file cannot hold them, before anything is allocated for them.
    fn bound(&self, what: &str, count: u64, min_size: u64) -> Result<(), GgufError> {
        let limit = (self.buf.len() - self.pos) as u64 / min_size;
        if count > limit {
            return Err(GgufError::TooMany {
                what: format!("{what} count"),
                count,
                limit,
            });
        }
        Ok(())
    }

    fn string(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let n = self.u64(|| format!("the length of {}", what()))?;
        if n > max {
            return Err(GgufError::TooMany {
                what: format!("bytes in {}", what()),
                count: n,
                limit: max,
            });
        }
        let b = self.bytes(n, what)?;
        String::from_utf8(b.to_vec()).map_err(|_| GgufError::NotUtf8 { what: what() })
    }

    /// One value of type `tag`; `top` is false inside an array, where arrays are
    /// refused.
    fn value(&mut self, key: &str, tag: u32, top: bool) -> Result<GgufValue, GgufError> {
        let what = || format!("the value of metadata {key:?}");
        Ok(match tag {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(i8::from_le_bytes(self.array(what)?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(u32::from_le_bytes(self.array(what)?)),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => match self.array::<1>(what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                byte => {
                    return Err(GgufError::BadBool {
                        key: key.into(),
                        byte,
                    })
                }
            },
            8 => GgufValue::String(self.string(u64::MAX, &what)?),
            9 if top => {
                let elem = self.u32(|| format!("the element type of metadata {key:?}"))?;
                let n = self.u64(|| format!("the length of metadata {key:?}"))?;
                let min_size = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => return Err(GgufError::NestedArray { key: key.into() }),
                    tag => {
                        return Err(GgufError::UnknownValueType {
                            key: key.into(),
                            tag,
                        })
                    }
                };
                self.bound(&format!("metadata {key:?} element"), n, min_size)?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(key, elem, false)?);
                }
                GgufValue::Array(items)
            }
            9 => return Err(GgufError::NestedArray { key: key.into() }),
            10 => GgufValue::U64(u64::from_le_bytes(self.array(what)?)),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            tag => {
                return Err(GgufError::UnknownValueType {
                    key: key.into(),
                    tag,
                })
            }
        })
    }
}
