//! The `mamba-server` binary: refuses bad start-ups with one clear error, serves,
//! and on SIGTERM lets a request in flight finish and exits 0.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mamba-server");

fn fails_with(args: &[&str], needle: &str) {
    let out = Command::new(BIN).args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(err.contains(needle), "{args:?}: {err}");
}

#[test]
fn bad_start_ups_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mbin");
    std::fs::write(&junk, b"not a model").unwrap();
    let junk = junk.to_str().unwrap();
    fails_with(&[junk], "error: loading the model");
    fails_with(&["/nonexistent/m.mbin"], "error: loading the model");
    fails_with(&[junk, "--device", "hip:0"], "GPU server path is not built");
    fails_with(&[junk, "--parallel", "0"], "--parallel");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--host",
        "--port",
        "--parallel",
        "--cache-mb",
        "--api-key",
        "--threads",
        "--device",
        "--max-tokens-limit",
        "--queue",
        "--chat-template",
        "--timeout",
        "--max-body",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let Some(path) = common::model_path() else {
        return;
    };
    let mut child = Command::new(BIN)
        .args([path.to_str().unwrap(), "--port", "0", "-np", "2", "-t", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let url = format!("http://{addr}/v1/completions");
    let body =
        serde_json::json!({"prompt": "ROMEO:", "max_tokens": 2000, "temperature": 0}).to_string();
    let request = std::thread::spawn(move || {
        ureq::post(&url)
            .send_string(&body)
            .map(|r| r.into_string().unwrap())
            .map_err(|e| e.to_string())
    });
    // SIGTERM once the request is being served.
    let metrics = format!("http://{addr}/metrics");
    let t0 = Instant::now();
    while !ureq::get(&metrics)
        .call()
        .unwrap()
        .into_string()
        .unwrap()
        .contains("mamba_active_sequences 1")
    {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "request never became active"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let answer = request
        .join()
        .unwrap()
        .expect("the request in flight is answered");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert!(v["choices"][0]["finish_reason"].is_string(), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64() > Some(0), "{v}");
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "server did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(status.success(), "exit {status:?}: {rest}");
    assert!(rest.contains("stopped"), "{rest}");
}
