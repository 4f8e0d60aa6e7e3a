//! A GGUF writer for tests: builds well-formed files byte by byte, and lets a test
//! break them on purpose (wrong counts, tags, offsets) through the raw entry points.

/// GGUF metadata value type tags.
pub mod tag {
    /// uint8
    pub const U8: u32 = 0;
    /// uint32
    pub const U32: u32 = 4;
    /// int32
    pub const I32: u32 = 5;
    /// float32
    pub const F32: u32 = 6;
    /// bool
    pub const BOOL: u32 = 7;
    /// string
    pub const STRING: u32 = 8;
    /// array
    pub const ARRAY: u32 = 9;
    /// uint64
    pub const U64: u32 = 10;
}

/// One tensor to write.
#[derive(Clone, Debug)]
pub struct GgufTensorSpec {
    /// Name.
    pub name: String,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// ggml type id.
    pub ty: u32,
    /// Its bytes.
    pub data: Vec<u8>,
    /// Offset from the data section; `None` places it after the previous one,
    /// aligned.
    pub offset: Option<u64>,
}

/// Builds a GGUF file.
#[derive(Clone, Debug)]
pub struct GgufBuilder {
    /// The version written (3 unless changed).
    pub version: u32,
    /// Encoded metadata entries.
    pub kv: Vec<Vec<u8>>,
    /// Tensors in index order.
    pub tensors: Vec<GgufTensorSpec>,
    /// The alignment used to place tensors (set `general.alignment` too when not 32).
    pub alignment: u64,
}

impl Default for GgufBuilder {
    fn default() -> Self {
        GgufBuilder {
            version: 3,
            kv: Vec::new(),
            tensors: Vec::new(),
            alignment: 32,
        }
    }
}

/// A GGUF string: u64 length, bytes.
pub fn gguf_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s);
    v
}

impl GgufBuilder {
    /// An empty version-3 file.
    pub fn new() -> Self {
        Self::default()
    }

    /// A metadata entry with a raw type tag and already-encoded value bytes.
    pub fn kv_raw(mut self, key: &[u8], tag: u32, value: &[u8]) -> Self {
        let mut e = gguf_string(key);
        e.extend_from_slice(&tag.to_le_bytes());
        e.extend_from_slice(value);
        self.kv.push(e);
        self
    }

    /// A u32 entry.
    pub fn u32(self, key: &str, v: u32) -> Self {
        self.kv_raw(key.as_bytes(), tag::U32, &v.to_le_bytes())
    }

    /// A u64 entry.
    pub fn u64(self, key: &str, v: u64) -> Self {
        self.kv_raw(key.as_bytes(), tag::U64, &v.to_le_bytes())
    }

    /// An f32 entry.
    pub fn f32(self, key: &str, v: f32) -> Self {
        self.kv_raw(key.as_bytes(), tag::F32, &v.to_le_bytes())
    }

    /// A bool entry.
    pub fn bool(self, key: &str, v: bool) -> Self {
        self.kv_raw(key.as_bytes(), tag::BOOL, &[v as u8])
    }

    /// A string entry.
    pub fn str(self, key: &str, v: &str) -> Self {
        self.kv_raw(key.as_bytes(), tag::STRING, &gguf_string(v.as_bytes()))
    }

    /// An array of strings.
    pub fn str_array(self, key: &str, v: &[&str]) -> Self {
        let mut b = tag::STRING.to_le_bytes().to_vec();
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for s in v {
            b.extend(gguf_string(s.as_bytes()));
        }
        self.kv_raw(key.as_bytes(), tag::ARRAY, &b)
    }

    /// An array of i32.
    pub fn i32_array(self, key: &str, v: &[i32]) -> Self {
        let mut b = tag::I32.to_le_bytes().to_vec();
        b.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        self.kv_raw(key.as_bytes(), tag::ARRAY, &b)
    }

    /// A tensor placed after the previous one.
    pub fn tensor(mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> Self {
        self.tensors.push(GgufTensorSpec {
            name: name.into(),
            dims: dims.to_vec(),
            ty,
            data,
            offset: None,
        });
        self
    }

    /// An f32 tensor.
    pub fn tensor_f32(self, name: &str, dims: &[u64], values: &[f32]) -> Self {
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, 0, data)
    }

    /// The file's bytes.
    pub fn build(&self) -> Vec<u8> {
        let a = self.alignment.max(1);
        let up = |x: u64| x.div_ceil(a) * a;
        let mut offsets = Vec::new();
        let mut next = 0u64;
        for t in &self.tensors {
            let off = t.offset.unwrap_or(up(next));
            offsets.push(off);
            next = off + t.data.len() as u64;
        }
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kv.len() as u64).to_le_bytes());
        for e in &self.kv {
            out.extend_from_slice(e);
        }
        for (t, off) in self.tensors.iter().zip(&offsets) {
            out.extend(gguf_string(t.name.as_bytes()));
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
        }
        let data_start = up(out.len() as u64);
        out.resize(data_start as usize, 0);
        for (t, off) in self.tensors.iter().zip(&offsets) {
            let at = (data_start + off) as usize;
            if out.len() < at + t.data.len() {
                out.resize(at + t.data.len(), 0);
            }
            out[at..at + t.data.len()].copy_from_slice(&t.data);
        }
        out
    }
}
