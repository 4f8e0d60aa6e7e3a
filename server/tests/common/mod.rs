//! Helpers shared by the server's tests: the converted shakespeare model (once per
//! test binary), an in-process server on 127.0.0.1, and small HTTP helpers.
#![allow(dead_code)] // each test binary uses a different part of this module

use mamba_runtime::{GenerateOptions, Model, Sampler, SamplerParams, Session};
use mamba_server::Config;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The converted model and the temp dir that holds it (kept alive for the binary).
struct Fixture {
    model: Arc<Model>,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();

fn fixture() -> Option<&'static Fixture> {
    FIXTURE
        .get_or_init(|| {
            let src = mamba_testkit::shared_path("models/mamba-shakespeare")?;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shakespeare.mbin");
            let opts = mamba_convert::ConvertOptions {
                input: mamba_convert::Input::Dir(src),
                output: path.clone(),
                preset: "f32".parse().expect("known preset"),
                force: true,
                tokenizer: None,
                progress: false,
            };
            mamba_convert::convert(&opts).expect("converting mamba-shakespeare");
            let model = Arc::new(Model::open(&path).unwrap());
            Some(Fixture {
                model,
                path,
                _dir: dir,
            })
        })
        .as_ref()
}

/// The shakespeare model converted to f32, or `None` (skipped loudly) without the
/// shared folder.
pub fn model() -> Option<Arc<Model>> {
    fixture().map(|f| f.model.clone())
}

/// Path of the converted model file.
pub fn model_path() -> Option<PathBuf> {
    fixture().map(|f| f.path.clone())
}

/// A server configuration for tests: small limits, short timeout.
pub fn config() -> Config {
    Config {
        model_id: "shakespeare".into(),
        parallel: 4,
        cache_bytes: 64 << 20,
        api_key: None,
        max_tokens_limit: 512,
        queue: 32,
        chat_template: None,
        timeout: Duration::from_secs(120),
        max_body: 1 << 20,
        prefill_step: 128,
    }
}

/// A server running in-process on 127.0.0.1:0; stopped when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server for `model` with `config`.
    pub fn start(model: Arc<Model>, config: Config) -> TestServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                mamba_server::serve(listener, model, config, shutdown, Duration::from_secs(5))
                    .await
                    .unwrap();
            });
        });
        TestServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// POSTs JSON; returns (status, body as JSON).
    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string(), &[])
    }

    /// POSTs a raw body with extra headers; returns (status, body as JSON, or
    /// `Value::Null` for a body that is not JSON).
    pub fn post_raw(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(120))
            .build();
        let mut req = agent
            .post(&self.url(path))
            .set("Content-Type", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.send_string(body) {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST {path}: {e}"),
        };
        read_json(resp)
    }

    /// GETs `path`; returns (status, body text).
    pub fn get(&self, path: &str) -> (u16, String) {
        let resp = match ureq::get(&self.url(path)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        (resp.status(), resp.into_string().unwrap())
    }

    /// The value of an unlabelled metric, or of the first line starting with `name`.
    pub fn metric(&self, name: &str) -> f64 {
        let (status, text) = self.get("/metrics");
        assert_eq!(status, 200);
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with('#'))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in\n{text}"))
    }

    /// Polls `metric` until it equals `want` (at most `secs` seconds).
    pub fn wait_metric(&self, name: &str, want: f64, secs: u64) -> bool {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if self.metric(name) == want {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// POSTs a streaming request and returns every `data:` payload, `[DONE]` included.
    pub fn stream(&self, path: &str, body: &Value) -> Vec<String> {
        let mut s = self.open_stream(path, body);
        let mut reader = BufReader::new(&mut s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "status line {status}");
        // Headers.
        let mut chunked = false;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line
                .to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
            {
                chunked = true;
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                reader.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                reader.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            reader.read_to_end(&mut body).unwrap();
        }
        let text = String::from_utf8(body).unwrap();
        let mut out = Vec::new();
        for event in text.split("\n\n").filter(|e| !e.is_empty()) {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: ").or(l.strip_prefix("data:")))
                .collect();
            assert!(!data.is_empty(), "event without data: {event:?}");
            out.push(data.join("\n"));
        }
        out
    }

    /// Sends a POST and returns the open socket (response unread).
    pub fn open_stream(&self, path: &str, body: &Value) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let body = body.to_string();
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        s
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_json(resp: ureq::Response) -> (u16, Value) {
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Greedy generation with the runtime alone (no server): ids and text.
pub fn reference_greedy(model: &Model, prompt: &str, max_tokens: usize) -> (Vec<u32>, String) {
    let tok = model.tokenizer().unwrap();
    let ids = tok.encode(prompt).unwrap();
    let mut session = Session::new(model);
    let mut sampler = Sampler::new(SamplerParams::greedy()).unwrap();
    let opts = GenerateOptions {
        max_tokens,
        ignore_eos: false,
    };
    let mut text = String::new();
    let gen = session
        .generate(&ids, &mut sampler, &opts, |_, piece| {
            text.push_str(piece);
            true
        })
        .unwrap();
    (gen.tokens, text)
}

/// The text of choice 0 of a completion response.
pub fn text_of(v: &Value) -> &str {
    v["choices"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text in {v}"))
}

/// The first `n` token ids of the shakespeare model's `val.txt`.
pub fn val_ids(model: &Model, n: usize) -> Vec<u32> {
    let text = std::fs::read_to_string(
        mamba_testkit::shared_path("models/mamba-shakespeare/val.txt").unwrap(),
    )
    .unwrap();
    // Several characters per token: 8 per wanted token is ample.
    let end = text.len().min(8 * n + 64);
    let end = (0..=end).rev().find(|&i| text.is_char_boundary(i)).unwrap();
    let ids = model.tokenizer().unwrap().encode(&text[..end]).unwrap();
    assert!(ids.len() >= n, "val.txt too short");
    ids[..n].to_vec()
}
