//! The GGUF reader against good files and a catalogue of bad ones: every refusal
//! names its cause, and no byte string makes it panic or over-allocate.

use mamba_format::gguf::{Gguf, GgufError, GgufValue};
use mamba_testkit::gguf::{gguf_string, tag, GgufBuilder};
use proptest::prelude::*;

/// A small valid file: a few keys of several types, an f32 and a q8_0 tensor.
fn good() -> GgufBuilder {
    let q8_block: Vec<u8> = [0x00u8, 0x3c] // f16 1.0
        .into_iter()
        .chain((0..32).map(|i| i as u8))
        .collect();
    GgufBuilder::new()
        .str("general.architecture", "mamba")
        .u32("mamba.block_count", 2)
        .f32("mamba.attention.layer_norm_rms_epsilon", 1e-5)
        .bool("mamba.ssm.dt_b_c_rms", false)
        .str_array("tokenizer.ggml.tokens", &["a", "b", "ab"])
        .i32_array("tokenizer.ggml.token_type", &[1, 1, 3])
        .tensor_f32("norm", &[4], &[1.0, 2.0, 3.0, 4.0])
        .tensor("w", &[32, 2], 8, [q8_block.clone(), q8_block].concat())
}

fn parse(b: &GgufBuilder) -> Result<Gguf, GgufError> {
    Gguf::parse(&b.build())
}

#[test]
fn a_good_file_parses_with_every_value_and_range() {
    let bytes = good().build();
    let g = Gguf::parse(&bytes).unwrap();
    assert_eq!(g.version, 3);
    assert_eq!(g.get_str("general.architecture").unwrap(), Some("mamba"));
    assert_eq!(g.get_u64("mamba.block_count").unwrap(), Some(2));
    assert_eq!(
        g.get_f64("mamba.attention.layer_norm_rms_epsilon").unwrap(),
        Some(1e-5f32 as f64)
    );
    assert_eq!(g.get_bool("mamba.ssm.dt_b_c_rms").unwrap(), Some(false));
    assert_eq!(
        g.get_str_array("tokenizer.ggml.tokens").unwrap().unwrap(),
        ["a", "b", "ab"]
    );
    assert_eq!(
        g.get_int_array("tokenizer.ggml.token_type")
            .unwrap()
            .unwrap(),
        [1, 1, 3]
    );
    let norm = g.tensor("norm").unwrap();
    assert_eq!(norm.shape(), [4]);
    let data = g.tensor_data(&bytes, norm);
    assert_eq!(&data[4..8], &2f32.to_le_bytes());
    let w = g.tensor("w").unwrap();
    assert_eq!((w.shape(), w.n_bytes), (vec![2, 32], 68));
    assert_eq!(w.offset % 32, 0);
    // A present key of another type is an error that names it; an absent one is None.
    let e = g.get_u64("general.architecture").unwrap_err();
    assert!(e.to_string().contains("general.architecture"), "{e}");
    assert_eq!(g.get_u64("absent").unwrap(), None);
}

#[test]
fn the_llama_cpp_fixtures_parse() {
    let Some(dir) = mamba_testkit::shared_path("fixtures") else {
        return;
    };
    let mut n = 0;
    for sub in ["gguf-shakespeare", "gguf-mamba2-shakespeare"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "gguf") {
                let bytes = std::fs::read(&p).unwrap();
                let g = Gguf::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                assert!(g.tensors.len() > 10);
                n += 1;
            }
        }
    }
    assert_eq!(n, 5, "the five llama.cpp GGUF fixtures");
}

#[test]
fn every_truncation_is_refused_without_panic() {
    let bytes = good().build();
    for len in 0..bytes.len() {
        assert!(Gguf::parse(&bytes[..len]).is_err(), "prefix of {len} bytes");
    }
}

#[test]
fn the_header_is_checked() {
    let mut b = good().build();
    b[0] = b'X';
    assert!(matches!(Gguf::parse(&b), Err(GgufError::BadMagic { .. })));
    for v in [1, 4] {
        let mut g = good();
        g.version = v;
        assert_eq!(parse(&g), Err(GgufError::UnsupportedVersion(v)));
    }
    // Counts beyond what the rest of the file could hold, before any allocation.
    let mut b = good().build();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(Gguf::parse(&b), Err(GgufError::TooMany { .. })));
    let mut b = good().build();
    b[16..24].copy_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(Gguf::parse(&b), Err(GgufError::TooMany { .. })));
}

#[test]
fn bad_metadata_is_named() {
    let key_err = |g: GgufBuilder| parse(&g).unwrap_err();
    // A string longer than the file.
    let mut v = (u64::MAX).to_le_bytes().to_vec();
    v.extend_from_slice(b"abc");
    assert!(matches!(
        key_err(GgufBuilder::new().kv_raw(b"k", tag::STRING, &v)),
        GgufError::Truncated { .. }
    ));
    // Keys and strings must be UTF-8.
    assert!(matches!(
        key_err(
            GgufBuilder::new()
                .u32("ok", 1)
                .kv_raw(b"\xff\xfe", tag::U32, &[0; 4])
        ),
        GgufError::NotUtf8 { .. }
    ));
    assert!(matches!(
        key_err(GgufBuilder::new().kv_raw(b"k", tag::STRING, &gguf_string(b"\xc3"))),
        GgufError::NotUtf8 { .. }
    ));
    // Unknown tags, at the top and inside an array.
    assert_eq!(
        key_err(GgufBuilder::new().kv_raw(b"k", 13, &[0; 8])),
        GgufError::UnknownValueType {
            key: "k".into(),
            tag: 13
        }
    );
    let mut arr = 99u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&1u64.to_le_bytes());
    arr.extend_from_slice(&[0; 8]);
    assert!(matches!(
        key_err(GgufBuilder::new().kv_raw(b"k", tag::ARRAY, &arr)),
        GgufError::UnknownValueType { tag: 99, .. }
    ));
    // Arrays of arrays.
    let mut nested = tag::ARRAY.to_le_bytes().to_vec();
    nested.extend_from_slice(&1u64.to_le_bytes());
    assert_eq!(
        key_err(GgufBuilder::new().kv_raw(b"k", tag::ARRAY, &nested)),
        GgufError::NestedArray { key: "k".into() }
    );
    // An array claiming more elements than the file holds.
    let mut huge = tag::U32.to_le_bytes().to_vec();
    huge.extend_from_slice(&(1u64 << 50).to_le_bytes());
    assert!(matches!(
        key_err(GgufBuilder::new().kv_raw(b"k", tag::ARRAY, &huge)),
        GgufError::TooMany { .. }
    ));
    // A bool must be 0 or 1.
    assert_eq!(
        key_err(GgufBuilder::new().kv_raw(b"b", tag::BOOL, &[2])),
        GgufError::BadBool {
            key: "b".into(),
            byte: 2
        }
    );
    // Duplicate keys.
    assert!(matches!(
        key_err(GgufBuilder::new().u32("k", 1).u32("k", 2)),
        GgufError::Duplicate { .. }
    ));
    // The alignment must be a power of two, stored as an integer.
    for g in [
        GgufBuilder::new().u32("general.alignment", 0),
        GgufBuilder::new().u32("general.alignment", 48),
        GgufBuilder::new().str("general.alignment", "32"),
    ] {
        assert!(matches!(key_err(g), GgufError::BadAlignment(_)));
    }
}

#[test]
fn a_custom_alignment_places_the_data() {
    let mut g = good().u32("general.alignment", 64);
    g.alignment = 64;
    let bytes = g.build();
    let parsed = Gguf::parse(&bytes).unwrap();
    assert_eq!(parsed.alignment, 64);
    assert_eq!(parsed.data_offset % 64, 0);
    // The same file read with the default alignment would be misplaced: the
    // second tensor's offset (64) is still a multiple of 32, but check the data.
    let w = parsed.tensor("w").unwrap();
    assert_eq!(parsed.tensor_data(&bytes, w)[..2], [0x00, 0x3c]);
}

#[test]
fn bad_tensors_are_named() {
    let one = |name: &str, dims: &[u64], ty: u32, n: usize| {
        GgufBuilder::new().tensor(name, dims, ty, vec![0; n])
    };
    let err = |g: GgufBuilder| {
        let e = parse(&g).unwrap_err();
        assert!(
            e.to_string().contains("\"t\"") || e.to_string().contains("t"),
            "{e}"
        );
        e
    };
    assert!(matches!(
        err(one("t", &[], 0, 0)),
        GgufError::BadShape { .. }
    ));
    assert!(matches!(
        err(one("t", &[1; 5], 0, 4)),
        GgufError::BadShape { .. }
    ));
    assert!(matches!(
        err(one("t", &[4, 0], 0, 0)),
        GgufError::BadShape { .. }
    ));
    assert!(matches!(
        err(one("t", &[u64::MAX, u64::MAX], 0, 0)),
        GgufError::BadShape { .. }
    ));
    // A q8_0 row of 31 elements is not whole blocks.
    assert!(matches!(
        err(one("t", &[31], 8, 34)),
        GgufError::BadShape { .. }
    ));
    // A ggml type .mbin lacks is named with the tensor.
    let e = err(one("t", &[256], 16, 66));
    assert_eq!(
        e,
        GgufError::UnsupportedType {
            tensor: "t".into(),
            id: 16,
            type_name: "iq2_xxs"
        }
    );
    assert!(e.to_string().contains("iq2_xxs") && e.to_string().contains("\"t\""));
    let e = err(one("t", &[4], 4242, 16));
    assert!(e.to_string().contains("unknown"), "{e}");
    // Offsets: misaligned, past the end, overlapping.
    let mut g = good();
    g.tensors[1].offset = Some(33);
    assert!(matches!(parse(&g), Err(GgufError::BadOffset { .. })));
    let mut bytes = good().build();
    bytes.truncate(bytes.len() - 1);
    assert!(matches!(
        Gguf::parse(&bytes),
        Err(GgufError::BadOffset { .. })
    ));
    let mut g = good();
    g.tensors[1].offset = Some(0);
    let e = parse(&g).unwrap_err();
    assert!(e.to_string().contains("overlaps"), "{e}");
    // Names: duplicates and over-long ones.
    let g = one("t", &[1], 0, 4).tensor("t", &[1], 0, vec![0; 4]);
    assert!(matches!(parse(&g), Err(GgufError::Duplicate { .. })));
    let long = "n".repeat(64);
    let g = GgufBuilder::new().tensor(&long, &[1], 0, vec![0; 4]);
    assert!(matches!(parse(&g), Err(GgufError::TooMany { .. })));
}

#[test]
fn integers_of_any_width_read_as_sizes() {
    let g = GgufBuilder::new()
        .kv_raw(b"a", 0, &[7])
        .kv_raw(b"b", 3, &(-1i16).to_le_bytes())
        .u64("c", 1 << 40);
    let g = parse(&g).unwrap();
    assert_eq!(g.get_u64("a").unwrap(), Some(7));
    assert!(g.get_u64("b").is_err(), "a negative size is refused");
    assert_eq!(g.get("b"), Some(&GgufValue::I16(-1)));
    assert_eq!(g.get_u64("c").unwrap(), Some(1 << 40));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Any file with some bytes overwritten parses or is refused; it never panics,
    /// and what parses only names ranges inside the file.
    #[test]
    fn mutated_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = good().build();
        for (i, v) in edits {
            let at = i.index(bytes.len());
            bytes[at] = v;
        }
        if let Ok(g) = Gguf::parse(&bytes) {
            for t in &g.tensors {
                prop_assert!(t.offset + t.n_bytes <= bytes.len() as u64);
                let _ = g.tensor_data(&bytes, t);
            }
        }
    }
}
