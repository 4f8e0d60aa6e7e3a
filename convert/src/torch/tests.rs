//! Tests for the torch checkpoint reader: the shared fixture against its safetensors twin, and
//! hand-assembled pickles and archives for every rejection.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::pickle::{parse_state_dict, PickleError};
use super::{TorchCheckpoint, TorchDtype, TorchError};

// ---------------------------------------------------------------------------------------------
// Fixture helpers
// ---------------------------------------------------------------------------------------------

fn fixture_bin() -> Option<PathBuf> {
    mamba_testkit::shared_path("fixtures/mamba-tiny-ssm/pytorch_model.bin")
}

/// State-dict keys in mamba_ssm registration order, as the fixture README lists them.
fn expected_names(n_layer: usize) -> Vec<String> {
    let mut names = vec!["backbone.embedding.weight".to_owned()];
    for l in 0..n_layer {
        names.push(format!("backbone.layers.{l}.norm.weight"));
        for p in [
            "A_log",
            "D",
            "in_proj.weight",
            "conv1d.weight",
            "conv1d.bias",
            "x_proj.weight",
            "dt_proj.weight",
            "dt_proj.bias",
            "out_proj.weight",
        ] {
            names.push(format!("backbone.layers.{l}.mixer.{p}"));
        }
    }
    names.push("backbone.norm_f.weight".to_owned());
    names.push("lm_head.weight".to_owned());
    names
}

/// All entries of a zip as (name, bytes).
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().to_owned(), data)
        })
        .collect()
}

/// Writes a zip of (name, bytes, deflate?) entries.
fn write_zip(path: &Path, entries: &[(String, Vec<u8>, bool)]) {
    let mut zip = ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, data, deflate) in entries {
        let method = if *deflate {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default().compression_method(method);
        zip.start_file(name.as_str(), options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// A temporary checkpoint: `archive/data.pkl`, `archive/byteorder`, `archive/data/<key>`.
struct Ckpt {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn checkpoint(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Ckpt {
    let mut entries = vec![
        ("archive/data.pkl".to_owned(), pickle.to_vec(), false),
        ("archive/byteorder".to_owned(), b"little".to_vec(), false),
    ];
    for (key, data) in storages {
        entries.push((format!("archive/data/{key}"), data.clone(), false));
    }
    entries.push(("archive/version".to_owned(), b"3\n".to_vec(), false));
    checkpoint_entries(&entries)
}

fn checkpoint_entries(entries: &[(String, Vec<u8>, bool)]) -> Ckpt {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pytorch_model.bin");
    write_zip(&path, entries);
    Ckpt { _dir: dir, path }
}

fn open(c: &Ckpt) -> Result<TorchCheckpoint, TorchError> {
    TorchCheckpoint::open(&c.path)
}

fn pickle_err(c: &Ckpt) -> PickleError {
    match open(c) {
        Err(TorchError::Pickle { source, .. }) => source,
        other => panic!("expected a pickle error, got {other:?}"),
    }
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

// ---------------------------------------------------------------------------------------------
// Pickle builder (protocol 2, as torch.save writes it)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct P(Vec<u8>);

impl P {
    fn new() -> Self {
        let mut p = P::default();
        p.0.extend([0x80, 2]);
        p
    }
    fn op(&mut self, op: u8) -> &mut Self {
        self.0.push(op);
        self
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b'c').raw(format!("{module}\n{name}\n").as_bytes())
    }
    fn str(&mut self, s: &str) -> &mut Self {
        self.op(b'X')
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }
    fn int(&mut self, v: u64) -> &mut Self {
        match v {
            0..=0xff => self.op(b'K').raw(&[v as u8]),
            0x100..=0xffff => self.op(b'M').raw(&(v as u16).to_le_bytes()),
            _ => self.op(0x8a).raw(&[8]).raw(&v.to_le_bytes()),
        }
    }
    fn tuple(&mut self, items: &[u64]) -> &mut Self {
        self.op(b'(');
        for &i in items {
            self.int(i);
        }
        self.op(b't')
    }
    /// `('storage', torch.<class>, key, 'cpu', numel)` + `BINPERSID`.
    fn storage(&mut self, class: &str, key: &str, numel: u64) -> &mut Self {
        self.op(b'(').str("storage").global("torch", class).str(key);
        self.str("cpu").int(numel).op(b't').op(b'Q')
    }
    /// A whole `_rebuild_tensor_v2(...)` call.
    fn tensor(&mut self, t: &T) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(b'(');
        self.storage(t.class, t.key, t.numel).int(t.offset);
        self.tuple(&t.shape).tuple(&t.stride).op(0x89);
        self.global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .op(b't')
            .op(b'R')
    }
    /// `{name: tensor, ...}` as a complete pickle.
    fn state_dict(entries: &[(&str, T)]) -> Vec<u8> {
        let mut p = P::new();
        p.op(b'}').op(b'(');
        for (name, t) in entries {
            p.str(name).tensor(t);
        }
        p.op(b'u').op(b'.');
        p.0
    }
}

/// A tensor record for [`P::tensor`].
#[derive(Clone)]
struct T {
    class: &'static str,
    key: &'static str,
    numel: u64,
    offset: u64,
    shape: Vec<u64>,
    stride: Vec<u64>,
}

fn t(key: &'static str, numel: u64, offset: u64, shape: &[u64], stride: &[u64]) -> T {
    T {
        class: "FloatStorage",
        key,
        numel,
        offset,
        shape: shape.to_vec(),
        stride: stride.to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// The shared fixture
// ---------------------------------------------------------------------------------------------

#[test]
fn fixture_names_and_order() {
    let Some(bin) = fixture_bin() else { return };
    let ckpt = TorchCheckpoint::open(&bin).unwrap();
    let names: Vec<&str> = ckpt.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, expected_names(2));
    assert!(ckpt.tensors().iter().all(|t| t.dtype == TorchDtype::F32));
    let emb = ckpt.get("backbone.embedding.weight").unwrap();
    assert_eq!(emb.shape, [1000, 64]);
    let conv = ckpt.get("backbone.layers.1.mixer.conv1d.weight").unwrap();
    assert_eq!(conv.shape, [128, 1, 4]);
    assert!(ckpt.get("backbone.embeddings.weight").is_none());
}

#[test]
fn fixture_matches_safetensors_bit_exactly() {
    let Some(shared) = mamba_testkit::shared_dir() else {
        return;
    };
    let ckpt =
        TorchCheckpoint::open(&shared.join("fixtures/mamba-tiny-ssm/pytorch_model.bin")).unwrap();
    let st_bytes = std::fs::read(shared.join("fixtures/mamba-tiny-hf/model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st_bytes).unwrap();
    let mut compared = 0;
    for info in ckpt.tensors() {
        if info.name == "lm_head.weight" {
            continue;
        }
        let hf_name = info
            .name
            .replace("backbone.embedding.", "backbone.embeddings.");
        let view = st.tensor(&hf_name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{hf_name}");
        assert_eq!(view.shape(), info.shape.as_slice(), "{hf_name}");
        let values = ckpt.read_f32(&info.name).unwrap();
        assert_eq!(f32_bytes(values), view.data(), "{}", info.name);
        compared += 1;
    }
    assert_eq!(compared, st.names().len());
}

#[test]
fn fixture_lm_head_shares_embedding_storage() {
    let Some(bin) = fixture_bin() else { return };
    let ckpt = TorchCheckpoint::open(&bin).unwrap();
    let emb = ckpt.get("backbone.embedding.weight").unwrap();
    let head = ckpt.get("lm_head.weight").unwrap();
    assert_eq!(emb.storage_key, head.storage_key);
    assert_eq!(emb.shape, head.shape);
    let a = ckpt.read_f32(&emb.name).unwrap();
    let b = ckpt.read_f32(&head.name).unwrap();
    assert_eq!(a.len(), 64_000);
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
}

#[test]
fn fixture_truncations_are_errors() {
    let Some(bin) = fixture_bin() else { return };
    let bytes = std::fs::read(&bin).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.bin");
    let len = bytes.len();
    let mut cuts: Vec<usize> = (0..46).map(|i| i * len / 46).collect();
    cuts.extend([1, 100, len - 22, len - 1]);
    for cut in cuts {
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let result = TorchCheckpoint::open(&path);
        assert!(result.is_err(), "prefix of {cut} bytes opened");
    }
}

/// The fixture's entries with `data.pkl` replaced.
fn fixture_with_pickle(pickle: &[u8]) -> Option<Ckpt> {
    let bytes = std::fs::read(fixture_bin()?).unwrap();
    let entries: Vec<(String, Vec<u8>, bool)> = unzip(&bytes)
        .into_iter()
        .map(|(name, data)| {
            let data = if name.ends_with("/data.pkl") {
                pickle.to_vec()
            } else {
                data
            };
            (name, data, false)
        })
        .collect();
    Some(checkpoint_entries(&entries))
}

fn fixture_pickle() -> Option<Vec<u8>> {
    let bytes = std::fs::read(fixture_bin()?).unwrap();
    unzip(&bytes)
        .into_iter()
        .find(|(name, _)| name.ends_with("/data.pkl"))
        .map(|(_, data)| data)
}

#[test]
fn fixture_repacked_unchanged_still_opens() {
    let Some(pkl) = fixture_pickle() else { return };
    let c = fixture_with_pickle(&pkl).unwrap();
    assert_eq!(open(&c).unwrap().tensors().len(), 23);
}

#[test]
fn fixture_byte_flips_are_errors() {
    let Some(pkl) = fixture_pickle() else { return };
    let flip = |at: usize, value: u8| {
        let mut p = pkl.clone();
        p[at] = value;
        pickle_err(&fixture_with_pickle(&p).unwrap())
    };
    // EMPTY_DICT at offset 2 -> an opcode outside the subset.
    assert!(matches!(
        flip(2, 0xff),
        PickleError::UnknownOpcode { offset: 2, .. }
    ));
    // PROTO 2 -> PROTO 9.
    assert!(matches!(
        flip(1, 9),
        PickleError::UnsupportedProtocol { protocol: 9, .. }
    ));
    // 'torch FloatStorage' -> 'torch FloatStorXge'.
    let at = pkl.windows(12).position(|w| w == b"FloatStorage").unwrap() + 9;
    assert!(matches!(
        flip(at, b'X'),
        PickleError::ForbiddenGlobal { .. }
    ));
    // STOP -> NONE: runs off the end.
    let last = pkl.len() - 1;
    assert!(matches!(flip(last, b'N'), PickleError::Truncated { .. }));
    // First BINGET 2 (the rebuild function) -> BINGET 200 (never written).
    let at = pkl.windows(2).position(|w| w == b"h\x02").unwrap() + 1;
    assert!(matches!(
        flip(at, 200),
        PickleError::MissingMemo { index: 200, .. }
    ));
}

/// Every single-byte corruption of the real pickle is handled without panicking, and whatever
/// still parses describes in-range tensors.
#[test]
fn fixture_pickle_flip_sweep_never_panics() {
    let Some(pkl) = fixture_pickle() else { return };
    let mut rejected = 0;
    for at in 0..pkl.len() {
        for value in [0x00, 0xff, pkl[at] ^ 0x01, b'(', b'.', b't'] {
            let mut p = pkl.clone();
            p[at] = value;
            if parse_state_dict(&p).is_err() {
                rejected += 1;
            }
        }
    }
    assert!(rejected > pkl.len(), "only {rejected} corruptions rejected");
    // A few through the whole reader, including validation and reads.
    for at in [5, 40, 130, 137, 139, 141, 148, 2178] {
        let mut p = pkl.clone();
        p[at] ^= 0x01;
        if let Ok(ckpt) = open(&fixture_with_pickle(&p).unwrap()) {
            for t in ckpt.tensors() {
                ckpt.read_f32(&t.name).unwrap();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Views, dtypes and pickle dialects
// ---------------------------------------------------------------------------------------------

/// Reference: element `pos` of a storage holding 0, 1, 2, ... as f32.
fn naive_view(offset: u64, shape: &[u64], stride: &[u64]) -> Vec<f32> {
    let numel: u64 = shape.iter().product();
    (0..numel)
        .map(|mut flat| {
            let mut pos = offset;
            for d in (0..shape.len()).rev() {
                pos += (flat % shape[d]) * stride[d];
                flat /= shape[d];
            }
            pos as f32
        })
        .collect()
}

#[test]
fn strided_views_and_shared_storage() {
    let storage = f32_bytes((0..64).map(|i| i as f32));
    let views = [
        ("contig", t("0", 64, 0, &[4, 8], &[8, 1])),
        ("transposed", t("0", 64, 0, &[8, 4], &[1, 8])),
        ("offset_3d", t("0", 64, 5, &[2, 3, 4], &[1, 2, 6])),
        ("row_slice", t("0", 64, 16, &[2, 8], &[8, 1])),
        ("col_slice", t("0", 64, 3, &[8, 2], &[8, 1])),
        ("size1_big_stride", t("0", 64, 7, &[1, 3], &[1_000_000, 2])),
        ("scalar", t("0", 64, 63, &[], &[])),
        ("empty", t("0", 64, 64, &[0, 5], &[5, 1])),
    ];
    let c = checkpoint(&P::state_dict(&views), &[("0", storage)]);
    let ckpt = open(&c).unwrap();
    for (name, v) in &views {
        let got = ckpt.read_f32(name).unwrap();
        assert_eq!(got, naive_view(v.offset, &v.shape, &v.stride), "{name}");
        assert_eq!(ckpt.get(name).unwrap().storage_key, "0");
    }
    assert_eq!(ckpt.read_f32("scalar").unwrap(), [63.0]);
}

#[test]
fn half_and_bfloat16_widen_exactly() {
    // Zero, a negative, the f16 max, the smallest normal and the smallest subnormal f16.
    let values = [0.0f32, -1.5, 65504.0, 6.1035156e-5, 5.9604645e-8];
    let f16: Vec<u8> = values
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16_values: Vec<half::bf16> = values.iter().map(|&v| half::bf16::from_f32(v)).collect();
    let bf16: Vec<u8> = bf16_values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let with_class = |class, v: T| T { class, ..v };
    let pkl = P::state_dict(&[
        ("h", with_class("HalfStorage", t("h", 5, 0, &[5], &[1]))),
        ("b", with_class("BFloat16Storage", t("b", 5, 0, &[5], &[1]))),
        (
            "b_even",
            with_class("BFloat16Storage", t("b", 5, 0, &[3], &[2])),
        ),
    ]);
    let c = checkpoint(&pkl, &[("h", f16), ("b", bf16)]);
    let ckpt = open(&c).unwrap();
    assert_eq!(ckpt.get("h").unwrap().dtype, TorchDtype::F16);
    assert_eq!(ckpt.get("b").unwrap().dtype, TorchDtype::BF16);
    // Every test value is exactly representable in f16.
    assert_eq!(ckpt.read_f32("h").unwrap(), values);
    let bf16_f32: Vec<f32> = bf16_values.iter().map(|v| v.to_f32()).collect();
    assert_eq!(ckpt.read_f32("b").unwrap(), bf16_f32);
    let even = ckpt.read_f32("b_even").unwrap();
    assert_eq!(even, [bf16_f32[0], bf16_f32[2], bf16_f32[4]]);
}

#[test]
fn other_dtypes_open_but_do_not_widen() {
    let mut d = t("d", 2, 0, &[2], &[1]);
    d.class = "DoubleStorage";
    let mut l = t("l", 2, 0, &[2], &[1]);
    l.class = "LongStorage";
    let c = checkpoint(
        &P::state_dict(&[("d", d), ("l", l)]),
        &[("d", vec![0; 16]), ("l", vec![0; 16])],
    );
    let ckpt = open(&c).unwrap();
    assert_eq!(ckpt.get("l").unwrap().dtype, TorchDtype::I64);
    let err = ckpt.read_f32("d").unwrap_err();
    assert!(matches!(
        err,
        TorchError::UnsupportedDtype {
            dtype: TorchDtype::F64,
            ..
        }
    ));
    assert!(!TorchDtype::I64.widens_to_f32());
    assert_eq!(TorchDtype::BF16.size_in_bytes(), 2);
    assert_eq!(TorchDtype::F16.to_string(), "torch.float16");
}

/// Protocol-4 opcodes, `OrderedDict` + `BUILD` of `_metadata`, `_rebuild_parameter`, a
/// `torch.UntypedStorage` and a dtype global as storage type, memo via `MEMOIZE`/`LONG_BINPUT`.
#[test]
fn protocol4_ordered_dict_parameter_dialect() {
    let mut p = P::default();
    p.raw(&[0x80, 4, 0x95]).raw(&0u64.to_le_bytes());
    // OrderedDict() via STACK_GLOBAL + NEWOBJ, memoized.
    p.op(0x8c).raw(b"\x0bcollections").op(0x94);
    p.op(0x8c)
        .raw(b"\x0bOrderedDict")
        .op(0x94)
        .op(0x93)
        .op(0x94);
    p.op(b')').op(0x81).op(0x94);
    // "w": _rebuild_parameter(_rebuild_tensor_v2(...), True, OrderedDict()).
    p.op(0x8d).raw(&1u64.to_le_bytes()).raw(b"w");
    p.global("torch._utils", "_rebuild_parameter").op(b'(');
    p.tensor(&t("k", 6, 0, &[2, 3], &[3, 1]))
        .op(b'r')
        .raw(&70_000u32.to_le_bytes());
    p.op(0x88)
        .op(b'j')
        .raw(&2u32.to_le_bytes())
        .op(b')')
        .op(b'R');
    p.op(b't').op(b'R').op(b's');
    // "t": same tensor again (tied), via LONG_BINGET.
    p.op(0x8c)
        .raw(b"\x01t")
        .op(b'j')
        .raw(&70_000u32.to_le_bytes())
        .op(b's');
    // "u": uint8 over an UntypedStorage; "e": float32 via the dtype global.
    p.str("u")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b'(');
    p.op(b'(')
        .str("storage")
        .global("torch.storage", "UntypedStorage")
        .str("u");
    p.str("cpu")
        .op(b'J')
        .raw(&4i32.to_le_bytes())
        .op(b't')
        .op(b'Q');
    p.int(0)
        .tuple(&[4])
        .tuple(&[1])
        .op(0x89)
        .op(b'}')
        .op(b't')
        .op(b'R')
        .op(b's');
    p.str("e")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b'(');
    p.op(b'(')
        .str("storage")
        .global("torch", "float32")
        .str("k")
        .str("cpu")
        .int(6);
    p.op(b't')
        .op(b'Q')
        .int(4)
        .tuple(&[2])
        .tuple(&[1])
        .op(0x89)
        .op(b'}');
    p.op(b'N').op(b't').op(b'R').op(b's');
    // BUILD {'_metadata': OrderedDict([('', {'version': 1})])}-like state with a list in it.
    p.op(b'}')
        .str("_metadata")
        .op(b']')
        .op(b'(')
        .int(1)
        .op(b'G')
        .raw(&1.5f64.to_be_bytes());
    p.op(b'e').op(b'N').op(b'a').op(b's').op(b'b').op(b'.');

    let c = checkpoint(
        &p.0,
        &[
            ("k", f32_bytes((0..6).map(|i| i as f32))),
            ("u", vec![1; 4]),
        ],
    );
    let ckpt = open(&c).unwrap();
    let names: Vec<&str> = ckpt.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["w", "t", "u", "e"]);
    assert_eq!(ckpt.read_f32("w").unwrap(), [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(ckpt.read_f32("t").unwrap(), ckpt.read_f32("w").unwrap());
    assert_eq!(ckpt.read_f32("e").unwrap(), [4.0, 5.0]);
    assert_eq!(ckpt.get("u").unwrap().dtype, TorchDtype::U8);
    assert!(matches!(
        ckpt.read_f32("u"),
        Err(TorchError::UnsupportedDtype { .. })
    ));
    assert!(matches!(
        ckpt.read_f32("nope"),
        Err(TorchError::UnknownTensor { .. })
    ));
}

#[test]
fn deflated_entries_are_decompressed() {
    let pkl = P::state_dict(&[("a", t("0", 8, 2, &[3], &[2]))]);
    let entries = vec![
        ("m/data.pkl".to_owned(), pkl, true),
        (
            "m/data/0".to_owned(),
            f32_bytes((0..8).map(|i| i as f32)),
            true,
        ),
    ];
    let c = checkpoint_entries(&entries);
    let ckpt = open(&c).unwrap();
    assert_eq!(ckpt.read_f32("a").unwrap(), [2.0, 4.0, 6.0]);
}

// ---------------------------------------------------------------------------------------------
// Archive and validation rejections
// ---------------------------------------------------------------------------------------------

fn one_tensor() -> Vec<u8> {
    P::state_dict(&[("a", t("0", 4, 0, &[4], &[1]))])
}

#[test]
fn rejects_missing_file_and_non_zip() {
    let dir = tempfile::tempdir().unwrap();
    let missing = TorchCheckpoint::open(&dir.path().join("none.bin"));
    assert!(matches!(missing, Err(TorchError::Io { .. })));
    let legacy = dir.path().join("legacy.bin");
    std::fs::write(&legacy, [0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9]).unwrap();
    assert!(matches!(
        TorchCheckpoint::open(&legacy),
        Err(TorchError::Zip { .. })
    ));
    let empty = dir.path().join("empty.bin");
    std::fs::write(&empty, []).unwrap();
    assert!(TorchCheckpoint::open(&empty).is_err());
}

#[test]
fn rejects_big_endian() {
    let entries = vec![
        ("a/data.pkl".to_owned(), one_tensor(), false),
        ("a/byteorder".to_owned(), b"big".to_vec(), false),
        ("a/data/0".to_owned(), vec![0; 16], false),
    ];
    let err = open(&checkpoint_entries(&entries)).unwrap_err();
    assert!(matches!(err, TorchError::UnsupportedByteOrder { found, .. } if found == "big"));
}

#[test]
fn rejects_missing_or_duplicate_pickle() {
    let none = vec![("a/data/0".to_owned(), vec![0; 16], false)];
    let err = open(&checkpoint_entries(&none)).unwrap_err();
    assert!(matches!(err, TorchError::MissingPickle { .. }));
    let two = vec![
        ("a/data.pkl".to_owned(), one_tensor(), false),
        ("b/data.pkl".to_owned(), one_tensor(), false),
    ];
    let err = open(&checkpoint_entries(&two)).unwrap_err();
    assert!(matches!(err, TorchError::MultiplePickles { .. }));
}

#[test]
fn rejects_missing_storage() {
    let err = open(&checkpoint(&one_tensor(), &[("1", vec![0; 16])])).unwrap_err();
    assert!(matches!(err, TorchError::MissingStorage { key, .. } if key == "0"));
}

#[test]
fn rejects_storage_size_mismatch() {
    let err = open(&checkpoint(&one_tensor(), &[("0", vec![0; 12])])).unwrap_err();
    assert!(matches!(
        err,
        TorchError::StorageSizeMismatch {
            expected: 16,
            actual: 12,
            ..
        }
    ));
}

#[test]
fn rejects_views_out_of_bounds() {
    let cases = [
        t("0", 4, 1, &[4], &[1]),
        t("0", 4, 0, &[2, 2], &[3, 1]),
        t("0", 4, 5, &[0], &[1]),
        t("0", 4, i64::MAX as u64, &[2], &[1]),
        t("0", 4, 0, &[2], &[u64::MAX / 2]),
    ];
    for v in cases {
        let c = checkpoint(&P::state_dict(&[("a", v)]), &[("0", vec![0; 16])]);
        let err = open(&c).unwrap_err();
        assert!(
            matches!(err, TorchError::TensorOutOfBounds { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn rejects_views_larger_than_storage() {
    // An expanded (stride-0) view: in bounds, but would materialise more than the file holds.
    let c = checkpoint(
        &P::state_dict(&[("a", t("0", 4, 0, &[1 << 40, 4], &[0, 1]))]),
        &[("0", vec![0; 16])],
    );
    let err = open(&c).unwrap_err();
    assert!(
        matches!(err, TorchError::TensorExceedsStorage { .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Pickle rejections
// ---------------------------------------------------------------------------------------------

#[test]
fn rejects_forbidden_globals() {
    // os.system('echo pwned') via GLOBAL + REDUCE.
    let mut p = P::new();
    p.global("os", "system")
        .str("echo pwned")
        .op(0x85)
        .op(b'R')
        .op(b'.');
    let err = parse_state_dict(&p.0).unwrap_err();
    assert!(matches!(
        &err,
        PickleError::ForbiddenGlobal { module, name, offset: 2 } if module == "os" && name == "system"
    ));
    // builtins.eval via STACK_GLOBAL, and through the whole reader.
    let mut p = P::new();
    p.str("builtins")
        .str("eval")
        .op(0x93)
        .str("1")
        .op(0x85)
        .op(b'R')
        .op(b'.');
    let c = checkpoint(&p.0, &[]);
    assert!(matches!(
        pickle_err(&c),
        PickleError::ForbiddenGlobal { .. }
    ));
    // A torch name that is not on the list.
    let mut p = P::new();
    p.global("torch", "load").op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::ForbiddenGlobal { .. })
    ));
}

#[test]
fn rejects_non_state_dicts() {
    let mut p = P::new();
    p.op(b']').op(b'.');
    assert_eq!(
        parse_state_dict(&p.0),
        Err(PickleError::NotAStateDict { found: "list" })
    );
    let mut p = P::new();
    p.op(b'}')
        .int(1)
        .tensor(&t("0", 4, 0, &[4], &[1]))
        .op(b's')
        .op(b'.');
    assert_eq!(
        parse_state_dict(&p.0),
        Err(PickleError::NonStringKey { index: 0 })
    );
    let mut p = P::new();
    p.op(b'}').str("x").int(3).op(b's').op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::NotATensor { found: "int", .. })
    ));
    let v = t("0", 4, 0, &[4], &[1]);
    let pkl = P::state_dict(&[("a", v.clone()), ("a", v)]);
    assert!(matches!(
        parse_state_dict(&pkl),
        Err(PickleError::DuplicateName { .. })
    ));
}

#[test]
fn rejects_malformed_opcode_streams() {
    let run = |body: &[u8]| {
        let mut p = P::new();
        p.raw(body);
        parse_state_dict(&p.0).unwrap_err()
    };
    assert!(matches!(run(b"."), PickleError::StackUnderflow { .. }));
    assert!(matches!(run(b"(."), PickleError::StackUnderflow { .. }));
    assert!(matches!(run(b"Nt"), PickleError::MissingMark { .. }));
    assert!(matches!(
        run(b"h\x05"),
        PickleError::MissingMemo { index: 5, .. }
    ));
    assert!(matches!(
        run(b"X\xff\xff\xff\x7fab"),
        PickleError::Truncated { .. }
    ));
    assert!(matches!(
        run(b"\x8d\xff\xff\xff\xff\xff\xff\xff\xff"),
        PickleError::Truncated { .. }
    ));
    assert!(matches!(
        run(b"\x8c\x02\xff\xfe"),
        PickleError::InvalidUtf8 { .. }
    ));
    assert!(matches!(
        run(b"\x8a\x09123456789"),
        PickleError::IntTooLarge { .. }
    ));
    assert!(matches!(run(b"cos"), PickleError::BadGlobalLine { .. }));
    assert!(matches!(
        run(b"]K\x01K\x02s"),
        PickleError::WrongType { .. }
    ));
    assert!(matches!(run(b"}K\x01a"), PickleError::WrongType { .. }));
    assert!(matches!(run(b"NN)R"), PickleError::WrongType { .. }));
    assert!(matches!(run(b"K\x01}b"), PickleError::WrongType { .. }));
    assert!(matches!(
        run(&[0x01]),
        PickleError::UnknownOpcode { opcode: 1, .. }
    ));
    assert!(matches!(run(b""), PickleError::Truncated { .. }));
    let deep = vec![b'('; 2000];
    assert!(matches!(
        run(&deep),
        PickleError::LimitExceeded { what: "marks", .. }
    ));
    let mut long_line = b"c".to_vec();
    long_line.extend(vec![b'a'; 1000]);
    long_line.push(b'\n');
    assert!(matches!(run(&long_line), PickleError::BadGlobalLine { .. }));
}

#[test]
fn rejects_bad_tensor_calls() {
    let mut p = P::new();
    p.global("torch._utils", "_rebuild_tensor_v2")
        .tuple(&[1, 2])
        .op(b'R')
        .op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::BadCall { .. })
    ));
    let mut p = P::new();
    p.global("collections", "OrderedDict")
        .tuple(&[1])
        .op(b'R')
        .op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::BadCall { .. })
    ));
    // A persistent id that is not ('storage', ...).
    let mut p = P::new();
    p.op(b'(').str("module").op(b't').op(b'Q').op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::BadCall { .. })
    ));
    // A negative stride.
    let mut p = P::new();
    p.op(b'}')
        .str("a")
        .global("torch._utils", "_rebuild_tensor_v2")
        .op(b'(');
    p.storage("FloatStorage", "0", 4).int(0).tuple(&[4]);
    p.op(b'(').op(b'J').raw(&(-1i32).to_le_bytes()).op(b't');
    p.op(0x89).op(b'}').op(b't').op(b'R').op(b's').op(b'.');
    assert!(matches!(
        parse_state_dict(&p.0),
        Err(PickleError::BadCall { .. })
    ));
}

#[test]
fn every_prefix_of_a_pickle_is_rejected() {
    let pkl = P::state_dict(&[
        ("a", t("0", 4, 0, &[2, 2], &[2, 1])),
        ("b", t("0", 4, 1, &[3], &[1])),
    ]);
    assert_eq!(parse_state_dict(&pkl).unwrap().len(), 2);
    for cut in 0..pkl.len() {
        assert!(
            parse_state_dict(&pkl[..cut]).is_err(),
            "prefix {cut} parsed"
        );
    }
}
