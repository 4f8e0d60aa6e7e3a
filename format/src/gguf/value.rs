//! GGUF metadata values ([`GgufValue`]) and the typed reads a model reader needs.

use super::GgufError;

/// One GGUF metadata value. Arrays hold scalars or strings, never arrays.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// `uint8` (type 0).
    U8(u8),
    /// `int8` (type 1).
    I8(i8),
    /// `uint16` (type 2).
    U16(u16),
    /// `int16` (type 3).
    I16(i16),
    /// `uint32` (type 4).
    U32(u32),
    /// `int32` (type 5).
    I32(i32),
    /// `float32` (type 6).
    F32(f32),
    /// `bool` (type 7).
    Bool(bool),
    /// `string` (type 8).
    String(String),
    /// `array` (type 9) of one element type.
    Array(Vec<GgufValue>),
    /// `uint64` (type 10).
    U64(u64),
    /// `int64` (type 11).
    I64(i64),
    /// `float64` (type 12).
    F64(f64),
}

impl GgufValue {
    /// The GGUF type name, for errors.
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::U8(_) => "u8",
            GgufValue::I8(_) => "i8",
            GgufValue::U16(_) => "u16",
            GgufValue::I16(_) => "i16",
            GgufValue::U32(_) => "u32",
            GgufValue::I32(_) => "i32",
            GgufValue::F32(_) => "f32",
            GgufValue::Bool(_) => "bool",
            GgufValue::String(_) => "string",
            GgufValue::Array(_) => "array",
            GgufValue::U64(_) => "u64",
            GgufValue::I64(_) => "i64",
            GgufValue::F64(_) => "f64",
        }
    }

    /// The value as a non-negative integer, whatever integer type stores it.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a signed integer, whatever integer type stores it.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            GgufValue::I8(v) => Some(v.into()),
            GgufValue::I16(v) => Some(v.into()),
            GgufValue::I32(v) => Some(v.into()),
            GgufValue::I64(v) => Some(v),
            _ => self.as_u64().and_then(|v| i64::try_from(v).ok()),
        }
    }

    /// The value as a float (f32 widened exactly).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => None,
        }
    }
}

/// The typed reads of a metadata entry: `Ok(None)` when absent, an error naming the
/// key when present with another type.
pub(super) fn expect<'a, T>(
    key: &str,
    v: Option<&'a GgufValue>,
    expected: &'static str,
    get: impl Fn(&'a GgufValue) -> Option<T>,
) -> Result<Option<T>, GgufError> {
    match v {
        None => Ok(None),
        Some(v) => get(v).map(Some).ok_or_else(|| GgufError::WrongType {
            key: key.into(),
            expected,
            found: v.type_name(),
        }),
    }
}
