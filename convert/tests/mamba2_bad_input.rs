//! Bad Mamba-2 and Falcon-Mamba checkpoints: each gives one error naming the problem
//! (matched by variant) and leaves no output and no temporary file.

mod common;

use common::*;
use mamba_convert::ConvertError;
use safetensors::Dtype;
use serde_json::{json, Value};

/// `config.json` of a fixture as JSON.
fn config(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap()
}

/// Edits `ssm_cfg` of a state-spaces config.
fn edit_ssm_cfg(dir: &std::path::Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    edit_config(dir, |c| {
        edit(c.get_mut("ssm_cfg").unwrap().as_object_mut().unwrap())
    });
}

fn assert_inconsistent(err: &ConvertError, needle: &str) {
    assert!(
        matches!(err, ConvertError::InconsistentConfig { why, .. } if why.contains(needle)),
        "{err:?}"
    );
}

#[test]
fn heads_that_do_not_tile_the_inner_width() {
    // transformers: num_heads × head_dim must be expand × hidden_size.
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let heads = config(&dir)["num_heads"].as_u64().unwrap();
    edit_config(&dir, |c| {
        c.insert("num_heads".into(), json!(heads - 1));
    });
    let err = fails(&dir, &out);
    assert_inconsistent(&err, "heads × head_dim");
    assert!(err.to_string().contains("expand × hidden_size"), "{err}");

    // mamba_ssm: headdim must divide expand × d_model.
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-ssm") else {
        return;
    };
    let c = config(&dir);
    let inner = c["ssm_cfg"]["expand"].as_u64().unwrap_or(2) * c["d_model"].as_u64().unwrap();
    let bad = (inner / 2 + 1..inner)
        .find(|h| !inner.is_multiple_of(*h))
        .expect("a head size that does not divide the inner width");
    edit_ssm_cfg(&dir, |s| {
        s.insert("headdim".into(), json!(bad));
    });
    assert_inconsistent(&fails(&dir, &out), "headdim");
}

#[test]
fn groups_that_do_not_divide_the_heads() {
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let heads = config(&dir)["num_heads"].as_u64().unwrap();
    edit_config(&dir, |c| {
        c.insert("n_groups".into(), json!(heads + 1));
    });
    assert_inconsistent(&fails(&dir, &out), "n_groups");

    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-ssm") else {
        return;
    };
    let c = config(&dir);
    let inner = c["ssm_cfg"]["expand"].as_u64().unwrap_or(2) * c["d_model"].as_u64().unwrap();
    let heads = inner / c["ssm_cfg"]["headdim"].as_u64().unwrap_or(64);
    edit_ssm_cfg(&dir, |s| {
        s.insert("ngroups".into(), json!(heads + 1));
    });
    assert_inconsistent(&fails(&dir, &out), "ngroups");
}

#[test]
fn missing_dt_bias() {
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let gone = "backbone.layers.1.mixer.dt_bias";
    rewrite_safetensors(&dir, |name, t| (name != gone).then_some(t));
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingTensor { tensor, .. } if tensor == gone),
        "{err:?}"
    );
}

#[test]
fn in_proj_with_extra_rows() {
    // transformers' Mamba2Mixer infers a gated MLP (d_mlp) from extra in_proj rows.
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let c = config(&dir);
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let d_inner = n("num_heads") * n("head_dim");
    let expected = 2 * d_inner + 2 * n("n_groups") * n("state_size") + n("num_heads");
    let name = "backbone.layers.0.mixer.in_proj.weight";
    let extra = 2 * 16;
    rewrite_safetensors(&dir, |n, (dt, mut shape, mut data)| {
        if n == name {
            assert_eq!(shape[0], expected);
            shape[0] += extra;
            data.extend(vec![0u8; extra * shape[1] * 4]);
        }
        Some((dt, shape, data))
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::InProjRows { tensor, found, expected: e, .. }
            if tensor == name && *found == expected + extra && *e == expected),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("d_mlp") && msg.contains(name), "{msg}");

    // The command line: one line, status 1, nothing written.
    let o = run_convert(
        &[dir.to_str().unwrap(), "-o", out.to_str().unwrap()],
        std::time::Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(name),
        "{stderr}"
    );
    assert_nothing_written(&out);
}

#[test]
fn in_proj_with_too_few_rows() {
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let name = "backbone.layers.1.mixer.in_proj.weight";
    rewrite_safetensors(&dir, |n, (dt, mut shape, mut data)| {
        if n == name {
            shape[0] -= 1;
            data.truncate(shape[0] * shape[1] * 4);
        }
        Some((dt, shape, data))
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::InProjRows { tensor, .. } if tensor == name),
        "{err:?}"
    );
}

#[test]
fn a_per_head_tensor_of_the_wrong_shape() {
    let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
        return;
    };
    let name = "backbone.layers.0.mixer.A_log";
    rewrite_safetensors(&dir, |n, (dt, shape, data)| {
        Some(if n == name {
            (
                Dtype::F32,
                vec![shape[0] * 2],
                [data.clone(), data].concat(),
            )
        } else {
            (dt, shape, data)
        })
    });
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::ShapeMismatch { tensor, .. } if tensor == name),
        "{err:?}"
    );
}

#[test]
fn state_spaces_variants_the_format_cannot_hold() {
    for (key, value, needle) in [
        ("rmsnorm", json!(false), "rmsnorm"),
        ("D_has_hdim", json!(true), "D_has_hdim"),
        ("d_ssm", json!(64), "d_ssm"),
    ] {
        let Some((_tmp, dir, out)) = scratch("mamba2-tiny-ssm") else {
            return;
        };
        edit_ssm_cfg(&dir, |s| {
            s.insert(key.into(), value);
        });
        let err = fails(&dir, &out);
        assert!(
            matches!(&err, ConvertError::UnknownArchitecture { found, .. } if found.contains(needle)),
            "{key}: {err:?}"
        );
    }
}

#[test]
fn impossible_time_step_limit() {
    for limit in [
        json!([0.1, 0.01]),
        json!([0.0, {"__float__": "NaN"}]),
        json!([{"__float__": "-Infinity"}, 0.1]),
        json!([0.0]),
        json!("Infinity"),
    ] {
        let Some((_tmp, dir, out)) = scratch("mamba2-tiny-hf") else {
            return;
        };
        edit_config(&dir, |c| {
            c.insert("time_step_limit".into(), limit.clone());
        });
        let err = fails(&dir, &out);
        assert!(
            matches!(&err, ConvertError::BadConfigValue { key, .. } if key == "time_step_limit"),
            "{limit}: {err:?}"
        );
    }
}

#[test]
fn falcon_mixer_rms_eps_out_of_range() {
    for eps in [json!(0.0), json!(1.5), json!("small")] {
        let Some((_tmp, dir, out)) = scratch("falcon-mamba-tiny-hf") else {
            return;
        };
        edit_config(&dir, |c| {
            c.insert("mixer_rms_eps".into(), eps.clone());
        });
        let err = fails(&dir, &out);
        assert!(
            matches!(&err, ConvertError::BadConfigValue { key, .. } if key == "mixer_rms_eps"),
            "{eps}: {err:?}"
        );
    }
}

#[test]
fn falcon_checkpoint_without_its_x_proj() {
    let Some((_tmp, dir, out)) = scratch("falcon-mamba-tiny-hf") else {
        return;
    };
    let gone = "backbone.layers.2.mixer.x_proj.weight";
    rewrite_safetensors(&dir, |name, t| (name != gone).then_some(t));
    let err = fails(&dir, &out);
    assert!(
        matches!(&err, ConvertError::MissingTensor { tensor, .. } if tensor == gone),
        "{err:?}"
    );
}
