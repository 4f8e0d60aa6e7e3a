//! Several requests at once: continuous batching gives each client what it gets
//! alone, the state cache changes nothing but speed, a client that leaves frees
//! its slot, a full queue answers 429, and the time limit ends a request.

mod common;

use common::{config, reference_greedy, text_of, TestServer};
use serde_json::{json, Value};
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn sixteen_concurrent_clients_get_what_they_get_alone() {
    let Some(model) = common::model() else { return };
    let val = std::fs::read_to_string(
        mamba_testkit::shared_path("models/mamba-shakespeare/val.txt").unwrap(),
    )
    .unwrap();
    // Different prompts and lengths; one long enough to be prefilled in several
    // steps, interleaved with the others' decoding.
    let mut prompts: Vec<String> = val
        .split("\n\n")
        .filter(|p| p.len() > 20)
        .take(15)
        .map(|p| p.chars().take(40 + p.len() % 200).collect())
        .collect();
    prompts.push(val.chars().take(6000).collect());
    assert_eq!(prompts.len(), 16);
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| reference_greedy(&model, p, 24).1)
        .collect();

    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            parallel: 8,
            ..config()
        },
    );
    let t0 = Instant::now();
    let got: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = prompts
            .iter()
            .map(|p| {
                let server = &server;
                s.spawn(move || {
                    let (status, v) = server.post(
                        "/v1/completions",
                        &json!({"prompt": p, "max_tokens": 24, "temperature": 0}),
                    );
                    assert_eq!(status, 200, "{v}");
                    text_of(&v).to_string()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    eprintln!("16 concurrent requests served in {:.2?}", t0.elapsed());
    for (i, (g, a)) in got.iter().zip(&alone).enumerate() {
        assert_eq!(g, a, "client {i}");
    }
    assert!(server.wait_metric("mamba_active_sequences", 0.0, 10));
}

/// Greedy completion with logprobs of a token-id prompt: (text, token logprobs).
fn scored(server: &TestServer, prompt: &[u32]) -> (String, Vec<f64>) {
    let (status, v) = server.post(
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 16, "temperature": 0, "logprobs": 2}),
    );
    assert_eq!(status, 200, "{v}");
    let lps = v["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (text_of(&v).to_string(), lps)
}

/// Two servers on `model`: one with the state cache, one without.
fn with_and_without_cache(
    model: &std::sync::Arc<mamba_runtime::Model>,
) -> (TestServer, TestServer) {
    let cached = TestServer::start(model.clone(), config());
    let uncached = TestServer::start(
        model.clone(),
        mamba_server::Config {
            cache_bytes: 0,
            ..config()
        },
    );
    (cached, uncached)
}

fn assert_same(a: &(String, Vec<f64>), b: &(String, Vec<f64>)) {
    assert_eq!(a.0, b.0);
    assert_eq!(a.1.len(), b.1.len());
    for (x, y) in a.1.iter().zip(&b.1) {
        assert!((x - y).abs() <= 1e-5, "{x} vs {y}");
    }
}

#[test]
fn the_state_cache_reuses_prefixes_and_changes_nothing() {
    let Some(model) = common::model() else { return };
    let tok = model.tokenizer().unwrap();
    let base = tok
        .encode("KING RICHARD II:\nNow, my lord, what say you to this matter of the crown?")
        .unwrap();
    let longer: Vec<u32> = base
        .iter()
        .chain(&tok.encode(" And what of the queen?").unwrap())
        .copied()
        .collect();
    let (cached, uncached) = with_and_without_cache(&model);

    let first = scored(&cached, &base);
    assert_eq!(cached.metric("mamba_cache_misses_total"), 1.0);
    assert!(cached.metric("mamba_cache_bytes") > 0.0);
    let again = scored(&cached, &base);
    assert_eq!(cached.metric("mamba_cache_hits_total"), 1.0);
    assert_eq!(
        cached.metric("mamba_cache_reused_tokens_total"),
        base.len() as f64
    );
    assert_same(&first, &again);

    let reused_before = cached.metric("mamba_cache_reused_tokens_total");
    let long_cached = scored(&cached, &longer);
    assert_eq!(cached.metric("mamba_cache_hits_total"), 2.0);
    let reused = cached.metric("mamba_cache_reused_tokens_total") - reused_before;
    assert!(reused >= base.len() as f64, "reused {reused}");

    let plain = scored(&uncached, &base);
    let long_plain = scored(&uncached, &longer);
    assert_eq!(uncached.metric("mamba_cache_hits_total"), 0.0);
    assert_eq!(uncached.metric("mamba_cache_bytes"), 0.0);
    assert_same(&first, &plain);
    assert_same(&long_cached, &long_plain);

    // A continuation of a finished request resumes from its end: the prompt plus
    // every generated token but the last was cached.
    let text_ids = tok.encode(&first.0).unwrap();
    let mut continued = base.clone();
    continued.extend(&text_ids);
    let before = cached.metric("mamba_cache_reused_tokens_total");
    let c = scored(&cached, &continued);
    let reused = cached.metric("mamba_cache_reused_tokens_total") - before;
    assert!(
        reused > base.len() as f64,
        "reused {reused} of {}",
        continued.len()
    );
    assert_same(&c, &scored(&uncached, &continued));
}

/// Prompts that share a long prefix but part before either ends (one document,
/// two questions) share the prefill up to the last checkpoint before they part.
#[test]
fn prompts_that_part_after_a_long_shared_prefix_reuse_its_checkpoints() {
    let Some(model) = common::model() else { return };
    let doc = common::val_ids(&model, 1200);
    let tok = model.tokenizer().unwrap();
    let ask =
        |q: &str| -> Vec<u32> { doc.iter().chain(&tok.encode(q).unwrap()).copied().collect() };
    let (a, b) = (ask("\nFirst question?"), ask("\nAnother one?"));
    let (cached, uncached) = with_and_without_cache(&model);
    let first = scored(&cached, &a);
    assert_eq!(cached.metric("mamba_cache_hits_total"), 0.0);
    let second = scored(&cached, &b);
    assert_eq!(cached.metric("mamba_cache_hits_total"), 1.0);
    let reused = cached.metric("mamba_cache_reused_tokens_total");
    let every = mamba_server::scheduler::CHECKPOINT_EVERY;
    let checkpoint = doc.len() / every * every;
    assert!(
        checkpoint > 0,
        "the document is shorter than one checkpoint"
    );
    assert!(
        reused >= checkpoint as f64 && reused <= doc.len() as f64,
        "reused {reused} of the {}-token shared prefix",
        doc.len()
    );
    assert_same(&first, &scored(&uncached, &a));
    assert_same(&second, &scored(&uncached, &b));
}

#[test]
fn a_client_that_leaves_frees_its_slot() {
    let Some(model) = common::model() else { return };
    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            parallel: 1,
            max_tokens_limit: 100_000,
            ..config()
        },
    );
    let mut s = server.open_stream(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 100_000, "temperature": 0.8, "stream": true,
                "ignore_eos": true}),
    );
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap();
    assert!(n > 0 && buf.starts_with(b"HTTP/1.1 200"));
    assert_eq!(server.metric("mamba_active_sequences"), 1.0);
    drop(s);
    let t0 = Instant::now();
    assert!(
        server.wait_metric("mamba_active_sequences", 0.0, 10),
        "slot not freed"
    );
    eprintln!("slot freed {:.2?} after the client left", t0.elapsed());
    let (status, v) = server.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 4}),
    );
    assert_eq!(status, 200, "{v}");
}

#[test]
fn a_full_queue_answers_429_and_the_time_limit_ends_requests() {
    let Some(model) = common::model() else { return };
    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            parallel: 1,
            queue: 1,
            max_tokens_limit: 100_000,
            ..config()
        },
    );
    // ignore_eos: a sampled end-of-sequence must not end it early (the slot would
    // free and the queue empty).
    let long =
        json!({"prompt": "ROMEO:", "max_tokens": 100_000, "stream": true, "ignore_eos": true});
    let mut active = server.open_stream("/v1/completions", &long);
    let mut buf = [0u8; 256];
    assert!(active.read(&mut buf).unwrap() > 0);
    // The second waits in the queue (in its own thread); the third is refused.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| {
            server.post(
                "/v1/completions",
                &json!({"prompt": "JULIET:", "max_tokens": 3}),
            )
        });
        assert!(
            server.wait_metric("mamba_queue_depth", 1.0, 10),
            "second request not queued"
        );
        let (status, v) = server.post("/v1/completions", &json!({"prompt": "x", "max_tokens": 3}));
        assert_eq!(status, 429, "{v}");
        assert_eq!(v["error"]["code"], "queue_full");
        let resp = ureq::post(&server.url("/v1/completions"))
            .send_string(&json!({"prompt": "x"}).to_string());
        match resp {
            Err(ureq::Error::Status(429, r)) => assert_eq!(r.header("Retry-After"), Some("1")),
            other => panic!("expected 429, got {other:?}"),
        }
        drop(active);
        let (status, v) = waiting.join().unwrap();
        assert_eq!(status, 200, "{v}");
    });

    // The time limit: a long generation ends with what it made, as "length".
    let quick = TestServer::start(
        model,
        mamba_server::Config {
            timeout: Duration::from_millis(500),
            max_tokens_limit: 100_000,
            ..config()
        },
    );
    let t0 = Instant::now();
    let (status, v): (u16, Value) = quick.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 100_000, "temperature": 0.8,
                "ignore_eos": true}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let made = v["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(made > 0 && made < 100_000);
    assert!(t0.elapsed() < Duration::from_secs(10));
}
