//! Hugging Face Hub ids as input: download what a conversion needs into the standard
//! cache and hand back the local snapshot directory.
//!
//! The cache is the one `huggingface_hub` (Python) and the `hf-hub` crate share:
//! `<cache>/models--owner--name/{blobs,snapshots/<commit>,refs/<revision>}`, where a
//! snapshot entry is a symlink to its blob. Settings come from the same variables:
//!
//! - `HF_HUB_CACHE`, else `HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
//!   `~/.cache/huggingface/hub`;
//! - `HF_ENDPOINT` (a mirror or a test server);
//! - `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `HF_HOME/token`, which
//!   `huggingface-cli login` writes);
//! - `HF_HUB_OFFLINE=1`: no network at all, the cached snapshot of the revision is used.
//!
//! One request maps the revision to a commit and lists the repository's files
//! (needed to choose the weights and to know which of the optional `tokenizer.json`,
//! `tokenizer_config.json` and chat template files exist: only those are requested);
//! files already in that commit's snapshot are not requested again. hf-hub downloads
//! into `blobs/<etag>.part` and renames it into place only when complete, so a cut-off
//! download never sits where a complete one is expected; the next run resumes the
//! `.part` file with a `Range` request.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::api::Progress;
use hf_hub::{Cache, Repo, RepoType};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::chat_template::FILES as CHAT_TEMPLATE_FILES;
use crate::error::ConvertError;
use crate::source::read_shard_index;

/// The revision when none is given, as on the Hub.
const DEFAULT_REVISION: &str = "main";
const CONFIG: &str = "config.json";
const SINGLE: &str = "model.safetensors";
const INDEX: &str = "model.safetensors.index.json";
const TORCH: &str = "pytorch_model.bin";
const TOKENIZER: &str = "tokenizer.json";
/// Retries of a download cut off mid-way, each resuming where the last one stopped
/// (multi-GB weights over a flaky link should not need a manual rerun).
const RETRIES: usize = 3;

/// Downloads (or finds in the cache) the files of `repo` at `revision` that a
/// conversion reads, and returns the snapshot directory that holds them.
///
/// `progress` draws one bar per downloaded file on stderr.
///
/// # Errors
/// [`ConvertError::Hub`] naming the repository, the revision and what went wrong; a
/// malformed shard index is reported like a local one
/// ([`ConvertError::MalformedJson`], [`ConvertError::BadShardIndex`]).
pub(crate) fn fetch(
    repo: &str,
    revision: Option<&str>,
    progress: bool,
) -> Result<PathBuf, ConvertError> {
    let revision = revision.unwrap_or(DEFAULT_REVISION);
    let fail = |message: String| ConvertError::Hub {
        repo: repo.to_string(),
        revision: revision.to_string(),
        message,
    };
    // Both become URL and cache path components: refuse anything that could climb out
    // of the cache or change the URL's meaning before any of it is used.
    if !is_repo_id(repo) {
        return Err(fail(
            "not a repository id: expected owner/name with letters, digits, `-`, `_` or `.`".into(),
        ));
    }
    if !is_revision(revision) {
        return Err(fail(
            "not a revision: expected a branch, tag or commit made of letters, digits, \
             `-`, `_`, `.`, `+` and `/`-separated parts"
                .into(),
        ));
    }
    let settings = Settings::from_env().map_err(fail)?;
    if settings.offline {
        return cached_snapshot(&settings, repo, revision).map_err(fail);
    }
    Fetcher::new(repo, revision, settings, progress)?.fetch()
}

// -----------------------------------------------------------------------------------
// Settings
// -----------------------------------------------------------------------------------

/// Where the cache is, which endpoint and which token: see the module docs.
struct Settings {
    /// The `hub` folder that holds `models--owner--name`.
    cache: PathBuf,
    /// `HF_ENDPOINT` without a trailing `/`; `None` for hf-hub's default.
    endpoint: Option<String>,
    /// The token and where it came from, for error messages (never the token itself).
    token: Option<(String, String)>,
    /// `HF_HUB_OFFLINE` is set to a true value.
    offline: bool,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let home = match env_path("HF_HOME") {
            Some(p) => Some(p),
            None => match env_path("XDG_CACHE_HOME") {
                Some(xdg) => Some(xdg.join("huggingface")),
                None => env_path("HOME").map(|h| h.join(".cache").join("huggingface")),
            },
        };
        let cache = match (env_path("HF_HUB_CACHE"), &home) {
            (Some(c), _) => c,
            (None, Some(h)) => h.join("hub"),
            (None, None) => {
                return Err("cannot locate the Hugging Face cache: set HF_HOME or HOME".into())
            }
        };
        let token = match env_text("HF_TOKEN") {
            Some(t) => Some((t, "HF_TOKEN".to_string())),
            None => env_path("HF_TOKEN_PATH")
                .or_else(|| home.as_ref().map(|h| h.join("token")))
                .and_then(|path| {
                    // An unreadable or empty file means "no token", as for the Python
                    // client: the request then says whether one is needed.
                    let text = fs::read_to_string(&path).ok()?;
                    let t = text.trim();
                    (!t.is_empty())
                        .then(|| (t.to_string(), format!("the token file {}", path.display())))
                }),
        };
        let offline = env_text("HF_HUB_OFFLINE").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "yes" | "true")
        });
        Ok(Settings {
            cache,
            // hf-hub appends `/owner/name/...` to the endpoint, so a trailing `/` would
            // give `//owner` paths.
            endpoint: env_text("HF_ENDPOINT").map(|e| e.trim_end_matches('/').to_string()),
            token,
            offline,
        })
    }
}

/// A variable's value, trimmed; unset, empty or not UTF-8 as `None`.
fn env_text(name: &str) -> Option<String> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// A path-valued variable; unset or empty as `None` (any bytes are a valid path).
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

// -----------------------------------------------------------------------------------
// Names
// -----------------------------------------------------------------------------------

/// `owner/name`, each part letters, digits, `-`, `_`, `.`, not starting with `.` or
/// `-` and without `..` (the Hub's own rule, which also keeps the cache folder name
/// `models--owner--name` inside the cache).
pub fn is_repo_id(s: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.len() <= 96
            && !p.starts_with(['.', '-'])
            && !p.contains("..")
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(s.split_once('/'), Some((owner, name)) if part(owner) && part(name))
}

/// A branch, tag or commit: `/`-separated parts of letters, digits, `-`, `_`, `.`,
/// `+`, none empty, `.` or `..`. It becomes `refs/<revision>` in the cache, so a `..`
/// part would write outside it.
fn is_revision(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'))
        })
}

/// A commit id as the server reports it; it names the snapshot folder.
fn is_commit(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A file name the converter reads from beside the index: one plain component, made
/// of characters that need no escaping in the download URL.
fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.len() <= 255
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `<cache>/models--owner--name`.
fn repo_folder(cache: &Path, repo: &str) -> PathBuf {
    cache.join(Repo::model(repo.to_string()).folder_name())
}

// -----------------------------------------------------------------------------------
// Offline
// -----------------------------------------------------------------------------------

/// `HF_HUB_OFFLINE`: the snapshot that `refs/<revision>` names (or the commit itself),
/// without any request. Which weights it holds is left to the directory reader.
fn cached_snapshot(settings: &Settings, repo: &str, revision: &str) -> Result<PathBuf, String> {
    let folder = repo_folder(&settings.cache, repo);
    let commit = fs::read_to_string(folder.join("refs").join(revision))
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| is_commit(c))
        .or_else(|| is_commit(revision).then(|| revision.to_string()));
    match commit.map(|c| folder.join("snapshots").join(c)) {
        Some(dir) if dir.join(CONFIG).is_file() => Ok(dir),
        _ => Err(format!(
            "HF_HUB_OFFLINE is set but this revision is not in the cache {}; unset it to \
             download",
            settings.cache.display()
        )),
    }
}

// -----------------------------------------------------------------------------------
// Online
// -----------------------------------------------------------------------------------

/// One repository at one revision, and how to describe failures.
struct Fetcher {
    repo: String,
    revision: String,
    settings: Settings,
    /// The endpoint in use, for messages.
    endpoint: String,
    api: ApiRepo,
    progress: bool,
}

impl Fetcher {
    fn new(
        repo: &str,
        revision: &str,
        settings: Settings,
        progress: bool,
    ) -> Result<Fetcher, ConvertError> {
        // `with_token` after `from_cache`: hf-hub would otherwise use only the token
        // file beside the cache, not HF_TOKEN.
        let mut builder = ApiBuilder::from_cache(Cache::new(settings.cache.clone()))
            .with_token(settings.token.as_ref().map(|(t, _)| t.clone()))
            .with_retries(RETRIES)
            .with_user_agent("mamba-convert", env!("CARGO_PKG_VERSION"));
        if let Some(e) = &settings.endpoint {
            builder = builder.with_endpoint(e.clone());
        }
        let hub_error = |message: String| ConvertError::Hub {
            repo: repo.to_string(),
            revision: revision.to_string(),
            message,
        };
        let api = builder
            .build()
            .map_err(|e| hub_error(format!("cannot set up the HTTP client: {e}")))?;
        let repo_handle = Repo::with_revision(repo.to_string(), RepoType::Model, revision.into());
        let api = api.repo(repo_handle);
        // The default endpoint is hf-hub's; read it back from a URL it builds rather
        // than repeating it here.
        let endpoint = match &settings.endpoint {
            Some(e) => e.clone(),
            None => {
                let probe = api.url(CONFIG);
                match probe.find(&format!("/{repo}/resolve/")) {
                    Some(i) => probe[..i].to_string(),
                    None => probe,
                }
            }
        };
        Ok(Fetcher {
            repo: repo.to_string(),
            revision: revision.to_string(),
            settings,
            endpoint,
            api,
            progress,
        })
    }

    fn fail(&self, message: String) -> ConvertError {
        ConvertError::Hub {
            repo: self.repo.clone(),
            revision: self.revision.clone(),
            message,
        }
    }

    fn fetch(&self) -> Result<PathBuf, ConvertError> {
        let info = self.api.info().map_err(|e| self.api_error(e, None))?;
        if !is_commit(&info.sha) {
            return Err(self.fail(format!(
                "{} reported the commit {:?}, which is not a commit id",
                self.endpoint, info.sha
            )));
        }
        let snapshot = repo_folder(&self.settings.cache, &self.repo)
            .join("snapshots")
            .join(&info.sha);
        let listed: HashSet<&str> = info.siblings.iter().map(|s| s.rfilename.as_str()).collect();
        if !listed.contains(CONFIG) {
            return Err(self.fail(format!(
                "the repository has no {CONFIG}; is it a Mamba model?"
            )));
        }
        self.get(CONFIG, &snapshot)?;
        // The same order of preference as the directory reader, so that what is
        // downloaded is what it will open.
        if listed.contains(SINGLE) {
            self.get(SINGLE, &snapshot)?;
        } else if listed.contains(INDEX) {
            self.get(INDEX, &snapshot)?;
            for shard in self.shards(&snapshot.join(INDEX), &listed)? {
                self.get(&shard, &snapshot)?;
            }
        } else if listed.contains(TORCH) {
            self.get(TORCH, &snapshot)?;
        } else {
            return Err(self.fail(format!(
                "no weights in the repository: expected {SINGLE}, {INDEX} or {TORCH}"
            )));
        }
        // Optional: each only when the repository has it, so a repository without a
        // tokenizer or a chat template is no error (and costs no request).
        for name in std::iter::once(TOKENIZER).chain(CHAT_TEMPLATE_FILES) {
            if listed.contains(name) {
                self.get(name, &snapshot)?;
            }
        }
        self.record_ref(&info.sha);
        Ok(snapshot)
    }

    /// Every shard the index names, each a plain file name the repository lists,
    /// sorted and once each.
    fn shards(&self, index: &Path, listed: &HashSet<&str>) -> Result<Vec<String>, ConvertError> {
        let bad = |why: String| ConvertError::BadShardIndex {
            path: index.to_path_buf(),
            why,
        };
        let mut files = Vec::new();
        for (tensor, file) in read_shard_index(index)? {
            // The name becomes a download URL and a path in the snapshot: the Hub's
            // stricter file-name characters too.
            if !is_plain_file_name(&file) {
                return Err(bad(format!(
                    "`{tensor}` maps to `{file}`, which is not a plain file name"
                )));
            }
            if !listed.contains(file.as_str()) {
                return Err(self.fail(format!(
                    "{INDEX} names the shard {file}, which the repository does not have"
                )));
            }
            files.push(file);
        }
        files.sort_unstable();
        files.dedup();
        Ok(files)
    }

    /// `name` in the snapshot: already there (no request), or downloaded.
    fn get(&self, name: &str, snapshot: &Path) -> Result<(), ConvertError> {
        let pointer = snapshot.join(name);
        // The link resolves only when its blob is complete: blobs appear by rename.
        if fs::metadata(&pointer).is_ok_and(|m| m.is_file()) {
            return Ok(());
        }
        // A dangling link (its blob removed by hand or by a cache cleaner) would make
        // hf-hub's symlink call fail with "file exists" after the download.
        if fs::symlink_metadata(&pointer).is_ok() {
            fs::remove_file(&pointer).map_err(|e| self.cache_error(name, &e))?;
        }
        let seen = Rc::new(Cell::new(Seen::default()));
        let tracker = Tracker {
            draw: self.progress,
            bar: None,
            seen: Rc::clone(&seen),
        };
        let path = self
            .api
            .download_with_progress(name, tracker)
            .map_err(|e| self.api_error(e, Some((name, seen.get()))))?;
        // hf-hub files a download under the commit the server names for it; a branch
        // pushed to since the file list was read puts it in another snapshot, which
        // would mix two commits' files.
        if path != pointer {
            return Err(self.fail(format!(
                "the revision moved to a new commit while {name} was downloading; run again"
            )));
        }
        // hf-hub renames whatever the transfer produced. The HTTP client already
        // refuses a body shorter than its Content-Length, but a response without one
        // (or a server that ignored the resume range) can still leave a wrong size:
        // such a file must not stay where a complete one is expected.
        let got = fs::metadata(&path).map(|m| m.len()).ok();
        if let Some(expected) = seen.get().size.filter(|&e| got != Some(e)) {
            if let Ok(blob) = fs::canonicalize(&path) {
                let _ = fs::remove_file(blob);
            }
            let _ = fs::remove_file(&path);
            return Err(self.fail(format!(
                "the download of {name} has {} bytes but {} announced {expected}; it was \
                 discarded, run again",
                got.unwrap_or(0),
                self.endpoint
            )));
        }
        Ok(())
    }

    /// Points `refs/<revision>` at `commit` when it does not already, so that offline
    /// use finds this snapshot (downloads write it too; a fully cached run may not).
    fn record_ref(&self, commit: &str) {
        if self.revision == commit {
            return;
        }
        let cache = Cache::new(self.settings.cache.clone());
        let repo = Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone());
        let path = repo_folder(&self.settings.cache, &self.repo)
            .join("refs")
            .join(&self.revision);
        if fs::read_to_string(path).is_ok_and(|c| c.trim() == commit) {
            return;
        }
        // Ignored on failure: the files are all in place, and a read-only shared cache
        // must not stop the conversion.
        let _ = cache.repo(repo).create_ref(commit);
    }

    /// The one-line explanation of an hf-hub error; `download` is the file being
    /// downloaded and what its transfer saw (`None` for the repository info).
    fn api_error(&self, e: ApiError, download: Option<(&str, Seen)>) -> ConvertError {
        let file = download.map(|(name, _)| name);
        let what = file.unwrap_or("the repository info");
        let message = match e {
            // The last attempt's failure says why.
            ApiError::TooManyRetries(inner) => return self.api_error(*inner, download),
            ApiError::RequestError(e) => match *e {
                ureq::Error::Status(code, response) => self.status_message(code, &response, file),
                ureq::Error::Transport(t) => {
                    let mut m = format!("cannot reach {}: {}", self.endpoint, transport_detail(&t));
                    if cached_snapshot(&self.settings, &self.repo, &self.revision).is_ok() {
                        m.push_str("; set HF_HUB_OFFLINE=1 to use the cached copy");
                    }
                    m
                }
            },
            ApiError::IoError(io) => match download {
                Some((name, seen)) if is_network_io(io.kind()) => {
                    let at = match seen.size {
                        Some(size) => format!(" after {} of {size} bytes", seen.received),
                        None => String::new(),
                    };
                    format!("the download of {name} was cut off{at} ({io}); run again to resume it")
                }
                Some((name, _)) => return self.cache_error(name, &io),
                // `info()` reads its JSON through an I/O adapter.
                None => format!(
                    "{} sent unreadable repository info ({io}); is HF_ENDPOINT a Hugging \
                     Face Hub?",
                    self.endpoint
                ),
            },
            ApiError::MissingHeader(h) | ApiError::InvalidHeader(h) => format!(
                "{} sent no valid {h} header for {what}; is HF_ENDPOINT a Hugging Face Hub?",
                self.endpoint
            ),
            ApiError::ParseIntError(_) => {
                format!("{} sent an invalid Content-Range for {what}", self.endpoint)
            }
            ApiError::InvalidResume => format!(
                "the partial download of {what} in {} is longer than the file; delete the \
                 .part files there and run again",
                self.blobs().display()
            ),
            ApiError::LockAcquisition(lock) => format!(
                "{} is locked: another process is downloading {what}; wait for it to finish",
                lock.display()
            ),
            // Variants of features not enabled here (TLS backends).
            #[allow(unreachable_patterns)]
            other => format!("{what}: {other}"),
        };
        self.fail(message)
    }

    /// An HTTP error status, read the way the Python client reads it: the Hub's
    /// `X-Error-Code` first (it answers 401, not 404, for a repository that does not
    /// exist when no token is sent), then the status.
    fn status_message(&self, code: u16, response: &ureq::Response, file: Option<&str>) -> String {
        let error_code = response.header("x-error-code").unwrap_or_default();
        let server_says = response
            .header("x-error-message")
            .map(|m| format!(": {}", m.replace(['\r', '\n'], " ").trim_end_matches('.')))
            .unwrap_or_default();
        let token = self.settings.token.as_ref().map(|(_, source)| source);
        if error_code == "RevisionNotFound" {
            return format!("revision not found in the repository at {}", self.endpoint);
        }
        if error_code == "RepoNotFound" || (code == 404 && file.is_none()) {
            let hint = match token {
                None => "; a private repository needs HF_TOKEN or `huggingface-cli login`".into(),
                Some(source) => format!(" (or the token from {source} cannot see it)"),
            };
            return format!("repository not found at {}{hint}", self.endpoint);
        }
        if error_code == "GatedRepo" || code == 401 || code == 403 {
            return match token {
                None => format!(
                    "access denied (HTTP {code}){server_says}; the repository is gated or \
                     private: set HF_TOKEN or run `huggingface-cli login` (and accept its \
                     terms on its page if it is gated)"
                ),
                // The Hub answers 401 to a token it does not accept at all, 403 (or
                // GatedRepo) to a valid one without access.
                Some(source) if code == 401 && error_code != "GatedRepo" => format!(
                    "the token from {source} was refused (HTTP 401){server_says}; check \
                     that it is valid, or run `huggingface-cli login` again"
                ),
                Some(source) => format!(
                    "the token from {source} has no access (HTTP {code}){server_says}; \
                     request access on the repository's page or use another token"
                ),
            };
        }
        let what = file.unwrap_or("the repository info");
        if code == 404 {
            return format!(
                "{what} is listed by the repository but {} answered 404",
                self.endpoint
            );
        }
        if code == 416 {
            return format!(
                "{} refused to resume {what} (HTTP 416); delete the .part files in {} and \
                 run again",
                self.endpoint,
                self.blobs().display()
            );
        }
        format!(
            "{} answered HTTP {code} for {what}{server_says}",
            self.endpoint
        )
    }

    fn cache_error(&self, name: &str, e: &std::io::Error) -> ConvertError {
        self.fail(format!(
            "cannot store {name} in the cache {}: {e}",
            self.settings.cache.display()
        ))
    }

    fn blobs(&self) -> PathBuf {
        repo_folder(&self.settings.cache, &self.repo).join("blobs")
    }
}

/// A transport failure without its URL (the message names the endpoint already):
/// `connection failed: Connect error: Connection refused (os error 111)`.
fn transport_detail(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string().to_lowercase();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(source) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&source.to_string());
    }
    s
}

/// An I/O error of the connection (body cut short, reset, timed out), as opposed to
/// one of the cache's file system.
fn is_network_io(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::TimedOut
            | ErrorKind::WouldBlock
            | ErrorKind::NotConnected
    )
}

/// What hf-hub's progress callbacks reported for one file.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    /// The size the server announced.
    size: Option<u64>,
    /// Bytes on disk: hf-hub reports a resumed attempt's starting offset first.
    received: u64,
}

/// hf-hub's progress callbacks: records the size it announces (to check the finished
/// file against) and the bytes received, and draws a bar on stderr when `draw` is set.
///
/// The bar is made here rather than by hf-hub: its own bar is drawn before it is
/// styled, and stays on the line when the transfer ends or fails, so that the next
/// bar, warning or error would be printed after it on the same line.
struct Tracker {
    draw: bool,
    bar: Option<ProgressBar>,
    seen: Rc<Cell<Seen>>,
}

impl Progress for Tracker {
    fn init(&mut self, size: usize, filename: &str) {
        self.seen.set(Seen {
            size: Some(size as u64),
            received: 0,
        });
        if !self.draw {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar =
                ProgressBar::with_draw_target(Some(size as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_message(filename.to_string());
            bar
        });
        // hf-hub calls `init` again before each (resumed) attempt and then reports the
        // bytes already on disk; without a reset a retry would count them twice.
        bar.set_length(size as u64);
        bar.set_position(0);
    }

    fn update(&mut self, size: usize) {
        let mut seen = self.seen.get();
        seen.received += size as u64;
        self.seen.set(seen);
        if let Some(bar) = &self.bar {
            bar.inc(size as u64);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            let seen = self.seen.get();
            eprintln!(
                "downloaded {} ({})",
                bar.message(),
                HumanBytes(seen.size.unwrap_or(seen.received))
            );
        }
    }
}

impl Drop for Tracker {
    /// A failed transfer's bar is cleared, so that the error starts its own line.
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_repo_id("state-spaces/mamba-130m-hf"));
        for bad in [
            "a", "a/b/c", "../b", "a/..", "a/.b", "-a/b", "a/b c", "a/b%2F",
        ] {
            assert!(!is_repo_id(bad), "{bad}");
        }
        for good in [
            "main",
            "v1.0",
            "refs/pr/1",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(is_revision(good), "{good}");
        }
        for bad in [
            "", "/main", "main/", "a//b", "..", "a/../b", "./a", "a b", "a?b", "a%2Fb",
        ] {
            assert!(!is_revision(bad), "{bad}");
        }
        assert!(is_plain_file_name("model-00001-of-00002.safetensors"));
        for bad in ["", ".", "..", "a/b", "../a", "a\\b", "a?b", "a#b", "a b"] {
            assert!(!is_plain_file_name(bad), "{bad}");
        }
        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        assert!(!is_commit("../x") && !is_commit(""));
    }
}
