//! Damaged checkpoint files are refused with what is wrong: a pytorch_model.bin
//! storage whose bytes fail the zip CRC-32, a safetensors header with a bad field.

mod common;

use std::path::Path;

use common::*;
use mamba_convert::ConvertError;
use serde_json::Value;

#[test]
fn flipped_byte_in_a_pytorch_storage_fails_its_crc() {
    let Some((_tmp, dir, out)) = scratch("mamba-tiny-ssm") else {
        return;
    };
    let path = dir.join("pytorch_model.bin");
    let mut bytes = std::fs::read(&path).unwrap();
    // The largest storage: the embedding, which every conversion reads.
    let (name, start, size) = {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&bytes[..])).unwrap();
        (0..zip.len())
            .map(|i| {
                let f = zip.by_index_raw(i).unwrap();
                (f.name().to_string(), f.data_start(), f.size())
            })
            .filter(|(n, _, _)| n.contains("/data/"))
            .max_by_key(|&(_, _, size)| size)
            .unwrap()
    };
    // The low mantissa byte of an f32 in the middle: the value stays finite, so
    // only the CRC can tell.
    let at = usize::try_from(start + (size / 2) / 4 * 4).unwrap();
    bytes[at] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();
    let err = fails(&dir, &out);
    assert!(matches!(err, ConvertError::Torch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&name) && msg.contains(&path.display().to_string()) && msg.contains("CRC"),
        "{msg}"
    );
}

/// Rewrites `<dir>/model.safetensors` with its header edited by `edit` (the data
/// section unchanged).
fn edit_header(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let n = usize::try_from(u64::from_le_bytes(bytes[..8].try_into().unwrap())).unwrap();
    let mut header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(header.as_object_mut().unwrap());
    let text = serde_json::to_string(&header).unwrap();
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&path, out).unwrap();
}

/// A change to one tensor's header entry.
type Edit = fn(&mut Value);

#[test]
fn safetensors_header_errors_say_what_is_wrong() {
    const TENSOR: &str = "backbone.norm_f.weight";
    let cases: [(&str, Edit, &str); 3] = [
        (
            "unknown dtype",
            |t| t["dtype"] = "F99".into(),
            "unknown dtype F99",
        ),
        (
            "negative dimension",
            |t| t["shape"][0] = (-64).into(),
            "shape has a negative dimension -64",
        ),
        (
            "offsets not a pair",
            |t| t["data_offsets"] = Value::Array(vec![0.into()]),
            "data_offsets has 1 items, not 2",
        ),
    ];
    for (what, change, want) in cases {
        let Some((_tmp, dir, out)) = scratch("mamba-tiny-hf") else {
            return;
        };
        edit_header(&dir, |h| change(h.get_mut(TENSOR).unwrap()));
        let err = fails(&dir, &out);
        assert!(matches!(err, ConvertError::Safetensors { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("tensor `{TENSOR}`: {want}")),
            "{what}: {msg}"
        );
    }
}
