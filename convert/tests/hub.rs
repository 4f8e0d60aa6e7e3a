//! `mamba-convert owner/name`: the real binary downloads from an in-process HTTP/1.1
//! server on 127.0.0.1 that serves the shared fixtures in the Hub's URL layout, the
//! way hf-hub's blocking client requests them:
//!
//! - `GET /api/models/{owner}/{name}/revision/{rev}`: JSON with `sha` and `siblings`;
//! - `GET /{owner}/{name}/resolve/{rev}/{file}` with `Range: bytes=0-0` (the file's
//!   commit, etag and size, from `x-repo-commit`, `x-linked-etag`/`etag` and
//!   `Content-Range`), then with `Range: bytes={start}-` for the body (a resumed
//!   download starts past 0).
//!
//! Every response closes its connection, every socket has timeouts, the server loop
//! stops at a deadline and a request count, and every run of the binary is killed
//! (failing the test) past a time limit.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use mamba_convert::KEY_SOURCE;
use mamba_format::{MbinFile, Value};

/// The token the gated repository's server expects to see (and still refuses).
const TOKEN: &str = "hf_test_not_a_real_token";
/// The commit every served repository is at.
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
/// Longest any one run of the binary may take.
const RUN_LIMIT: Duration = Duration::from_secs(90);

// -----------------------------------------------------------------------------------
// The server
// -----------------------------------------------------------------------------------

/// A repository as served: its files by name, and whether its files need access.
#[derive(Clone)]
struct HubRepo {
    files: Vec<(String, Vec<u8>)>,
    gated: bool,
}

impl HubRepo {
    /// Every regular file of `dir` (README, reference data and all, as on the Hub).
    fn from_dir(dir: &Path) -> HubRepo {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        files.sort();
        HubRepo {
            files,
            gated: false,
        }
    }

    fn with(mut self, name: &str, bytes: &[u8]) -> HubRepo {
        self.files.retain(|(n, _)| n != name);
        self.files.push((name.to_string(), bytes.to_vec()));
        self
    }

    fn file(&self, name: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
    }
}

/// How the server spoils the body of one file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cut {
    /// Announce the full Content-Length, send half of it, close.
    Short,
    /// Send no Content-Length, half of the body, close (a client cannot tell).
    NoLength,
}

/// One request as received.
#[derive(Clone, Debug)]
struct Request {
    path: String,
    range: Option<String>,
    auth: Option<String>,
}

impl Request {
    /// `Some(file)` for a `/resolve/` request.
    fn file(&self) -> Option<&str> {
        self.path
            .split_once("/resolve/")
            .and_then(|(_, rest)| rest.split_once('/'))
            .map(|(_, file)| file)
    }

    /// The first byte asked for by a `bytes=N-` range (a body request, not the
    /// `bytes=0-0` metadata probe).
    fn body_start(&self) -> Option<u64> {
        let range = self.range.as_deref()?.strip_prefix("bytes=")?;
        let (start, end) = range.split_once('-')?;
        end.is_empty().then(|| start.parse().ok()).flatten()
    }
}

#[derive(Default)]
struct State {
    repos: HashMap<String, HubRepo>,
    log: Vec<Request>,
    cut: Option<(String, Cut)>,
}

/// The server: a thread accepting one connection at a time until dropped.
struct Hub {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Hub {
    fn start(repos: Vec<(&str, HubRepo)>) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(State {
            repos: repos
                .into_iter()
                .map(|(id, r)| (id.to_string(), r))
                .collect(),
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || {
                // Bounded whatever happens: a deadline and a number of connections.
                let deadline = Instant::now() + Duration::from_secs(600);
                let mut connections = 0;
                while !stop.load(Ordering::SeqCst)
                    && Instant::now() < deadline
                    && connections < 10_000
                {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            connections += 1;
                            // A client that misbehaves only fails its own request.
                            let _ = serve(stream, &state);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Hub {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The requests received so far, and forgets them.
    fn take_log(&self) -> Vec<Request> {
        std::mem::take(&mut self.state.lock().unwrap().log)
    }

    fn set_cut(&self, cut: Option<(&str, Cut)>) {
        self.state.lock().unwrap().cut = cut.map(|(f, c)| (f.to_string(), c));
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A response before it is written.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut: Option<Cut>,
}

impl Response {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// A Hub error: the status plus the `X-Error-Code` the Python client reads.
    fn hub_error(status: u16, code: &str, message: &str) -> Response {
        Response::new(status, format!("{{\"error\":{message:?}}}"))
            .header("Content-Type", "application/json")
            .header("X-Error-Code", code)
            .header("X-Error-Message", message)
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    // The request head, up to its blank line (GET requests have no body).
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let req = Request {
        path: target.split('?').next().unwrap_or("").to_string(),
        range: header("range"),
        auth: header("authorization"),
    };
    let response = {
        let mut st = state.lock().unwrap();
        st.log.push(req.clone());
        route(&st, &req)
    };
    let body_len = response.body.len();
    let sent = match response.cut {
        Some(_) => body_len / 2,
        None => body_len,
    };
    let mut out = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", response.status);
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if response.cut != Some(Cut::NoLength) {
        out.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&response.body[..sent])?;
    }
    stream.flush()?;
    // FIN, not RST: everything sent reaches the client before the close.
    stream.shutdown(Shutdown::Write)
}

/// The Hub's answer to `req`.
fn route(st: &State, req: &Request) -> Response {
    let path = req.path.replace("%2F", "/");
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let mut parts = rest.splitn(4, '/');
        let (owner, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let rev = parts.nth(1).unwrap_or("");
        let id = format!("{owner}/{name}");
        let Some(repo) = st.repos.get(&id) else {
            // The real Hub answers 401 for a missing repository when no token is sent,
            // so as not to reveal private ones; "private-org" plays that part.
            return if owner == "private-org" {
                Response::hub_error(401, "RepoNotFound", "Repository not found")
            } else {
                Response::new(404, "{\"error\":\"Repository not found\"}")
            };
        };
        if rev != "main" && rev != SHA {
            return Response::hub_error(404, "RevisionNotFound", "Invalid rev id");
        }
        let siblings: Vec<serde_json::Value> = repo
            .files
            .iter()
            .map(|(n, _)| serde_json::json!({ "rfilename": n }))
            .collect();
        let info = serde_json::json!({
            "id": id,
            "modelId": id,
            "sha": SHA,
            "gated": repo.gated,
            "siblings": siblings,
        });
        return Response::new(200, info.to_string()).header("Content-Type", "application/json");
    }
    // /{owner}/{name}/resolve/{rev}/{file}
    let mut parts = path.trim_start_matches('/').splitn(5, '/');
    let (owner, name, verb, rev, file) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let Some(repo) = st.repos.get(&format!("{owner}/{name}")) else {
        return Response::hub_error(404, "RepoNotFound", "Repository not found");
    };
    if verb != "resolve" || (rev != "main" && rev != SHA) {
        return Response::hub_error(404, "RevisionNotFound", "Invalid rev id");
    }
    if repo.gated {
        return match req.auth.as_deref() {
            None => Response::hub_error(
                401,
                "GatedRepo",
                "Access to this model is restricted. You must be authenticated to access it.",
            ),
            Some(a) if a == format!("Bearer {TOKEN}") => Response::hub_error(
                403,
                "GatedRepo",
                "Access to this model is restricted and you are not in the authorized list.",
            ),
            Some(_) => Response::new(400, "unexpected Authorization header"),
        };
    }
    let Some(data) = repo.file(file) else {
        return Response::hub_error(404, "EntryNotFound", "Entry not found");
    };
    let len = data.len() as u64;
    let etag = format!("{:016x}", fnv(data));
    let mut resp = match parse_range(req.range.as_deref(), len) {
        Err(()) => return Response::new(416, "").header("Content-Range", format!("bytes */{len}")),
        Ok(None) => Response::new(200, data),
        Ok(Some((start, end))) => Response::new(206, &data[start as usize..=end as usize])
            .header("Content-Range", format!("bytes {start}-{end}/{len}")),
    };
    resp = resp
        .header("x-repo-commit", SHA)
        .header("Accept-Ranges", "bytes");
    // Large files are LFS objects on the Hub: their blob is named by the linked etag
    // (the content's sha256 there), which hf-hub prefers over the plain etag.
    resp = if file.ends_with(".safetensors") || file.ends_with(".bin") {
        resp.header("x-linked-etag", format!("\"{etag}{etag}\""))
            .header("etag", "\"git-object-id\"")
    } else {
        resp.header("etag", format!("\"{etag}\""))
    };
    let probe = req.range.as_deref() == Some("bytes=0-0");
    if let Some((cut_file, cut)) = &st.cut {
        if cut_file == file && !probe {
            resp.cut = Some(*cut);
        }
    }
    resp
}

/// `bytes=S-` or `bytes=S-E` within `len`: `Ok(None)` without a range, `Err` when
/// unsatisfiable.
fn parse_range(range: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = range.and_then(|r| r.strip_prefix("bytes=")) else {
        return Ok(None);
    };
    let (s, e) = spec.split_once('-').ok_or(())?;
    let start: u64 = s.parse().map_err(|_| ())?;
    let end: u64 = if e.is_empty() {
        len.saturating_sub(1)
    } else {
        e.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// FNV-1a: distinct etags for distinct contents without a hashing dependency.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// -----------------------------------------------------------------------------------
// Running the binary
// -----------------------------------------------------------------------------------

/// The token to give a run.
#[derive(Clone, Copy)]
enum Token {
    None,
    Env,
}

/// `mamba-convert args` against `hub` with the cache in `hf_home`; only the variables
/// set here reach it (no proxy, no HF_* of the environment running the tests).
fn run_hub(
    hub_endpoint: &str,
    hf_home: &Path,
    token: Token,
    extra: &[(&str, &str)],
    args: &[&str],
) -> Output {
    let mut cmd = convert_command(args);
    for var in [
        "HF_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_ENDPOINT",
        "HUGGING_FACE_HUB_TOKEN",
        "XDG_CACHE_HOME",
        "ALL_PROXY",
        "all_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HF_ENDPOINT", hub_endpoint).env("HF_HOME", hf_home);
    if let Token::Env = token {
        cmd.env("HF_TOKEN", TOKEN);
    }
    for (k, v) in extra {
        cmd.env(k, v);
    }
    wait_limited(cmd, args)
}

/// Runs `cmd`, killing it and failing the test past [`RUN_LIMIT`].
fn wait_limited(mut cmd: Command, args: &[&str]) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mamba-convert");
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mamba-convert {args:?} still running after {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a failed run: status 1, one `error:` line containing every needle, and no
/// output (nor temporary file) written.
fn assert_fails(o: &Output, out: &Path, needles: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    for n in needles {
        assert!(line.contains(n), "missing {n:?} in {line:?}");
    }
    assert_nothing_written(out);
    line.to_string()
}

fn assert_succeeds(o: &Output) {
    assert!(o.status.success(), "{}", stderr(o));
}

// -----------------------------------------------------------------------------------
// Checking results
// -----------------------------------------------------------------------------------

/// `models--owner--name` in the cache under `hf_home`.
fn repo_cache(hf_home: &Path, repo: &str) -> PathBuf {
    hf_home
        .join("hub")
        .join(format!("models--{}", repo.replace('/', "--")))
}

/// (name, length) of every file in the repository's `blobs` folder.
fn blobs(hf_home: &Path, repo: &str) -> Vec<(String, u64)> {
    let Ok(rd) = std::fs::read_dir(repo_cache(hf_home, repo).join("blobs")) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u64)> = rd
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The files `log` downloaded or probed, sorted and once each.
fn files_requested(log: &[Request]) -> Vec<String> {
    let mut v: Vec<String> = log
        .iter()
        .filter_map(|r| r.file().map(String::from))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Converts the local folder `dir` (same binary, same type) for comparison.
fn convert_local(dir: &Path, out: &Path, ty: &str) {
    let o = run_convert(
        &[
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--type",
            ty,
            "--quiet",
        ],
        RUN_LIMIT,
    );
    assert_succeeds(&o);
}

/// `hub` holds what `local` holds: every tensor's record and bytes, every metadata
/// entry but the source, which names the repository instead of the folder.
fn assert_same_model(local: &Path, hub: &Path, source: &str) {
    let (a, b) = (read_valid(local), read_valid(hub));
    let (fa, fb) = (MbinFile::parse(&a).unwrap(), MbinFile::parse(&b).unwrap());
    assert_eq!(
        fb.metadata.get(KEY_SOURCE),
        Some(&Value::String(source.to_string()))
    );
    let rest = |f: &MbinFile<'_>| -> Vec<(String, Value)> {
        f.metadata
            .iter()
            .filter(|(k, _)| *k != KEY_SOURCE)
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    assert_eq!(rest(&fa), rest(&fb));
    assert_eq!(fa.tensors, fb.tensors);
    for t in &fa.tensors {
        assert!(fa.tensor_data(t) == fb.tensor_data(t), "{} differs", t.name);
    }
}

/// A small valid tokenizer.json (ids below the tiny fixture's vocabulary of 1000).
const TOKENIZER: &str = r#"{"version":"1.0","added_tokens":[{"id":0,"content":"<|endoftext|>","special":true}],"model":{"type":"BPE","vocab":{"<|endoftext|>":0,"a":1,"b":2,"ab":3},"merges":["a b"]}}"#;

/// The tiny HF fixture served as `test-org/mamba-tiny-hf` with a tokenizer, and the
/// same files in a local folder of the same name (the name is in the metadata).
fn tiny_with_tokenizer(tmp: &Path) -> Option<(HubRepo, PathBuf)> {
    let src = fixture("mamba-tiny-hf")?;
    let local = tmp.join("local").join("mamba-tiny-hf");
    copy_dir(&src, &local);
    std::fs::write(local.join("tokenizer.json"), TOKENIZER).unwrap();
    Some((HubRepo::from_dir(&local), local))
}

// -----------------------------------------------------------------------------------
// Tests
// -----------------------------------------------------------------------------------

/// (1) A Hub id converts exactly like the local folder, fetching only what the
/// conversion reads; single-file and sharded weights; then (2) runs against the same
/// cache make no file request (one revision lookup; none at all offline).
#[test]
fn downloads_what_is_needed_and_then_uses_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((tiny, tiny_local)) = tiny_with_tokenizer(tmp.path()) else {
        return;
    };
    let Some(sharded_local) = fixture("mamba-tiny-sharded-bf16") else {
        return;
    };
    let hub = Hub::start(vec![
        ("test-org/mamba-tiny-hf", tiny),
        (
            "test-org/mamba-tiny-sharded-bf16",
            HubRepo::from_dir(&sharded_local),
        ),
    ]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let outs = tmp.path().join("out");
    std::fs::create_dir(&outs).unwrap();
    let out = |n: &str| outs.join(n);
    let s = |p: PathBuf| p.to_str().unwrap().to_string();

    // Single file, with a tokenizer.
    convert_local(&tiny_local, &out("tiny-local.mbin"), "q8_0");
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &[
            "test-org/mamba-tiny-hf",
            "-o",
            &s(out("tiny-hub.mbin")),
            "--type",
            "q8_0",
        ],
    );
    assert_succeeds(&o);
    assert_same_model(
        &out("tiny-local.mbin"),
        &out("tiny-hub.mbin"),
        "hf:test-org/mamba-tiny-hf",
    );
    let log = hub.take_log();
    assert_eq!(
        log[0].path,
        "/api/models/test-org/mamba-tiny-hf/revision/main"
    );
    assert_eq!(
        files_requested(&log),
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert!(log.iter().all(|r| r.auth.is_none()), "{log:?}");
    // The cache layout the Python client uses: refs, snapshot links into blobs, no
    // partial files left.
    let cache = repo_cache(&hf_home, "test-org/mamba-tiny-hf");
    assert_eq!(
        std::fs::read_to_string(cache.join("refs/main")).unwrap(),
        SHA
    );
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        let link = cache.join("snapshots").join(SHA).join(f);
        assert!(
            link.symlink_metadata().unwrap().file_type().is_symlink(),
            "{f}"
        );
        assert_eq!(
            std::fs::read(&link).unwrap(),
            std::fs::read(tiny_local.join(f)).unwrap()
        );
    }
    let blob_names = blobs(&hf_home, "test-org/mamba-tiny-hf");
    assert!(
        !blob_names.iter().any(|(n, _)| n.ends_with(".part")),
        "{blob_names:?}"
    );

    // Sharded, bf16, no tokenizer in the repository (not an error, not requested).
    convert_local(&sharded_local, &out("sh-local.mbin"), "f16");
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &[
            "test-org/mamba-tiny-sharded-bf16",
            "-o",
            &s(out("sh-hub.mbin")),
            "--type",
            "f16",
        ],
    );
    assert_succeeds(&o);
    assert_same_model(
        &out("sh-local.mbin"),
        &out("sh-hub.mbin"),
        "hf:test-org/mamba-tiny-sharded-bf16",
    );
    assert_eq!(
        files_requested(&hub.take_log()),
        [
            "config.json",
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json",
        ]
    );

    // (2) Again, into new outputs: the revision lookup only, no file request.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &[
            "test-org/mamba-tiny-hf",
            "-o",
            &s(out("tiny-again.mbin")),
            "--type",
            "q8_0",
        ],
    );
    assert_succeeds(&o);
    assert_same_model(
        &out("tiny-local.mbin"),
        &out("tiny-again.mbin"),
        "hf:test-org/mamba-tiny-hf",
    );
    let log = hub.take_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].path,
        "/api/models/test-org/mamba-tiny-hf/revision/main"
    );

    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &[
            "test-org/mamba-tiny-sharded-bf16",
            "-o",
            &s(out("sh-again.mbin")),
            "--type",
            "f16",
        ],
    );
    assert_succeeds(&o);
    let log = hub.take_log();
    assert_eq!(files_requested(&log), Vec::<String>::new(), "{log:?}");

    // Pinned to the commit: the same snapshot, still no file request.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &[
            "test-org/mamba-tiny-hf",
            "--revision",
            SHA,
            "-o",
            &s(out("tiny-pinned.mbin")),
            "--type",
            "q8_0",
        ],
    );
    assert_succeeds(&o);
    assert_same_model(
        &out("tiny-local.mbin"),
        &out("tiny-pinned.mbin"),
        &format!("hf:test-org/mamba-tiny-hf@{SHA}"),
    );
    let log = hub.take_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].path,
        format!("/api/models/test-org/mamba-tiny-hf/revision/{SHA}")
    );

    // Offline: no request at all.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[("HF_HUB_OFFLINE", "1")],
        &[
            "test-org/mamba-tiny-hf",
            "-o",
            &s(out("tiny-offline.mbin")),
            "--type",
            "q8_0",
        ],
    );
    assert_succeeds(&o);
    assert_same_model(
        &out("tiny-local.mbin"),
        &out("tiny-offline.mbin"),
        "hf:test-org/mamba-tiny-hf",
    );
    assert!(hub.take_log().is_empty());
    // Offline and not cached: a clear error, still no request.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[("HF_HUB_OFFLINE", "1")],
        &["test-org/other", "-o", &s(out("never.mbin"))],
    );
    assert_fails(
        &o,
        &out("never.mbin"),
        &["test-org/other@main", "HF_HUB_OFFLINE"],
    );
    assert!(hub.take_log().is_empty());
}

/// (3) A repository or revision the Hub does not have: status 1, one line naming the
/// repository, revision and endpoint, nothing written.
#[test]
fn unknown_repository_or_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let hub = Hub::start(vec![("test-org/mamba-tiny-hf", HubRepo::from_dir(&src))]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let out = tmp.path().join("out.mbin");
    let out_s = out.to_str().unwrap();

    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &["test-org/nope", "-o", out_s],
    );
    let line = assert_fails(
        &o,
        &out,
        &[
            "test-org/nope@main",
            "repository not found",
            &ep,
            "HF_TOKEN",
        ],
    );
    eprintln!("{line}");
    // With a token, the hint is about the token instead.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::Env,
        &[],
        &["test-org/nope", "-o", out_s],
    );
    assert_fails(&o, &out, &["repository not found", "token from HF_TOKEN"]);
    // The Hub's 401 + RepoNotFound for a missing (or private) repository.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &["private-org/secret", "-o", out_s],
    );
    assert_fails(
        &o,
        &out,
        &["private-org/secret@main", "repository not found"],
    );
    // A revision the repository does not have.
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &["test-org/mamba-tiny-hf", "--revision", "v9", "-o", out_s],
    );
    assert_fails(
        &o,
        &out,
        &["test-org/mamba-tiny-hf@v9", "revision not found"],
    );
    // Nothing but revision lookups was requested, and no snapshot was made.
    assert!(hub.take_log().iter().all(|r| r.path.starts_with("/api/")));
    assert!(!repo_cache(&hf_home, "test-org/nope")
        .join("snapshots")
        .exists());
}

/// (4) A gated repository: without a token, 401 and a hint to set one; with a token
/// (from HF_TOKEN or from the token file `huggingface-cli login` writes), the server
/// sees `Authorization: Bearer` on every request, answers 403, and the message says
/// the token has no access.
#[test]
fn gated_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let gated = HubRepo {
        gated: true,
        ..HubRepo::from_dir(&src)
    };
    let hub = Hub::start(vec![("gated-org/mamba-tiny-hf", gated)]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let out = tmp.path().join("out.mbin");
    let args = ["gated-org/mamba-tiny-hf", "-o", out.to_str().unwrap()];

    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    let line = assert_fails(
        &o,
        &out,
        &[
            "gated-org/mamba-tiny-hf@main",
            "HTTP 401",
            "set HF_TOKEN",
            "huggingface-cli login",
        ],
    );
    eprintln!("{line}");
    let log = hub.take_log();
    assert!(
        log.iter().any(|r| r.file() == Some("config.json")),
        "{log:?}"
    );
    assert!(log.iter().all(|r| r.auth.is_none()), "{log:?}");

    let o = run_hub(&ep, &hf_home, Token::Env, &[], &args);
    let line = assert_fails(
        &o,
        &out,
        &["the token from HF_TOKEN has no access", "HTTP 403"],
    );
    eprintln!("{line}");
    let log = hub.take_log();
    assert!(!log.is_empty());
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        log.iter()
            .all(|r| r.auth.as_deref() == Some(bearer.as_str())),
        "{log:?}"
    );

    // The token file, when HF_TOKEN is unset.
    std::fs::create_dir_all(&hf_home).unwrap();
    std::fs::write(hf_home.join("token"), format!("{TOKEN}\n")).unwrap();
    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    assert_fails(
        &o,
        &out,
        &["the token from the token file", "has no access", "HTTP 403"],
    );
    let log = hub.take_log();
    assert!(
        log.iter()
            .all(|r| r.auth.as_deref() == Some(bearer.as_str())),
        "{log:?}"
    );
    // Nothing of the repository was stored.
    assert_eq!(blobs(&hf_home, "gated-org/mamba-tiny-hf"), Vec::new());
}

/// (5) The weights cut off mid-way (the server announces the full length, sends half
/// and closes, on every attempt hf-hub makes): status 1, a message naming the file,
/// no output, nothing in the final blob or snapshot place, a `.part` file kept. The
/// next run resumes it from where it stopped and converts the same model.
#[test]
fn cut_off_download_fails_cleanly_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let repo = HubRepo::from_dir(&src);
    let weights_len = repo.file("model.safetensors").unwrap().len() as u64;
    let config = repo.file("config.json").unwrap().to_vec();
    let hub = Hub::start(vec![("test-org/mamba-tiny-hf", repo)]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let outs = tmp.path().join("out");
    std::fs::create_dir(&outs).unwrap();
    let out = outs.join("hub.mbin");
    let args = [
        "test-org/mamba-tiny-hf",
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
    ];
    let snapshot = repo_cache(&hf_home, "test-org/mamba-tiny-hf")
        .join("snapshots")
        .join(SHA);

    hub.set_cut(Some(("model.safetensors", Cut::Short)));
    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    // Complete blobs only where complete ones belong (config.json's), and the partial
    // weights in a `.part` file shorter than the file.
    let b = blobs(&hf_home, "test-org/mamba-tiny-hf");
    let complete: Vec<_> = b
        .iter()
        .filter(|(n, _)| !n.ends_with(".part") && !n.ends_with(".lock"))
        .collect();
    assert_eq!(complete.len(), 1, "{b:?}");
    assert_eq!(complete[0].1, config.len() as u64);
    let part: Vec<u64> = b
        .iter()
        .filter(|(n, _)| n.ends_with(".part"))
        .map(|&(_, l)| l)
        .collect();
    assert_eq!(part.len(), 1, "{b:?}");
    let partial = part[0];
    assert!(
        partial > 0 && partial < weights_len,
        "{partial} of {weights_len}"
    );
    assert!(snapshot
        .join("model.safetensors")
        .symlink_metadata()
        .is_err());
    let line = assert_fails(
        &o,
        &out,
        &[
            "test-org/mamba-tiny-hf@main",
            "model.safetensors",
            &format!("cut off after {partial} of {weights_len} bytes"),
            "run again",
        ],
    );
    eprintln!("{line}");
    let attempts = hub
        .take_log()
        .iter()
        .filter(|r| r.file() == Some("model.safetensors") && r.body_start().is_some())
        .count();
    assert!(attempts >= 1, "no body request");

    // Resumed: the body request starts where the `.part` file ends.
    hub.set_cut(None);
    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    assert_succeeds(&o);
    let starts: Vec<u64> = hub
        .take_log()
        .iter()
        .filter(|r| r.file() == Some("model.safetensors"))
        .filter_map(Request::body_start)
        .collect();
    assert_eq!(starts, [partial]);
    let local = outs.join("local.mbin");
    convert_local(&src, &local, "q8_0");
    assert_same_model(&local, &out, "hf:test-org/mamba-tiny-hf");
    assert!(!blobs(&hf_home, "test-org/mamba-tiny-hf")
        .iter()
        .any(|(n, _)| n.ends_with(".part")));
}

/// (5b) A body cut short without a Content-Length looks complete to the HTTP client;
/// the size hf-hub announced catches it: the file is removed from the blob and
/// snapshot places, and the next run downloads it again.
#[test]
fn short_body_without_length_is_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let repo = HubRepo::from_dir(&src);
    let weights = repo.file("model.safetensors").unwrap().to_vec();
    let hub = Hub::start(vec![("test-org/mamba-tiny-hf", repo)]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let outs = tmp.path().join("out");
    std::fs::create_dir(&outs).unwrap();
    let out = outs.join("hub.mbin");
    let args = [
        "test-org/mamba-tiny-hf",
        "-o",
        out.to_str().unwrap(),
        "--type",
        "q8_0",
    ];

    hub.set_cut(Some(("model.safetensors", Cut::NoLength)));
    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    let line = assert_fails(
        &o,
        &out,
        &["model.safetensors", &weights.len().to_string(), "discarded"],
    );
    eprintln!("{line}");
    let snapshot = repo_cache(&hf_home, "test-org/mamba-tiny-hf")
        .join("snapshots")
        .join(SHA);
    assert!(snapshot
        .join("model.safetensors")
        .symlink_metadata()
        .is_err());
    let b = blobs(&hf_home, "test-org/mamba-tiny-hf");
    assert!(
        b.iter()
            .all(|(n, l)| n.ends_with(".lock") || *l != weights.len() as u64 / 2),
        "{b:?}"
    );
    hub.take_log();

    hub.set_cut(None);
    let o = run_hub(&ep, &hf_home, Token::None, &[], &args);
    assert_succeeds(&o);
    assert_eq!(
        std::fs::read(snapshot.join("model.safetensors")).unwrap(),
        weights
    );
    let local = outs.join("local.mbin");
    convert_local(&src, &local, "q8_0");
    assert_same_model(&local, &out, "hf:test-org/mamba-tiny-hf");
}

/// Nothing listening at HF_ENDPOINT: the message names the endpoint.
#[test]
fn unreachable_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    // A port that was just free: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = format!("http://127.0.0.1:{port}");
    let out = tmp.path().join("out.mbin");
    let o = run_hub(
        &ep,
        &tmp.path().join("hf"),
        Token::None,
        &[],
        &["test-org/mamba-tiny-hf", "-o", out.to_str().unwrap()],
    );
    let line = assert_fails(
        &o,
        &out,
        &["test-org/mamba-tiny-hf@main", &format!("cannot reach {ep}")],
    );
    eprintln!("{line}");
}

/// Repositories with nothing to convert, or a shard index naming a path: refused
/// before any weights are requested, nothing written outside the cache.
#[test]
fn unusable_repositories() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let Some(sharded) = fixture("mamba-tiny-sharded-bf16") else {
        return;
    };
    let tiny = HubRepo::from_dir(&src);
    let no_weights = HubRepo {
        files: tiny
            .files
            .iter()
            .filter(|(n, _)| !n.ends_with(".safetensors"))
            .cloned()
            .collect(),
        gated: false,
    };
    let index =
        r#"{"metadata":{},"weight_map":{"backbone.embeddings.weight":"../evil.safetensors"}}"#;
    let bad_index =
        HubRepo::from_dir(&sharded).with("model.safetensors.index.json", index.as_bytes());
    let hub = Hub::start(vec![
        ("test-org/no-weights", no_weights),
        ("test-org/bad-index", bad_index),
    ]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    let out = tmp.path().join("out.mbin");
    let out_s = out.to_str().unwrap();

    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &["test-org/no-weights", "-o", out_s],
    );
    assert_fails(
        &o,
        &out,
        &[
            "test-org/no-weights@main",
            "no weights",
            "model.safetensors",
        ],
    );
    let o = run_hub(
        &ep,
        &hf_home,
        Token::None,
        &[],
        &["test-org/bad-index", "-o", out_s],
    );
    assert_fails(&o, &out, &["../evil.safetensors", "not a plain file name"]);
    let requested = files_requested(&hub.take_log());
    assert!(
        requested
            .iter()
            .all(|f| f == "config.json" || f == "model.safetensors.index.json"),
        "{requested:?}"
    );
    assert!(!hf_home.join("hub").join("evil.safetensors").exists());
}

/// The chat template files are downloaded when the repository lists them (and only
/// then), and the template is stored as from a local folder: `chat_template.jinja`
/// over `tokenizer_config.json`'s.
#[test]
fn chat_template_files_are_downloaded_when_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(src) = fixture("mamba-tiny-hf") else {
        return;
    };
    let config = r#"{"chat_template": [{"name": "default", "template": "FROM CONFIG"}]}"#;
    let jinja = "{% for m in messages %}{{ m.content }}{% endfor %}\n";
    let both = HubRepo::from_dir(&src)
        .with("tokenizer_config.json", config.as_bytes())
        .with("chat_template.jinja", jinja.as_bytes());
    let config_only = HubRepo::from_dir(&src).with("tokenizer_config.json", config.as_bytes());
    let hub = Hub::start(vec![
        ("test-org/both", both),
        ("test-org/config-only", config_only),
    ]);
    let ep = hub.endpoint();
    let hf_home = tmp.path().join("hf");
    for (repo, want, files) in [
        (
            "test-org/both",
            jinja,
            &[
                "chat_template.jinja",
                "config.json",
                "model.safetensors",
                "tokenizer_config.json",
            ][..],
        ),
        (
            "test-org/config-only",
            "FROM CONFIG",
            &["config.json", "model.safetensors", "tokenizer_config.json"][..],
        ),
    ] {
        let out = tmp.path().join(format!("{}.mbin", repo.replace('/', "-")));
        let o = run_hub(
            &ep,
            &hf_home,
            Token::None,
            &[],
            &[repo, "-o", out.to_str().unwrap(), "--quiet"],
        );
        assert_succeeds(&o);
        assert_eq!(files_requested(&hub.take_log()), files, "{repo}");
        let bytes = read_valid(&out);
        let f = MbinFile::parse(&bytes).unwrap();
        assert_eq!(
            f.metadata.get("tokenizer.chat_template"),
            Some(&Value::String(want.to_string())),
            "{repo}"
        );
    }
}
