//! The golden-bytes writer test: a tiny file, written by the crate, compared byte for
//! byte with a literal.
//!
//! The literal was produced by an encoder written independently from SPEC.md (Python
//! with the `xxhash` package, `xxh3_64_intdigest`), and every field was checked by hand
//! against SPEC.md §1–§4 and §7; it is frozen. If this test fails, the writer changed
//! the format: that needs a new version (SPEC.md, version history), not a new literal.

mod common;

use mamba_format::{write_to_vec, MbinFile, Metadata, QuantType, TensorSpec, Value, Writer};

/// The file, section by section (offsets in the comments are absolute).
const GOLDEN: &[&str] = &[
    // --- §2 header, 0..128 -------------------------------------------------------
    "894d42494e0d0a1a", //   0 magic "\x89MBIN\r\n\x1a"
    "01000000",         //   8 version 1
    "0d0c0b0a",         //  12 byte order 0x0A0B0C0D, little-endian
    "80000000",         //  16 header_size 128
    "40000000",         //  20 alignment 64
    "0200000000000000", //  24 n_metadata 2
    "8000000000000000", //  32 metadata_offset 128
    "2f00000000000000", //  40 metadata_size 47
    "0200000000000000", //  48 n_tensors 2
    "af00000000000000", //  56 index_offset 175 = 128 + 47
    "8600000000000000", //  64 index_size 134 = 2 * 67
    "4001000000000000", //  72 data_offset 320 = align64(175 + 134)
    "6200000000000000", //  80 data_size 98 = 64 + 34
    "72dfcc9eeb04a787", //  88 metadata_checksum, XXH3-64 of 128..175
    "270b65afe77095c0", //  96 index_checksum, XXH3-64 of 175..309
    "0000000000000000", // 104 flags 0
    "0000000000000000", // 112 reserved 0
    "1fd24f2b12876e09", // 120 header_checksum, XXH3-64 of 0..120
    // --- §3 metadata, 128..175 ---------------------------------------------------
    "0c00",                     // 128 key length 12
    "67656e6572616c2e6e616d65", // 130 "general.name"
    "08",                       // 142 tag 8, string
    "0600000000000000",         // 143 length 6
    "676f6c64656e",             // 151 "golden"
    "0b00",                     // 157 key length 11
    "746573742e616e73776572",   // 159 "test.answer"
    "01",                       // 170 tag 1, u32
    "2a000000",                 // 171 42
    // --- §4 tensor index, 175..309 -----------------------------------------------
    "010061",   // 175 name length 1, "a"
    "00000000", // 178 type 0, f32
    "01000000", // 182 n_dims 1
    "0200000000000000000000000000000000000000000000000000000000000000", // dims [2]
    "0000000000000000", // 218 offset 0
    "0800000000000000", // 226 size 8
    "23375d349cbaa028", // 234 checksum of the 8 data bytes
    "010062",   // 242 name length 1, "b"
    "08000000", // 245 type 8, q8_0
    "01000000", // 249 n_dims 1
    "2000000000000000000000000000000000000000000000000000000000000000", // dims [32]
    "4000000000000000", // 285 offset 64
    "2200000000000000", // 293 size 34 = 32 / 32 * 34
    "bfae0dd5b2fb8c11", // 301 checksum of the 34 data bytes
    // --- §7 zero padding, 309..320 -----------------------------------------------
    "0000000000000000000000",
    // --- §7 tensor data, 320..418 ------------------------------------------------
    "0000803f000000c0",                                 // 320 a = [1.0, -2.0]
    "000000000000000000000000000000000000000000000000", // 328 zero padding to 384
    "0000000000000000000000000000000000000000000000000000000000000000",
    "003c",                                                             // 384 b: d = f16 1.0
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", // qs = 0..31
];

fn golden() -> Vec<u8> {
    let hex: String = GOLDEN.concat();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn inputs() -> (Metadata, Vec<(TensorSpec, Vec<u8>)>) {
    let mut md = Metadata::new();
    md.set("general.name", Value::String("golden".into()))
        .unwrap();
    md.set("test.answer", Value::U32(42)).unwrap();
    let a: Vec<u8> = [1.0f32, -2.0]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut b = vec![0x00, 0x3c]; // f16 1.0
    b.extend(0..32u8);
    let tensors = vec![
        (TensorSpec::new("a", QuantType::F32, &[2]), a),
        (TensorSpec::new("b", QuantType::Q8_0, &[32]), b),
    ];
    (md, tensors)
}

/// MUST-C1, MUST-C2, MUST-W5: the writer produces exactly the golden bytes.
#[test]
fn write_to_vec_matches_golden() {
    let (md, ts) = inputs();
    let pairs: Vec<(TensorSpec, &[u8])> =
        ts.iter().map(|(s, d)| (s.clone(), d.as_slice())).collect();
    assert_golden(&write_to_vec(&md, &pairs).unwrap());
}

fn assert_golden(bytes: &[u8]) {
    let expected = golden();
    assert_eq!(expected.len(), 418);
    if bytes != expected {
        let at = bytes.iter().zip(&expected).position(|(a, b)| a != b);
        panic!(
            "differs from the golden file at byte {at:?} (lengths {} and {})",
            bytes.len(),
            expected.len()
        );
    }
}

/// The streaming writer produces the same bytes.
#[test]
fn streaming_writer_matches_golden() {
    let (md, ts) = inputs();
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("golden.mbin");
    let mut w = Writer::create(&path, &md, &specs, false).unwrap();
    for (s, d) in &ts {
        w.write_tensor(&s.name, d).unwrap();
    }
    w.finish().unwrap();
    assert_golden(&std::fs::read(&path).unwrap());
}

/// The reader decodes the golden bytes into the inputs.
#[test]
fn golden_parses_back() {
    let bytes = golden();
    let f = MbinFile::parse(&bytes).unwrap();
    assert!(f.verify().is_empty());
    let (md, ts) = inputs();
    assert_eq!(f.metadata, md);
    assert_eq!(f.header.data_offset, 320);
    for (t, (s, d)) in f.tensors.iter().zip(&ts) {
        assert_eq!((&t.name, t.ty, &t.shape), (&s.name, s.ty, &s.shape));
        assert_eq!(f.tensor_data(t), d.as_slice());
    }
    let mut x = [0f32; 32];
    QuantType::Q8_0.dequantize_row(f.tensor_data(&f.tensors[1]), &mut x);
    assert_eq!(x, std::array::from_fn(|i| i as f32));
}
