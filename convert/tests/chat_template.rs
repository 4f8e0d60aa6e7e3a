//! The chat template (`tokenizer.chat_template`): taken from a checkpoint folder's
//! `chat_template.jinja`, `tokenizer_config.json` (string or list form) or
//! `chat_template.json`, in that order; a broken optional file is a warning; the
//! `--chat-template` file replaces all of them and must be usable.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_nothing_written, convert_dir, opts, read_valid, run_convert, scratch};
use mamba_convert::{convert_with, dry_run_with, ConvertError, Input, Overrides, Preset};
use mamba_format::arch::KEY_CHAT_TEMPLATE;
use mamba_format::{MbinFile, QuantType};
use serde_json::json;

const FIXTURE: &str = "mamba-tiny-hf";
const LIMIT: Duration = Duration::from_secs(120);
/// A ChatML-style template, as tokenizer_config.json files carry them.
const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' \
                      + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

fn f32() -> Preset {
    Preset::Uniform(QuantType::F32)
}

/// The template stored in the file at `path`, if any.
fn stored(path: &Path) -> Option<String> {
    let bytes = read_valid(path);
    let file = MbinFile::parse(&bytes).unwrap();
    file.metadata
        .get(KEY_CHAT_TEMPLATE)
        .map(|v| v.as_str().expect("a string").to_string())
}

fn write_json(dir: &Path, name: &str, v: serde_json::Value) {
    std::fs::write(dir.join(name), serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// Converts `dir` to `out`; returns the stored template and the warnings.
fn convert_ok(dir: &Path, out: &Path) -> (Option<String>, Vec<String>) {
    let summary = convert_dir(dir, out, f32()).unwrap();
    (stored(out), summary.warnings)
}

fn chat_warnings(warnings: &[String]) -> Vec<&String> {
    warnings
        .iter()
        .filter(|w| w.contains("chat template"))
        .collect()
}

#[test]
fn tokenizer_config_template_is_stored_verbatim() {
    let Some((_tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    // Without any template file: no template, no warning about one.
    let (t, w) = convert_ok(&dir, &out);
    assert_eq!(t, None);
    assert!(chat_warnings(&w).is_empty(), "{w:?}");

    write_json(
        &dir,
        "tokenizer_config.json",
        json!({
            "bos_token": "<|endoftext|>",
            "chat_template": CHATML,
            "model_max_length": 2048,
        }),
    );
    std::fs::remove_file(&out).unwrap();
    let (t, w) = convert_ok(&dir, &out);
    assert_eq!(t.as_deref(), Some(CHATML));
    assert!(chat_warnings(&w).is_empty(), "{w:?}");

    // A config without the field (or with null) means no template, silently.
    for config in [json!({"bos_token": "x"}), json!({"chat_template": null})] {
        write_json(&dir, "tokenizer_config.json", config);
        std::fs::remove_file(&out).unwrap();
        let (t, w) = convert_ok(&dir, &out);
        assert_eq!(t, None);
        assert!(chat_warnings(&w).is_empty(), "{w:?}");
    }
}

#[test]
fn the_list_form_gives_the_default_else_the_first() {
    let Some((_tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    let cases = [
        (
            json!([
                {"name": "tool_use", "template": "TOOLS"},
                {"name": "default", "template": "DEFAULT"},
                {"name": "rag", "template": "RAG"},
            ]),
            "DEFAULT",
        ),
        (
            json!([
                {"name": "rag", "template": "RAG"},
                {"name": "tool_use", "template": "TOOLS"},
            ]),
            "RAG",
        ),
    ];
    for (list, want) in cases {
        write_json(
            &dir,
            "tokenizer_config.json",
            json!({"chat_template": list}),
        );
        let _ = std::fs::remove_file(&out);
        let (t, w) = convert_ok(&dir, &out);
        assert_eq!(t.as_deref(), Some(want));
        assert!(chat_warnings(&w).is_empty(), "{w:?}");
    }
}

#[test]
fn chat_template_jinja_wins_and_chat_template_json_comes_last() {
    let Some((_tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    let jinja = "{%- for m in messages %}\n{{ m.content }}\n{%- endfor %}\n";
    std::fs::write(dir.join("chat_template.jinja"), jinja).unwrap();
    write_json(
        &dir,
        "tokenizer_config.json",
        json!({"chat_template": CHATML}),
    );
    write_json(
        &dir,
        "chat_template.json",
        json!({"chat_template": "PROCESSOR"}),
    );
    let (t, w) = convert_ok(&dir, &out);
    assert_eq!(t.as_deref(), Some(jinja), "the .jinja file, byte for byte");
    assert!(chat_warnings(&w).is_empty(), "{w:?}");

    std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert_eq!(convert_ok(&dir, &out).0.as_deref(), Some(CHATML));

    // A processor's chat_template.json only when the tokenizer has none.
    write_json(&dir, "tokenizer_config.json", json!({"bos_token": "x"}));
    std::fs::remove_file(&out).unwrap();
    assert_eq!(convert_ok(&dir, &out).0.as_deref(), Some("PROCESSOR"));
}

/// The template is optional: a file that cannot give one is a warning naming it and
/// the field, the conversion goes on with the next source (or none).
#[test]
fn unusable_template_files_warn_and_convert() {
    let Some((_tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    let cases: [(&str, &[u8], &str); 7] = [
        (
            "tokenizer_config.json",
            b"{\"chat_template\": \"x\"",
            "malformed JSON",
        ),
        ("tokenizer_config.json", b"[1, 2]", "is not a JSON object"),
        (
            "tokenizer_config.json",
            b"{\"chat_template\": 3}",
            "`chat_template` is a number",
        ),
        (
            "tokenizer_config.json",
            b"{\"chat_template\": [{\"name\": \"default\"}]}",
            "entry 0",
        ),
        (
            "tokenizer_config.json",
            b"{\"chat_template\": \"  \"}",
            "empty",
        ),
        ("chat_template.jinja", b"{{ bad \xff byte }}", "UTF-8"),
        ("chat_template.jinja", b"\n\n", "empty"),
    ];
    for (name, bytes, why) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let _ = std::fs::remove_file(&out);
        let (t, w) = convert_ok(&dir, &out);
        assert_eq!(t, None, "{name}: {bytes:?}");
        let w = chat_warnings(&w);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains(path.to_str().unwrap()) && w[0].contains(why),
            "{name}: {why:?} not in {w:?}"
        );
        std::fs::remove_file(&path).unwrap();
    }

    // A broken .jinja falls back to tokenizer_config.json's, with the warning.
    std::fs::write(dir.join("chat_template.jinja"), b"\xff").unwrap();
    write_json(
        &dir,
        "tokenizer_config.json",
        json!({"chat_template": CHATML}),
    );
    std::fs::remove_file(&out).unwrap();
    let (t, w) = convert_ok(&dir, &out);
    assert_eq!(t.as_deref(), Some(CHATML));
    assert_eq!(chat_warnings(&w).len(), 1, "{w:?}");

    // Something that is not a regular file under a template name is reported by its
    // kind (and never read, so a FIFO cannot hang the conversion).
    std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
    std::fs::create_dir(dir.join("chat_template.jinja")).unwrap();
    std::fs::remove_file(&out).unwrap();
    let (t, w) = convert_ok(&dir, &out);
    assert_eq!(t.as_deref(), Some(CHATML));
    let w = chat_warnings(&w);
    assert!(w.len() == 1 && w[0].contains("directory"), "{w:?}");
}

#[test]
fn the_flag_replaces_the_folders_template() {
    let Some((tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    write_json(
        &dir,
        "tokenizer_config.json",
        json!({"chat_template": CHATML}),
    );
    std::fs::write(dir.join("chat_template.jinja"), "FOLDER").unwrap();
    let given = tmp.path().join("mine.jinja");
    let mine = "{# mine #}\n{{ messages[0].content }}";
    std::fs::write(&given, mine).unwrap();
    let o = run_convert(
        &[
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--chat-template",
            given.to_str().unwrap(),
            "--quiet",
        ],
        LIMIT,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stored(&out).as_deref(), Some(mine));

    // The folder's files are not even read: a broken one does not warn.
    std::fs::write(dir.join("tokenizer_config.json"), "{").unwrap();
    std::fs::remove_file(dir.join("chat_template.jinja")).unwrap();
    std::fs::remove_file(&out).unwrap();
    let mut overrides = Overrides::default();
    overrides.chat_template = Some(given.clone());
    let summary = convert_with(&opts(Input::Dir(dir.clone()), &out, f32()), &overrides).unwrap();
    assert!(
        chat_warnings(&summary.warnings).is_empty(),
        "{:?}",
        summary.warnings
    );
    assert_eq!(stored(&out).as_deref(), Some(mine));
}

/// A `--chat-template` file is the user's request: one that cannot be used is an
/// error naming it, before anything is written (and a dry run says the same).
#[test]
fn an_unusable_flag_file_is_an_error_naming_it() {
    let Some((tmp, dir, out)) = scratch(FIXTURE) else {
        return;
    };
    let bad = tmp.path().join("bad.jinja");
    let missing = tmp.path().join("missing.jinja");
    let empty = tmp.path().join("empty.jinja");
    std::fs::write(&bad, b"{{ \xc3\x28 }}").unwrap();
    std::fs::write(&empty, b" \n").unwrap();
    for (path, why) in [
        (&bad, "not UTF-8"),
        (&missing, "No such file"),
        (&empty, "empty"),
        (&tmp.path().to_path_buf(), "directory"),
    ] {
        let o = run_convert(
            &[
                dir.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
                "--chat-template",
                path.to_str().unwrap(),
            ],
            LIMIT,
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(1), "{err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
        assert!(
            line.contains(path.to_str().unwrap()) && line.contains(why),
            "{why:?} not in {line:?}"
        );
        assert_nothing_written(&out);

        let mut overrides = Overrides::default();
        overrides.chat_template = Some(path.clone());
        let o = opts(Input::Dir(dir.clone()), &out, f32());
        let e = dry_run_with(&o, &overrides).expect_err("a dry run accepted it");
        assert!(
            matches!(
                e,
                ConvertError::Read { .. }
                    | ConvertError::InputFile { .. }
                    | ConvertError::BadChatTemplate { .. }
            ),
            "{e:?}"
        );
    }
}

/// The template files are inputs: the output may not replace one, even with --force.
#[test]
fn the_output_is_never_a_template_file() {
    let Some((tmp, dir, _out)) = scratch(FIXTURE) else {
        return;
    };
    let config = dir.join("tokenizer_config.json");
    write_json(
        &dir,
        "tokenizer_config.json",
        json!({"chat_template": CHATML}),
    );
    let given = tmp.path().join("mine.jinja");
    std::fs::write(&given, "T").unwrap();
    for (target, flag) in [(&config, None), (&given, Some(&given))] {
        let before = std::fs::read(target).unwrap();
        let mut overrides = Overrides::default();
        overrides.chat_template = flag.cloned();
        let mut o = opts(Input::Dir(dir.clone()), target, f32());
        o.force = true;
        let e = convert_with(&o, &overrides).expect_err("an input was overwritten");
        assert!(matches!(e, ConvertError::Output { .. }), "{e:?}");
        assert_eq!(std::fs::read(target).unwrap(), before);
    }
}
