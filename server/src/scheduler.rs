//! Continuous batching: one thread owns the model's working state and, every
//! step, runs ONE forward call over every active sequence (a decoding sequence
//! feeds its last token, a prefilling one the next chunk of its prompt under a
//! per-step token budget), samples each sequence that got logits and sends events
//! to its request.
//!
//! ```text
//! loop:
//!   take new jobs (block when idle); drop requests whose client left or whose
//!   time is up; admit waiting jobs while slots remain (resuming each prompt from
//!   the longest cached prefix); forward(all segments); sample; send events
//! ```

use crate::cache::StateCache;
use crate::metrics::Metrics;
use crate::stop::StopScanner;
use axum::http::StatusCode;
use mamba_runtime::session::PREFILL_CHUNK;
use mamba_runtime::{
    LogitsWanted, Model, Sampler, SamplerParams, Scratch, Segment, State, StreamDecoder,
};
use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;

/// Most prompt tokens prefilled in one forward call (beside at most one decode
/// token per slot): bounds activation memory and the time one step holds every
/// stream.
const PREFILL_TOKENS: usize = PREFILL_CHUNK;

/// Most prompt tokens scored (logits for every token) per step, over all jobs
/// with `prompt_logprobs`: bounds the logits buffer (this many rows of the
/// vocabulary) and the step's extra time.
const SCORED_TOKENS: usize = 256;

/// Prefill stops at every multiple of this many prompt tokens and caches the
/// state there, so that prompts sharing a long prefix (a document asked another
/// question, a long system prompt) resume from the last checkpoint before they
/// part. A multiple of the prefill budget keeps a cold prompt's chunks whole.
pub const CHECKPOINT_EVERY: usize = PREFILL_TOKENS;

/// Why a choice ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS or a stop string.
    Stop,
    /// `max_tokens` or the time limit.
    Length,
}

impl FinishReason {
    /// OpenAI's name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// Log-probabilities of one generated token.
#[derive(Clone, Debug)]
pub struct TokenLogprob {
    /// The token's text on its own.
    pub token: String,
    /// Its log-probability under the model (raw logits, before any penalty or temperature).
    pub logprob: f32,
    /// The most likely tokens and their log-probabilities, best first.
    pub top: Vec<(String, f32)>,
}

/// Log-probabilities of a prompt's tokens, each given the tokens before it (the
/// first token has none: nothing precedes it).
#[derive(Clone, Debug)]
pub struct PromptLogprobs {
    /// The first token's text.
    pub first: String,
    /// Every later token.
    pub rest: Vec<TokenLogprob>,
}

/// What the scheduler tells a request.
#[derive(Debug)]
pub enum Event {
    /// The prompt is admitted; `cached` of its tokens came from the state cache.
    Admitted {
        /// Prompt tokens taken from the cache.
        cached: usize,
    },
    /// The prompt's log-probabilities (jobs with `prompt_logprobs`), once the
    /// prompt is fed and before any token.
    PromptLogprobs(PromptLogprobs),
    /// A token of choice `choice`, with the text it releases (possibly empty: held
    /// back as an incomplete character or a possible stop string).
    Token {
        /// Choice index.
        choice: usize,
        /// Text released.
        text: String,
        /// Log-probabilities, when asked for.
        logprob: Option<TokenLogprob>,
    },
    /// Choice `choice` ended; `text` is the last text released.
    Done {
        /// Choice index.
        choice: usize,
        /// Why.
        reason: FinishReason,
        /// Remaining text.
        text: String,
        /// Tokens generated for the choice.
        tokens: usize,
    },
    /// The request failed (no more events follow).
    Error {
        /// HTTP status to answer.
        status: StatusCode,
        /// Message.
        message: String,
    },
}

/// A request for the scheduler.
pub struct Job {
    /// Prompt tokens (checked against the vocabulary, not empty).
    pub prompt: Vec<u32>,
    /// Sampling parameters of choice 0; choice `i` uses seed `seed + i`.
    pub params: SamplerParams,
    /// Number of choices (sharing the prompt's prefill).
    pub n: usize,
    /// Most tokens per choice.
    pub max_tokens: usize,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Alternatives per token to report with log-probabilities; `None`: none.
    pub logprobs: Option<usize>,
    /// Whether the prompt's tokens get log-probabilities too (`echo` with
    /// `logprobs`). Such a prompt is fed from the start, bypassing the state
    /// cache, which keeps no per-token logits.
    pub prompt_logprobs: bool,
    /// Whether end-of-sequence is generated as an ordinary token instead of
    /// ending the choice.
    pub ignore_eos: bool,
    /// When the request must be finished.
    pub deadline: Instant,
    /// When it arrived.
    pub arrived: Instant,
    /// Where events go; a closed channel means the client left.
    pub events: UnboundedSender<Event>,
}

/// The handlers' side: submits jobs to a bounded queue.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Job>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

/// Why a job was not queued.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The queue holds `--queue` waiting requests already.
    #[error("the server is busy: {0} requests are already waiting")]
    Full(usize),
    /// The scheduler has stopped.
    #[error("the server is shutting down")]
    Closed,
}

impl Handle {
    /// Queues `job`, unless `capacity` jobs are already waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let before = self.queued.fetch_add(1, Relaxed);
        if before >= self.capacity {
            self.queued.fetch_sub(1, Relaxed);
            return Err(SubmitError::Full(before));
        }
        self.metrics.queue_depth.store((before + 1) as u64, Relaxed);
        self.tx.send(job).map_err(|_| {
            self.queued.fetch_sub(1, Relaxed);
            SubmitError::Closed
        })
    }
}

/// Starts the scheduler thread; it ends once every [`Handle`] is dropped and its
/// last request is done.
pub fn start(
    model: Arc<Model>,
    parallel: usize,
    queue: usize,
    cache_bytes: usize,
    prefill_step: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<(Handle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut sched = Scheduler {
        model,
        parallel,
        rx,
        queued: queued.clone(),
        waiting: VecDeque::new(),
        running: Vec::new(),
        cache: StateCache::new(cache_bytes),
        scratch: Scratch::default(),
        logits: Vec::new(),
        metrics: metrics.clone(),
        prefill_step: prefill_step.clamp(1, PREFILL_TOKENS),
    };
    let thread = std::thread::Builder::new()
        .name("mamba-scheduler".into())
        .spawn(move || sched.run())?;
    Ok((
        Handle {
            tx,
            queued,
            capacity: queue,
            metrics,
        },
        thread,
    ))
}

/// One choice being decoded.
struct Seq {
    choice: usize,
    state: State,
    sampler: Sampler,
    /// Prompt and generated tokens; the last one is `next` when not yet fed.
    history: Vec<u32>,
    /// The last sampled token, fed at the next step.
    next: u32,
    decoder: StreamDecoder,
    stop: StopScanner,
    generated: usize,
    last_token: Instant,
}

enum Phase {
    Prefill { state: State, pos: usize },
    Decode(Vec<Seq>),
}

struct Running {
    job: Job,
    phase: Phase,
    first_token_seen: bool,
    /// Log-probabilities of the prompt's tokens so far (`prompt_logprobs`).
    prompt_lps: Vec<TokenLogprob>,
}

/// Which sequence a row of the forward call's logits belongs to.
enum Owner {
    Prefill { req: usize, done: bool },
    Decode { req: usize, seq: usize },
}

struct Scheduler {
    model: Arc<Model>,
    parallel: usize,
    rx: mpsc::Receiver<Job>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    waiting: VecDeque<Job>,
    running: Vec<Running>,
    cache: StateCache,
    scratch: Scratch,
    logits: Vec<f32>, // (segments, vocab)
    metrics: Arc<Metrics>,
    /// Prompt tokens per step while others decode (see `--prefill-step`).
    prefill_step: usize,
}

fn send(job: &Job, ev: Event) {
    // A closed channel is noticed at the next step and the request dropped then.
    let _ = job.events.send(ev);
}

impl Scheduler {
    fn run(&mut self) {
        loop {
            if !self.receive() {
                return;
            }
            // A bug in a step must not take the server down: fail the requests in
            // flight and go on serving.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step()));
            if step.is_err() {
                for r in self.running.drain(..) {
                    send(
                        &r.job,
                        Event::Error {
                            status: StatusCode::INTERNAL_SERVER_ERROR,
                            message: "internal error while generating".into(),
                        },
                    );
                }
                self.scratch = Scratch::default();
            }
            self.publish_gauges();
        }
    }

    /// Moves new jobs to `waiting`, blocking while there is nothing to do; false
    /// once the handles are gone and nothing is left.
    fn receive(&mut self) -> bool {
        if self.running.is_empty() && self.waiting.is_empty() {
            match self.rx.recv() {
                Ok(job) => self.waiting.push_back(job),
                Err(_) => return false,
            }
        }
        while let Ok(job) = self.rx.try_recv() {
            self.waiting.push_back(job);
        }
        true
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.queue_depth
            .store(self.queued.load(Relaxed) as u64, Relaxed);
        m.active_sequences.store(self.slots_used() as u64, Relaxed);
        m.cache_bytes.store(self.cache.bytes() as u64, Relaxed);
    }

    fn slots_used(&self) -> usize {
        self.running
            .iter()
            .map(|r| match &r.phase {
                Phase::Prefill { .. } => r.job.n,
                Phase::Decode(seqs) => seqs.len(),
            })
            .sum()
    }

    fn step(&mut self) {
        let now = Instant::now();
        self.expire_waiting(now);
        self.drop_left_or_late(now);
        self.admit();
        self.publish_gauges();
        if self.running.is_empty() {
            return;
        }
        self.forward_and_sample();
    }

    /// Waiting jobs whose client left or whose time is up leave the queue.
    fn expire_waiting(&mut self, now: Instant) {
        let queued = &self.queued;
        self.waiting.retain(|job| {
            let keep = !job.events.is_closed() && now < job.deadline;
            if !keep {
                queued.fetch_sub(1, Relaxed);
                send(job, timeout_error());
            }
            keep
        });
    }

    /// Drops requests whose client left; ends those past their deadline with what
    /// they produced (`length`), or an error when they produced nothing yet.
    fn drop_left_or_late(&mut self, now: Instant) {
        let model = &self.model;
        self.running.retain_mut(|r| {
            if r.job.events.is_closed() {
                return false;
            }
            if now < r.job.deadline {
                return true;
            }
            match &mut r.phase {
                Phase::Prefill { .. } => send(&r.job, timeout_error()),
                Phase::Decode(seqs) => {
                    for s in seqs.iter_mut() {
                        finish(model, &r.job, s, FinishReason::Length);
                    }
                }
            }
            false
        });
    }

    /// Admits waiting jobs in order while their choices fit in the free slots.
    fn admit(&mut self) {
        while let Some(job) = self.waiting.front() {
            if self.slots_used() + job.n > self.parallel {
                break;
            }
            let job = self.waiting.pop_front().expect("front exists");
            self.queued.fetch_sub(1, Relaxed);
            let m = &self.metrics;
            m.prompt_tokens.fetch_add(job.prompt.len() as u64, Relaxed);
            let hit = if job.prompt_logprobs {
                None
            } else {
                self.cache.lookup(&job.prompt)
            };
            let cached = hit.as_ref().map_or(0, |h| h.len);
            if cached > 0 {
                m.cache_hits.fetch_add(1, Relaxed);
                m.cache_reused_tokens.fetch_add(cached as u64, Relaxed);
            } else {
                m.cache_misses.fetch_add(1, Relaxed);
            }
            send(&job, Event::Admitted { cached });
            let mut run = Running {
                job,
                phase: Phase::Decode(Vec::new()),
                first_token_seen: false,
                prompt_lps: Vec::new(),
            };
            match hit {
                // The whole prompt is cached: its logits are the ones to sample from.
                Some(h) if h.len == run.job.prompt.len() => {
                    start_decode(&self.model, &mut run, h.state, &h.logits, &self.metrics);
                }
                Some(h) => {
                    run.phase = Phase::Prefill {
                        state: h.state,
                        pos: h.len,
                    }
                }
                None => {
                    run.phase = Phase::Prefill {
                        state: self.model.new_state(),
                        pos: 0,
                    }
                }
            }
            if !is_finished(&run) {
                self.running.push(run);
            }
        }
    }

    /// Feeds the next chunk of each prompt that is scored (`prompt_logprobs`), in
    /// a forward call of its own that computes logits for every token, so the
    /// other sequences' call keeps computing only the last ones.
    fn prefill_scored(&mut self) {
        let mut budget = SCORED_TOKENS;
        let v = self.model.vocab_size();
        let mut logits = Vec::new();
        for ri in 0..self.running.len() {
            let r = &mut self.running[ri];
            let Phase::Prefill { state, pos } = &mut r.phase else {
                continue;
            };
            if !r.job.prompt_logprobs || budget == 0 {
                continue;
            }
            let prompt = &r.job.prompt;
            let take = (prompt.len() - *pos).min(budget);
            budget -= take;
            let mut seg = [Segment {
                state,
                tokens: &prompt[*pos..*pos + take],
            }];
            let result =
                self.model
                    .forward(&mut seg, LogitsWanted::All, &mut self.scratch, &mut logits);
            if let Err(e) = result {
                send(
                    &r.job,
                    Event::Error {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: e.to_string(),
                    },
                );
                r.phase = Phase::Decode(Vec::new());
                continue;
            }
            // Row i follows token pos + i and scores token pos + i + 1; the last
            // row of the whole prompt scores what comes after it (sampled below).
            let alternatives = r.job.logprobs.unwrap_or(0);
            for i in 0..take {
                if let Some(&t) = prompt.get(*pos + i + 1) {
                    let row = &logits[i * v..(i + 1) * v];
                    r.prompt_lps
                        .push(logprob_of(&self.model, row, t, alternatives));
                }
            }
            *pos += take;
            if *pos < prompt.len() {
                continue;
            }
            let Phase::Prefill { state, .. } =
                std::mem::replace(&mut r.phase, Phase::Decode(Vec::new()))
            else {
                unreachable!("matched above")
            };
            let last = &logits[(take - 1) * v..take * v];
            let first = token_text(&self.model, r.job.prompt[0]);
            let rest = std::mem::take(&mut r.prompt_lps);
            send(
                &r.job,
                Event::PromptLogprobs(PromptLogprobs { first, rest }),
            );
            self.cache.insert(&r.job.prompt, &state, last);
            start_decode(&self.model, r, state, last, &self.metrics);
        }
        self.running.retain(|r| !is_finished(r));
    }

    fn forward_and_sample(&mut self) {
        self.prefill_scored();
        // A step holds every stream until its prompt chunk is fed: beside decoding
        // sequences, feed less per step.
        let decoding = self
            .running
            .iter()
            .any(|r| matches!(&r.phase, Phase::Decode(seqs) if !seqs.is_empty()));
        let mut budget = if decoding {
            self.prefill_step
        } else {
            PREFILL_TOKENS
        };
        let mut segs = Vec::new();
        let mut owners = Vec::new();
        for (ri, r) in self.running.iter_mut().enumerate() {
            let Running { job, phase, .. } = r;
            match phase {
                // Fed by prefill_scored.
                Phase::Prefill { .. } if job.prompt_logprobs => {}
                Phase::Decode(seqs) => {
                    for (si, s) in seqs.iter_mut().enumerate() {
                        segs.push(Segment {
                            state: &mut s.state,
                            tokens: std::slice::from_ref(&s.next),
                        });
                        owners.push(Owner::Decode { req: ri, seq: si });
                    }
                }
                Phase::Prefill { state, pos } => {
                    if budget == 0 {
                        continue;
                    }
                    let to_checkpoint = CHECKPOINT_EVERY - *pos % CHECKPOINT_EVERY;
                    let take = (job.prompt.len() - *pos).min(budget).min(to_checkpoint);
                    budget -= take;
                    segs.push(Segment {
                        state,
                        tokens: &job.prompt[*pos..*pos + take],
                    });
                    *pos += take;
                    owners.push(Owner::Prefill {
                        req: ri,
                        done: *pos == job.prompt.len(),
                    });
                }
            }
        }
        if segs.is_empty() {
            return;
        }
        let mut logits = std::mem::take(&mut self.logits);
        let result = self.model.forward(
            &mut segs,
            LogitsWanted::Last,
            &mut self.scratch,
            &mut logits,
        );
        drop(segs);
        if let Err(e) = result {
            // The states in the call are partly advanced: every request in it fails.
            for r in self.running.drain(..) {
                send(
                    &r.job,
                    Event::Error {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: e.to_string(),
                    },
                );
            }
            self.logits = logits;
            return;
        }
        let v = self.model.vocab_size();
        for (k, owner) in owners.iter().enumerate() {
            let row = &logits[k * v..(k + 1) * v];
            match *owner {
                Owner::Prefill { req, done: true } => {
                    let r = &mut self.running[req];
                    let Phase::Prefill { state, .. } =
                        std::mem::replace(&mut r.phase, Phase::Decode(Vec::new()))
                    else {
                        unreachable!("owner says prefill")
                    };
                    self.cache.insert(&r.job.prompt, &state, row);
                    start_decode(&self.model, r, state, row, &self.metrics);
                }
                Owner::Prefill { req, done: false } => {
                    let r = &self.running[req];
                    if let Phase::Prefill { state, pos } = &r.phase {
                        if pos % CHECKPOINT_EVERY == 0 {
                            self.cache.insert(&r.job.prompt[..*pos], state, row);
                        }
                    }
                }
                Owner::Decode { req, seq } => {
                    let r = &mut self.running[req];
                    let Phase::Decode(seqs) = &mut r.phase else {
                        unreachable!("owner says decode")
                    };
                    let s = &mut seqs[seq];
                    if let Some(key_len) = sample_next(
                        &self.model,
                        &r.job,
                        s,
                        row,
                        &self.metrics,
                        &mut r.first_token_seen,
                    ) {
                        self.cache.insert(&s.history[..key_len], &s.state, row);
                    }
                }
            }
        }
        self.logits = logits;
        for r in &mut self.running {
            if let Phase::Decode(seqs) = &mut r.phase {
                seqs.retain(|s| !s.done());
            }
        }
        self.running.retain(|r| !is_finished(r));
    }
}

impl Seq {
    fn done(&self) -> bool {
        self.next == DONE
    }
}

/// `next` of a finished choice.
const DONE: u32 = u32::MAX;

fn is_finished(r: &Running) -> bool {
    matches!(&r.phase, Phase::Decode(seqs) if seqs.iter().all(Seq::done))
}

fn timeout_error() -> Event {
    Event::Error {
        status: StatusCode::REQUEST_TIMEOUT,
        message: "the request ran past the server's time limit before producing a token".into(),
    }
}

/// The prompt is fed (`state`, `logits` after its last token): forks one sequence
/// per choice and samples each one's first token.
fn start_decode(model: &Model, r: &mut Running, state: State, logits: &[f32], metrics: &Metrics) {
    let job = &r.job;
    if job.max_tokens == 0 {
        // Only the prompt was asked for (echo, scoring): every choice ends here.
        for choice in 0..job.n {
            send(
                job,
                Event::Done {
                    choice,
                    reason: FinishReason::Length,
                    text: String::new(),
                    tokens: 0,
                },
            );
        }
        r.phase = Phase::Decode(Vec::new());
        return;
    }
    let context = &job.prompt[job.prompt.len().saturating_sub(8)..];
    let mut seqs = Vec::with_capacity(job.n);
    for choice in 0..job.n {
        let params = SamplerParams {
            seed: job.params.seed.wrapping_add(choice as u64),
            ..job.params.clone()
        };
        let sampler = Sampler::new(params).expect("validated by the handler");
        seqs.push(Seq {
            choice,
            state: state.clone(),
            sampler,
            history: job.prompt.clone(),
            next: 0,
            decoder: StreamDecoder::with_prompt(context),
            stop: StopScanner::new(job.stop.clone()),
            generated: 0,
            last_token: Instant::now(),
        });
    }
    for s in &mut seqs {
        // A finished choice's entry would be the prompt again: already cached.
        let _ = sample_next(model, job, s, logits, metrics, &mut r.first_token_seen);
    }
    r.phase = Phase::Decode(seqs);
}

/// Samples the next token of `s` from `logits` and sends its event. When the
/// choice ends here, returns how many tokens of its history have been fed (the
/// cache key for the state and `logits`).
fn sample_next(
    model: &Model,
    job: &Job,
    s: &mut Seq,
    logits: &[f32],
    metrics: &Metrics,
    first_token_seen: &mut bool,
) -> Option<usize> {
    let t = s.sampler.sample(logits, &s.history);
    let now = Instant::now();
    if !*first_token_seen {
        *first_token_seen = true;
        metrics.observe_ttft((now - job.arrived).as_secs_f64());
    } else if s.generated > 0 {
        metrics.observe_token_latency((now - s.last_token).as_secs_f64());
    }
    s.last_token = now;
    let fed = s.history.len();
    if !job.ignore_eos && Some(t) == model.eos_id() {
        finish(model, job, s, FinishReason::Stop);
        return Some(fed);
    }
    metrics.generated_tokens.fetch_add(1, Relaxed);
    s.history.push(t);
    s.generated += 1;
    let tok = model.tokenizer();
    let piece = match tok {
        Some(tok) => s.decoder.push(tok, t).unwrap_or_default(),
        None => String::new(),
    };
    let text = s.stop.push(&piece);
    let logprob = job.logprobs.map(|n| logprob_of(model, logits, t, n));
    send(
        job,
        Event::Token {
            choice: s.choice,
            text,
            logprob,
        },
    );
    if s.stop.stopped() {
        finish(model, job, s, FinishReason::Stop);
    } else if s.generated >= job.max_tokens {
        finish(model, job, s, FinishReason::Length);
    } else {
        s.next = t;
        return None;
    }
    Some(fed)
}

/// Ends choice `s`: releases held text (an incomplete character the decoder
/// held, text held as a possible stop string) and sends `Done`.
fn finish(model: &Model, job: &Job, s: &mut Seq, reason: FinishReason) {
    let mut text = String::new();
    let mut reason = reason;
    if !s.stop.stopped() {
        if let Some(tok) = model.tokenizer() {
            let rest = s.decoder.flush(tok).unwrap_or_default();
            text = s.stop.push(&rest);
        }
        if s.stop.stopped() {
            reason = FinishReason::Stop;
        } else {
            text.push_str(&s.stop.finish());
        }
    }
    s.next = DONE;
    send(
        job,
        Event::Done {
            choice: s.choice,
            reason,
            text,
            tokens: s.generated,
        },
    );
}

/// Log-probability of `t` and the `n` most likely tokens, from raw logits.
fn logprob_of(model: &Model, logits: &[f32], t: u32, n: usize) -> TokenLogprob {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let lse = max as f64
        + logits
            .iter()
            .map(|&x| ((x - max) as f64).exp())
            .sum::<f64>()
            .ln();
    let lp = |id: u32| (logits[id as usize] as f64 - lse) as f32;
    let text = |id: u32| token_text(model, id);
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let by_logit = |a: &u32, b: &u32| {
        logits[*b as usize]
            .total_cmp(&logits[*a as usize])
            .then(a.cmp(b))
    };
    let top = if n == 0 {
        Vec::new()
    } else {
        let n = n.min(ids.len());
        ids.select_nth_unstable_by(n - 1, by_logit);
        ids.truncate(n);
        ids.sort_unstable_by(by_logit);
        ids.iter().map(|&id| (text(id), lp(id))).collect()
    };
    TokenLogprob {
        token: text(t),
        logprob: lp(t),
        top,
    }
}

/// A token's text on its own (empty without a tokenizer).
fn token_text(model: &Model, id: u32) -> String {
    model
        .tokenizer()
        .and_then(|tok| tok.decode(&[id]).ok())
        .unwrap_or_default()
}
