//! Round trips of random valid files (proptest), and the writer rules of SPEC.md §9:
//! the streaming `Writer` matches `write_to_vec`, output is atomic, existing files are
//! not overwritten unless asked, and the writer refuses what the reader would reject.

mod common;

use mamba_format::metadata::{MAX_ARRAY_LEN, MAX_STRING_LEN};
use mamba_format::{
    write_to_vec, Array, FormatError, MbinFile, Metadata, QuantType, TensorSpec, Value, Writer,
};
use proptest::prelude::*;
use std::path::Path;

// ===========================================================================
// Strategies
// ===========================================================================

fn key() -> impl Strategy<Value = String> {
    "[a-z0-9_]{1,12}(\\.[a-z0-9_]{1,12}){0,3}"
}

fn array() -> impl Strategy<Value = Array> {
    let n = 0..6usize;
    prop_oneof![
        prop::collection::vec(any::<u32>(), n.clone()).prop_map(Array::U32),
        prop::collection::vec(any::<i32>(), n.clone()).prop_map(Array::I32),
        prop::collection::vec(any::<u64>(), n.clone()).prop_map(Array::U64),
        prop::collection::vec(any::<i64>(), n.clone()).prop_map(Array::I64),
        prop::collection::vec(any::<f32>(), n.clone()).prop_map(Array::F32),
        prop::collection::vec(any::<f64>(), n.clone()).prop_map(Array::F64),
        prop::collection::vec(any::<bool>(), n.clone()).prop_map(Array::Bool),
        prop::collection::vec(any::<String>(), n).prop_map(Array::String),
    ]
}

/// Every value kind; floats include NaN and infinities (compared bit for bit).
fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<u32>().prop_map(|b| Value::F32(f32::from_bits(b))),
        any::<u64>().prop_map(|b| Value::F64(f64::from_bits(b))),
        any::<bool>().prop_map(Value::Bool),
        any::<String>().prop_map(Value::String),
        array().prop_map(Value::Array),
    ]
}

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::vec((key(), value()), 0..12).prop_map(|entries| {
        let mut md = Metadata::new();
        for (k, v) in entries {
            md.set(&k, v).unwrap();
        }
        md
    })
}

/// A valid tensor spec: any type, 1 to 4 dims, a row of 1 to 3 blocks, and a seed
/// for its bytes. Names are unique by their index prefix and otherwise any text
/// without control characters.
fn tensor() -> impl Strategy<Value = (QuantType, Vec<u64>, String, u64)> {
    (
        prop::sample::select(QuantType::ALL.to_vec()),
        prop::collection::vec(1..4u64, 0..4),
        1..4u64,
        "[^\\p{Cc}]{0,16}",
        any::<u64>(),
    )
        .prop_map(|(ty, mut outer, blocks, name, seed)| {
            outer.push(blocks * ty.block_size() as u64);
            (ty, outer, name, seed)
        })
}

/// Deterministic bytes from a seed (xorshift64).
fn bytes(n: usize, mut seed: u64) -> Vec<u8> {
    seed |= 1;
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

type Tensors = Vec<(TensorSpec, Vec<u8>)>;

fn tensors() -> impl Strategy<Value = Tensors> {
    prop::collection::vec(tensor(), 0..6).prop_map(|ts| {
        ts.into_iter()
            .enumerate()
            .map(|(i, (ty, shape, name, seed))| {
                let spec = TensorSpec::new(format!("{i}{name}"), ty, &shape);
                let n = ty.bytes_for(shape.iter().product()).unwrap() as usize;
                (spec, bytes(n, seed))
            })
            .collect()
    })
}

fn pairs(ts: &Tensors) -> Vec<(TensorSpec, &[u8])> {
    ts.iter().map(|(s, d)| (s.clone(), d.as_slice())).collect()
}

/// Writes with the streaming writer into `dir` and returns the file's bytes.
fn write_streaming(dir: &Path, md: &Metadata, ts: &Tensors) -> Vec<u8> {
    let path = dir.join("model.mbin");
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let mut w = Writer::create(&path, md, &specs, false).unwrap();
    for (s, d) in ts {
        assert_eq!(w.next_tensor(), Some(s.name.as_str()));
        w.write_tensor(&s.name, d).unwrap();
    }
    assert_eq!(w.next_tensor(), None);
    w.finish().unwrap();
    std::fs::read(&path).unwrap()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ===========================================================================
// Round trips
// ===========================================================================

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// write_to_vec → parse gives back the metadata, the tensor infos and the bytes,
    /// and verify finds nothing.
    #[test]
    fn roundtrip(md in metadata(), ts in tensors()) {
        let file = write_to_vec(&md, &pairs(&ts)).unwrap();
        let f = MbinFile::parse(&file).unwrap();
        // Bitwise equality of the values, NaNs included: the encoding is injective.
        prop_assert_eq!(f.metadata.len(), md.len());
        prop_assert_eq!(f.metadata.to_bytes(), md.to_bytes());
        for ((k1, _), (k2, _)) in f.metadata.iter().zip(md.iter()) {
            prop_assert_eq!(k1, k2);
        }
        prop_assert_eq!(f.tensors.len(), ts.len());
        for (t, (spec, data)) in f.tensors.iter().zip(&ts) {
            prop_assert_eq!(&t.name, &spec.name);
            prop_assert_eq!(t.ty, spec.ty);
            prop_assert_eq!(&t.shape, &spec.shape);
            prop_assert_eq!(t.size, data.len() as u64);
            prop_assert_eq!(f.tensor_file_offset(t) % 64, 0);
            prop_assert_eq!(f.tensor_data(t), data.as_slice());
            prop_assert_eq!(f.tensor(&t.name), Some(t));
        }
        prop_assert!(f.verify().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// MUST-W5: the streaming writer produces exactly the bytes of write_to_vec.
    #[test]
    fn streaming_writer_matches_write_to_vec(md in metadata(), ts in tensors()) {
        let dir = tempfile::tempdir().unwrap();
        let streamed = write_streaming(dir.path(), &md, &ts);
        prop_assert_eq!(streamed, write_to_vec(&md, &pairs(&ts)).unwrap());
        prop_assert_eq!(dir_entries(dir.path()), vec!["model.mbin".to_string()]);
    }
}

/// MUST-W5: the same input gives the same bytes.
#[test]
fn output_is_deterministic() {
    assert_eq!(common::small_file(), common::small_file());
}

// ===========================================================================
// Atomic output (MUST-W1, MUST-W2)
// ===========================================================================

fn two_tensors() -> Tensors {
    vec![
        (TensorSpec::new("a", QuantType::F32, &[4]), vec![1; 16]),
        (TensorSpec::new("b", QuantType::Q8_0, &[32]), vec![2; 34]),
    ]
}

/// MUST-W1/W2: nothing appears at the path before finish, and a writer dropped
/// before finish leaves neither the file nor its temporary.
#[test]
fn dropped_writer_leaves_nothing() {
    let ts = two_tensors();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mbin");
    for written in 0..=ts.len() {
        let mut w = Writer::create(&path, &Metadata::new(), &specs, false).unwrap();
        for (s, d) in &ts[..written] {
            w.write_tensor(&s.name, d).unwrap();
        }
        assert!(!path.exists(), "the file must not appear before finish");
        assert_eq!(dir_entries(dir.path()).len(), 1, "only the temporary file");
        drop(w);
        assert!(
            dir_entries(dir.path()).is_empty(),
            "after {written} tensors: {:?}",
            dir_entries(dir.path())
        );
    }
}

/// MUST-W2: a failed finish (a tensor never written) also cleans up.
#[test]
fn incomplete_finish_fails_and_leaves_nothing() {
    let ts = two_tensors();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mbin");
    let mut w = Writer::create(&path, &Metadata::new(), &specs, false).unwrap();
    w.write_tensor("a", &ts[0].1).unwrap();
    assert!(matches!(w.finish(), Err(FormatError::Writer(_))));
    assert!(dir_entries(dir.path()).is_empty());
}

/// MUST-W3: an existing file is refused without `overwrite` and left untouched; with
/// it, replaced.
#[test]
fn existing_file_is_not_overwritten() {
    let ts = two_tensors();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mbin");
    std::fs::write(&path, b"precious").unwrap();

    let e = Writer::create(&path, &Metadata::new(), &specs, false)
        .err()
        .expect("must refuse");
    assert!(
        matches!(
            &e,
            FormatError::File(mamba_files::FileError::OutputExists { .. })
        ),
        "{e:?}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert_eq!(dir_entries(dir.path()), vec!["m.mbin".to_string()]);

    // The file appearing while the writer runs is refused at finish.
    std::fs::remove_file(&path).unwrap();
    let mut w = Writer::create(&path, &Metadata::new(), &specs, false).unwrap();
    for (s, d) in &ts {
        w.write_tensor(&s.name, d).unwrap();
    }
    std::fs::write(&path, b"precious").unwrap();
    assert!(matches!(w.finish(), Err(FormatError::File(_))));
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    assert_eq!(dir_entries(dir.path()), vec!["m.mbin".to_string()]);

    let mut w = Writer::create(&path, &Metadata::new(), &specs, true).unwrap();
    for (s, d) in &ts {
        w.write_tensor(&s.name, d).unwrap();
    }
    w.finish().unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        write_to_vec(&Metadata::new(), &pairs(&ts)).unwrap()
    );
}

// ===========================================================================
// The writer refuses what the reader would reject (MUST-W4)
// ===========================================================================

/// MUST-W4: misuse of the streaming writer.
#[test]
fn writer_misuse() {
    let ts = two_tensors();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut w =
        Writer::create(&dir.path().join("m.mbin"), &Metadata::new(), &specs, false).unwrap();
    assert!(
        matches!(w.write_tensor("b", &ts[1].1), Err(FormatError::Writer(_))),
        "out of order"
    );
    assert!(
        matches!(w.write_tensor("a", &[0; 15]), Err(FormatError::Writer(_))),
        "wrong length"
    );
    w.write_tensor("a", &ts[0].1).unwrap();
    w.write_tensor("b", &ts[1].1).unwrap();
    assert!(
        matches!(w.write_tensor("c", &[]), Err(FormatError::Writer(_))),
        "undeclared"
    );
    let e = write_to_vec(&Metadata::new(), &[(specs[0].clone(), &[0u8; 3][..])]);
    assert!(
        matches!(e, Err(FormatError::Writer(_))),
        "wrong length in write_to_vec"
    );
}

/// MUST-W4 with the reader's own rules: names, shapes, blocks, duplicates and caps.
#[test]
fn writer_refuses_invalid_layouts() {
    let md = Metadata::new();
    let refuse = |specs: &[TensorSpec]| {
        let dir = tempfile::tempdir().unwrap();
        let e = Writer::create(&dir.path().join("m.mbin"), &md, specs, false)
            .err()
            .expect("must refuse");
        assert!(dir_entries(dir.path()).is_empty());
        e
    };
    let f32s = |name: &str, shape: &[u64]| TensorSpec::new(name, QuantType::F32, shape);
    assert!(matches!(
        refuse(&[f32s("", &[1])]),
        FormatError::InvalidName { .. }
    ));
    assert!(matches!(
        refuse(&[f32s("a\u{0}", &[1])]),
        FormatError::InvalidName { .. }
    ));
    assert!(matches!(
        refuse(&[f32s(&"n".repeat(257), &[1])]),
        FormatError::InvalidName { .. }
    ));
    assert!(matches!(
        refuse(&[f32s("a", &[1]), f32s("a", &[2])]),
        FormatError::DuplicateTensor(_)
    ));
    assert!(matches!(
        refuse(&[f32s("a", &[])]),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        refuse(&[f32s("a", &[1, 1, 1, 1, 1])]),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        refuse(&[f32s("a", &[2, 0])]),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        refuse(&[f32s("a", &[u64::MAX, 2])]),
        FormatError::BadShape { .. }
    ));
    assert!(matches!(
        refuse(&[TensorSpec::new("a", QuantType::Q4_0, &[2, 16])]),
        FormatError::NotBlockMultiple { .. }
    ));
    // Two tensors whose sizes are each valid but whose sum overflows the data section.
    let huge = f32s("a", &[1 << 61]);
    let huge2 = f32s("b", &[1 << 61]);
    assert!(matches!(refuse(&[huge, huge2]), FormatError::Writer(_)));
}

/// MUST-W4: metadata keys and caps.
#[test]
fn writer_refuses_invalid_metadata() {
    let mut md = Metadata::new();
    for key in ["", "A", "a..b", "a b"] {
        assert!(matches!(
            md.set(key, Value::U32(1)),
            Err(FormatError::InvalidName { .. })
        ));
    }
    md.set(
        "big",
        Value::String("x".repeat(MAX_STRING_LEN as usize + 1)),
    )
    .unwrap();
    assert!(matches!(
        write_to_vec(&md, &[]),
        Err(FormatError::LimitExceeded {
            what: "string length",
            ..
        })
    ));
    let mut md = Metadata::new();
    md.set(
        "big",
        Value::Array(Array::Bool(vec![false; MAX_ARRAY_LEN as usize + 1])),
    )
    .unwrap();
    assert!(matches!(
        write_to_vec(&md, &[]),
        Err(FormatError::LimitExceeded {
            what: "array length",
            ..
        })
    ));
}

/// MUST-W3a: even with `overwrite`, only a regular file that is not an input is
/// replaced; a directory, a device or an input is refused at `create` and left
/// untouched.
#[test]
fn overwrite_never_replaces_an_input_or_a_special_file() {
    let ts = two_tensors();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("model.safetensors");
    std::fs::write(&input, b"precious").unwrap();
    // Hard links and symlinks to an input: `mamba-files`' own tests.
    let e = Writer::create_checked(&input, &[&input], &Metadata::new(), &specs, true)
        .err()
        .expect("must refuse");
    assert!(
        matches!(
            &e,
            FormatError::File(mamba_files::FileError::OutputIsInput { .. })
        ),
        "{e:?}"
    );
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    for out in [sub.as_path(), Path::new("/dev/null")] {
        let e = Writer::create_checked(out, &[], &Metadata::new(), &specs, true)
            .err()
            .expect("must refuse");
        assert!(
            matches!(
                &e,
                FormatError::File(mamba_files::FileError::NotRegular { .. })
            ),
            "{e:?}"
        );
    }
    assert_eq!(std::fs::read(&input).unwrap(), b"precious");
    assert!(sub.is_dir());
    assert_eq!(dir_entries(dir.path()), vec!["model.safetensors", "sub"]);
}
