//! The official `openai` Python package against the server (completion, streamed
//! completion, chat). Needs `MAMBA_OPENAI_PYTHON`, a Python with `openai`
//! installed; without it the test says SKIPPED (and fails under `CI=true`).

mod common;

use common::{config, reference_greedy, TestServer};

#[test]
fn the_official_openai_client_works() {
    let Some(python) = std::env::var_os("MAMBA_OPENAI_PYTHON") else {
        assert!(
            !mamba_testkit::strict(),
            "MAMBA_OPENAI_PYTHON is not set; required under CI=true"
        );
        eprintln!("SKIPPED: set MAMBA_OPENAI_PYTHON to a python with the `openai` package");
        return;
    };
    let Some(model) = common::model() else { return };
    let (_, expected) = reference_greedy(&model, "ROMEO:", 40);
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/chat.jinja"
    ))
    .unwrap();
    let server = TestServer::start(
        model,
        mamba_server::Config {
            api_key: Some("test-key".into()),
            chat_template: Some(template),
            ..config()
        },
    );
    let out = std::process::Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/openai_client.py"
        ))
        .arg(server.url("/v1"))
        .arg("test-key")
        .arg(&expected)
        .output()
        .expect("running the python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("openai client: OK"), "{stdout}");
}
