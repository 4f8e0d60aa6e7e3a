//! The metadata section: flat, typed key/value pairs (SPEC.md §3).
//!
//! No nesting beyond one level of arrays of scalars or strings, and every count and
//! length is capped and checked against the bytes that remain before anything is
//! allocated: that is where GGUF readers got their denial-of-service bugs.

use crate::cursor::Cursor;
use crate::error::{FormatError, Result, Section};
use std::collections::HashSet;

/// Longest metadata key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Most metadata entries in one file.
pub const MAX_ENTRIES: u64 = 65_536;
/// Longest string value, in bytes (an embedded tokenizer.json is a few MB).
pub const MAX_STRING_LEN: u64 = 64 << 20;
/// Most elements in one array value.
pub const MAX_ARRAY_LEN: u64 = 1 << 24;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Unsigned 32-bit integer (tag 1).
    U32(u32),
    /// Signed 32-bit integer (tag 2).
    I32(i32),
    /// Unsigned 64-bit integer (tag 3).
    U64(u64),
    /// Signed 64-bit integer (tag 4).
    I64(i64),
    /// binary32 float (tag 5).
    F32(f32),
    /// binary64 float (tag 6).
    F64(f64),
    /// Boolean, one byte 0 or 1 (tag 7).
    Bool(bool),
    /// UTF-8 string (tag 8).
    String(String),
    /// Array of scalars or strings, all of one type (tag 9).
    Array(Array),
}

/// An array value: one element type, no nesting.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Of u32.
    U32(Vec<u32>),
    /// Of i32.
    I32(Vec<i32>),
    /// Of u64.
    U64(Vec<u64>),
    /// Of i64.
    I64(Vec<i64>),
    /// Of f32.
    F32(Vec<f32>),
    /// Of f64.
    F64(Vec<f64>),
    /// Of bool.
    Bool(Vec<bool>),
    /// Of strings.
    String(Vec<String>),
}

const TAG_U32: u8 = 1;
const TAG_I32: u8 = 2;
const TAG_U64: u8 = 3;
const TAG_I64: u8 = 4;
const TAG_F32: u8 = 5;
const TAG_F64: u8 = 6;
const TAG_BOOL: u8 = 7;
const TAG_STRING: u8 = 8;
const TAG_ARRAY: u8 = 9;

impl Value {
    fn tag(&self) -> u8 {
        match self {
            Value::U32(_) => TAG_U32,
            Value::I32(_) => TAG_I32,
            Value::U64(_) => TAG_U64,
            Value::I64(_) => TAG_I64,
            Value::F32(_) => TAG_F32,
            Value::F64(_) => TAG_F64,
            Value::Bool(_) => TAG_BOOL,
            Value::String(_) => TAG_STRING,
            Value::Array(_) => TAG_ARRAY,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U32(v) => Some(v as u64),
            Value::U64(v) => Some(v),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as f64, if it is a float.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v as f64),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A short human-readable rendering (long strings are shown by size).
    pub fn summary(&self) -> String {
        match self {
            Value::String(s) if s.len() > 80 => format!("<string, {} bytes>", s.len()),
            Value::String(s) => format!("{s:?}"),
            Value::Array(a) => format!("<array of {}>", a.len()),
            Value::U32(v) => v.to_string(),
            Value::I32(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::I64(v) => v.to_string(),
            Value::F32(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
        }
    }
}

impl Array {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Array::U32(v) => v.len(),
            Array::I32(v) => v.len(),
            Array::U64(v) => v.len(),
            Array::I64(v) => v.len(),
            Array::F32(v) => v.len(),
            Array::F64(v) => v.len(),
            Array::Bool(v) => v.len(),
            Array::String(v) => v.len(),
        }
    }

    /// True when the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The metadata of a file: entries in file order, keys unique.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
}

/// Checks a metadata key against SPEC.md §3: 1..=256 bytes of `[a-z0-9_.]`, dot-separated
/// non-empty segments.
pub fn check_key(key: &str) -> Result<()> {
    let bad = |why| {
        Err(FormatError::InvalidName {
            what: "metadata key",
            name: key.to_string(),
            why,
        })
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return bad("must be 1 to 256 bytes");
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return bad("only a-z, 0-9, '_' and '.' are allowed");
    }
    if key.split('.').any(str::is_empty) {
        return bad("empty segment between dots");
    }
    Ok(())
}

impl Metadata {
    /// An empty set of entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an entry.
    ///
    /// # Errors
    /// [`FormatError::InvalidName`] for a key that breaks the naming rules.
    pub fn set(&mut self, key: &str, value: Value) -> Result<()> {
        check_key(key)?;
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
        Ok(())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A required unsigned integer.
    pub fn require_u64(&self, key: &str) -> Result<u64> {
        let v = self
            .get(key)
            .ok_or_else(|| FormatError::MissingKey(key.into()))?;
        v.as_u64().ok_or_else(|| FormatError::BadValue {
            key: key.into(),
            why: format!("expected an unsigned integer, found {}", v.summary()),
        })
    }

    /// A required float.
    pub fn require_f64(&self, key: &str) -> Result<f64> {
        let v = self
            .get(key)
            .ok_or_else(|| FormatError::MissingKey(key.into()))?;
        v.as_f64().ok_or_else(|| FormatError::BadValue {
            key: key.into(),
            why: format!("expected a float, found {}", v.summary()),
        })
    }

    /// A required bool.
    pub fn require_bool(&self, key: &str) -> Result<bool> {
        let v = self
            .get(key)
            .ok_or_else(|| FormatError::MissingKey(key.into()))?;
        v.as_bool().ok_or_else(|| FormatError::BadValue {
            key: key.into(),
            why: format!("expected a bool, found {}", v.summary()),
        })
    }

    /// A required string.
    pub fn require_str(&self, key: &str) -> Result<&str> {
        let v = self
            .get(key)
            .ok_or_else(|| FormatError::MissingKey(key.into()))?;
        v.as_str().ok_or_else(|| FormatError::BadValue {
            key: key.into(),
            why: format!("expected a string, found {}", v.summary()),
        })
    }

    /// Checks the caps a reader enforces (SPEC.md §3) that [`Metadata::set`] cannot:
    /// entry count, string lengths and array lengths. The writer calls this so that it
    /// never produces a file the reader rejects.
    pub(crate) fn check_limits(&self) -> Result<()> {
        fn cap(what: &'static str, found: usize, limit: u64) -> Result<()> {
            if found as u64 > limit {
                return Err(FormatError::LimitExceeded {
                    what,
                    found: found as u64,
                    limit,
                });
            }
            Ok(())
        }
        cap("metadata entry count", self.entries.len(), MAX_ENTRIES)?;
        for (_, v) in &self.entries {
            match v {
                Value::String(s) => cap("string length", s.len(), MAX_STRING_LEN)?,
                Value::Array(a) => {
                    cap("array length", a.len(), MAX_ARRAY_LEN)?;
                    if let Array::String(v) = a {
                        for s in v {
                            cap("string length", s.len(), MAX_STRING_LEN)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Encodes the section (SPEC.md §3).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.entries {
            out.extend_from_slice(&(k.len() as u16).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.push(v.tag());
            match v {
                Value::Array(a) => write_array(&mut out, a),
                scalar => write_scalar(&mut out, scalar),
            }
        }
        out
    }

    /// Decodes a section of exactly `bytes.len()` bytes holding `n` entries.
    pub fn parse(bytes: &[u8], n: u64) -> Result<Metadata> {
        if n > MAX_ENTRIES {
            return Err(FormatError::LimitExceeded {
                what: "metadata entry count",
                found: n,
                limit: MAX_ENTRIES,
            });
        }
        // Each entry takes at least 2 (key length) + 1 (key) + 1 (tag) + 1 bytes.
        if n.saturating_mul(5) > bytes.len() as u64 {
            return Err(FormatError::Truncated {
                section: Section::Metadata,
                what: format!("{n} metadata entries"),
                end: n.saturating_mul(5),
                available: bytes.len() as u64,
            });
        }
        let mut c = Cursor::new(bytes, Section::Metadata);
        let mut md = Metadata::new();
        // A set, not `md.get`: 65,536 keys must not cost 2^31 comparisons.
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for i in 0..n {
            let key_len = c.u16(&|| format!("length of metadata key #{i}"))? as usize;
            let raw = c.bytes(key_len, &|| format!("metadata key #{i}"))?;
            let key = std::str::from_utf8(raw).map_err(|_| FormatError::InvalidUtf8 {
                what: format!("metadata key #{i}"),
            })?;
            check_key(key)?;
            if !seen.insert(raw) {
                return Err(FormatError::DuplicateKey(key.to_string()));
            }
            let tag = c.u8(&|| format!("value type of `{key}`"))?;
            let value = if tag == TAG_ARRAY {
                Value::Array(read_array(&mut c, key)?)
            } else {
                read_scalar(&mut c, key, tag)?
            };
            md.entries.push((key.to_string(), value));
        }
        if c.remaining() != 0 {
            return Err(FormatError::BadLayout(format!(
                "{} unused bytes at the end of the metadata section (after {n} entries)",
                c.remaining()
            )));
        }
        Ok(md)
    }
}

fn write_scalar(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => write_str(out, s),
        Value::Array(_) => unreachable!("arrays are written by write_array"),
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn write_array(out: &mut Vec<u8>, a: &Array) {
    fn put<T: Copy>(out: &mut Vec<u8>, tag: u8, v: &[T], f: impl Fn(&mut Vec<u8>, T)) {
        out.push(tag);
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for &x in v {
            f(out, x);
        }
    }
    match a {
        Array::U32(v) => put(out, TAG_U32, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::I32(v) => put(out, TAG_I32, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::U64(v) => put(out, TAG_U64, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::I64(v) => put(out, TAG_I64, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::F32(v) => put(out, TAG_F32, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::F64(v) => put(out, TAG_F64, v, |o, x| {
            o.extend_from_slice(&x.to_le_bytes())
        }),
        Array::Bool(v) => put(out, TAG_BOOL, v, |o, x| o.push(x as u8)),
        Array::String(v) => {
            out.push(TAG_STRING);
            out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            for s in v {
                write_str(out, s);
            }
        }
    }
}

fn read_string(c: &mut Cursor<'_>, key: &str) -> Result<String> {
    let len = c.u64(&|| format!("string length in `{key}`"))?;
    if len > MAX_STRING_LEN {
        return Err(FormatError::LimitExceeded {
            what: "string length",
            found: len,
            limit: MAX_STRING_LEN,
        });
    }
    let raw = c.bytes(len as usize, &|| format!("string in `{key}`"))?;
    String::from_utf8(raw.to_vec()).map_err(|_| FormatError::InvalidUtf8 {
        what: format!("string value of `{key}`"),
    })
}

fn read_bool(c: &mut Cursor<'_>, key: &str) -> Result<bool> {
    match c.u8(&|| format!("bool `{key}`"))? {
        0 => Ok(false),
        1 => Ok(true),
        found => Err(FormatError::BadBool {
            key: key.to_string(),
            found,
        }),
    }
}

fn read_scalar(c: &mut Cursor<'_>, key: &str, tag: u8) -> Result<Value> {
    let what = || format!("value of `{key}`");
    Ok(match tag {
        TAG_U32 => Value::U32(c.u32(&what)?),
        TAG_I32 => Value::I32(c.u32(&what)? as i32),
        TAG_U64 => Value::U64(c.u64(&what)?),
        TAG_I64 => Value::I64(c.u64(&what)? as i64),
        TAG_F32 => Value::F32(f32::from_bits(c.u32(&what)?)),
        TAG_F64 => Value::F64(f64::from_bits(c.u64(&what)?)),
        TAG_BOOL => Value::Bool(read_bool(c, key)?),
        TAG_STRING => Value::String(read_string(c, key)?),
        _ => {
            return Err(FormatError::UnknownValueType {
                key: key.to_string(),
                tag,
            })
        }
    })
}

fn read_array(c: &mut Cursor<'_>, key: &str) -> Result<Array> {
    let tag = c.u8(&|| format!("array element type of `{key}`"))?;
    let n = c.u64(&|| format!("array length of `{key}`"))?;
    if n > MAX_ARRAY_LEN {
        return Err(FormatError::LimitExceeded {
            what: "array length",
            found: n,
            limit: MAX_ARRAY_LEN,
        });
    }
    let min_elem: u64 = match tag {
        TAG_U32 | TAG_I32 | TAG_F32 => 4,
        TAG_U64 | TAG_I64 | TAG_F64 | TAG_STRING => 8,
        TAG_BOOL => 1,
        _ => {
            return Err(FormatError::UnknownValueType {
                key: key.to_string(),
                tag,
            })
        }
    };
    // Refuse before allocating: the elements must fit in what is left.
    if n * min_elem > c.remaining() as u64 {
        return Err(FormatError::Truncated {
            section: Section::Metadata,
            what: format!("{n} array elements of `{key}`"),
            end: c.pos() as u64 + n * min_elem,
            available: (c.pos() + c.remaining()) as u64,
        });
    }
    let n = n as usize;
    fn collect<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f()?);
        }
        Ok(v)
    }
    let what = || format!("array element of `{key}`");
    Ok(match tag {
        TAG_U32 => Array::U32(collect(n, || c.u32(&what))?),
        TAG_I32 => Array::I32(collect(n, || Ok(c.u32(&what)? as i32))?),
        TAG_U64 => Array::U64(collect(n, || c.u64(&what))?),
        TAG_I64 => Array::I64(collect(n, || Ok(c.u64(&what)? as i64))?),
        TAG_F32 => Array::F32(collect(n, || Ok(f32::from_bits(c.u32(&what)?)))?),
        TAG_F64 => Array::F64(collect(n, || Ok(f64::from_bits(c.u64(&what)?)))?),
        TAG_BOOL => Array::Bool(collect(n, || read_bool(c, key))?),
        _ => Array::String(collect(n, || read_string(c, key))?),
    })
}
