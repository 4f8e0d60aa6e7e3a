//! One request at a time against an in-process server on the shakespeare model:
//! greedy output equal to the runtime's, streaming, sampling options, logprobs,
//! echo, stop strings, chat, and every refused request.

mod common;

use common::{config, reference_greedy, text_of, TestServer};
use serde_json::{json, Value};

/// Texts of the streamed chunks of choice 0, and the final usage.
fn streamed_text(chunks: &[String], field: &str) -> (String, Value, Vec<Option<String>>) {
    assert_eq!(
        chunks.last().map(String::as_str),
        Some("[DONE]"),
        "[DONE] ends the stream"
    );
    let mut text = String::new();
    let mut usage = Value::Null;
    let mut finishes = Vec::new();
    for c in &chunks[..chunks.len() - 1] {
        let v: Value = serde_json::from_str(c).unwrap();
        assert!(v.get("error").is_none(), "error chunk {v}");
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        for ch in v["choices"].as_array().unwrap() {
            let piece = match field {
                "text" => ch["text"].as_str(),
                _ => ch["delta"]["content"].as_str(),
            };
            text.push_str(piece.unwrap_or(""));
            finishes.push(ch["finish_reason"].as_str().map(str::to_string));
        }
    }
    (text, usage, finishes)
}

#[test]
fn greedy_completion_equals_the_runtime_and_streams_the_same() {
    let Some(model) = common::model() else { return };
    let (ids, reference) = reference_greedy(&model, "ROMEO:", 40);
    let prompt_ids = model.tokenizer().unwrap().encode("ROMEO:").unwrap();
    let server = TestServer::start(model.clone(), config());

    let (status, v) = server.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 40, "temperature": 0, "model": "shakespeare"}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(text_of(&v), reference);
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["usage"]["prompt_tokens"], prompt_ids.len());
    assert_eq!(v["usage"]["completion_tokens"], ids.len());
    assert_eq!(v["usage"]["total_tokens"], prompt_ids.len() + ids.len());
    let finish = if ids.len() == 40 { "length" } else { "stop" };
    assert_eq!(v["choices"][0]["finish_reason"], finish);

    // Token ids, and a one-element batch of them, are the same prompt.
    for prompt in [json!(prompt_ids), json!([prompt_ids])] {
        let (status, v) = server.post(
            "/v1/completions",
            &json!({"prompt": prompt, "max_tokens": 40, "temperature": 0}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(text_of(&v), reference);
    }

    let chunks = server.stream(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 40, "temperature": 0, "stream": true,
                "stream_options": {"include_usage": true}}),
    );
    let (text, usage, finishes) = streamed_text(&chunks, "text");
    assert_eq!(text, reference);
    assert_eq!(usage["completion_tokens"], ids.len());
    assert_eq!(usage["prompt_tokens"], prompt_ids.len());
    assert_eq!(finishes.iter().flatten().collect::<Vec<_>>(), vec![finish]);
    assert!(chunks.len() > 5, "streamed in pieces: {}", chunks.len());
}

#[test]
fn sampling_choices_logprobs_echo_and_stop() {
    let Some(model) = common::model() else { return };
    let server = TestServer::start(model.clone(), config());
    let post = |body: Value| {
        let (status, v) = server.post("/v1/completions", &body);
        assert_eq!(status, 200, "{body} → {v}");
        v
    };

    // n = 2 with a seed: reproducible, and choice i uses seed + i.
    let body =
        json!({"prompt": "JULIET:", "max_tokens": 24, "temperature": 1.0, "seed": 7, "n": 2});
    let a = post(body.clone());
    let b = post(body);
    assert_eq!(a["choices"], b["choices"], "same seed, same choices");
    assert_eq!(a["choices"].as_array().unwrap().len(), 2);
    assert_eq!(a["choices"][1]["index"], 1);
    let one = post(json!({"prompt": "JULIET:", "max_tokens": 24, "temperature": 1.0, "seed": 8}));
    assert_eq!(a["choices"][1]["text"], one["choices"][0]["text"]);
    assert_ne!(a["choices"][0]["text"], a["choices"][1]["text"]);
    let used = a["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(used > 0 && used <= 48, "{used}");

    // Penalties change the greedy text, and stay reproducible.
    let plain = post(json!({"prompt": "ROMEO:", "max_tokens": 48, "temperature": 0}));
    let penalised = post(
        json!({"prompt": "ROMEO:", "max_tokens": 48, "temperature": 0,
                                 "frequency_penalty": 1.5, "presence_penalty": 1.0}),
    );
    assert_ne!(text_of(&plain), text_of(&penalised));

    // Logprobs: the legacy shape, greedy picks the best alternative.
    let v = post(json!({"prompt": "ROMEO:", "max_tokens": 6, "temperature": 0, "logprobs": 3}));
    let lp = &v["choices"][0]["logprobs"];
    let tokens = lp["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 6);
    let joined: String = tokens.iter().map(|t| t.as_str().unwrap()).collect();
    assert_eq!(joined, text_of(&v));
    let offsets: Vec<u64> = lp["text_offset"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .collect();
    assert_eq!(offsets[0], 0);
    assert!(offsets.windows(2).all(|w| w[0] <= w[1]));
    for i in 0..6 {
        let chosen = lp["token_logprobs"][i].as_f64().unwrap();
        let top = lp["top_logprobs"][i].as_object().unwrap();
        assert!(!top.is_empty() && top.len() <= 3);
        let best = top
            .values()
            .map(|x| x.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            chosen <= 0.0 && (chosen - best).abs() < 1e-6,
            "{chosen} vs {best}"
        );
    }

    // Echo puts the prompt first.
    let v = post(json!({"prompt": "ROMEO:", "max_tokens": 6, "temperature": 0, "echo": true}));
    let echoed = text_of(&v).strip_prefix("ROMEO:").expect("prompt first");
    assert!(
        !echoed.is_empty() && text_of(&plain).starts_with(echoed),
        "{echoed:?}"
    );

    // Stop strings: the text ends before the first occurrence, finish "stop".
    let full = text_of(&plain).to_string();
    let stop = full
        .char_indices()
        .nth(12)
        .map(|(i, _)| &full[i..])
        .unwrap()[..3]
        .to_string();
    let expected = &full[..full.find(&stop).unwrap()];
    let body = json!({"prompt": "ROMEO:", "max_tokens": 48, "temperature": 0,
                      "stop": [stop.clone(), "zzzz-not-there"]});
    let v = post(body.clone());
    assert_eq!(text_of(&v), expected, "stop {stop:?}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let mut streaming = body;
    streaming["stream"] = json!(true);
    let (text, _, finishes) = streamed_text(&server.stream("/v1/completions", &streaming), "text");
    assert_eq!(text, expected);
    assert_eq!(finishes.iter().flatten().collect::<Vec<_>>(), vec!["stop"]);
}

#[test]
fn chat_with_a_template_file_and_without_one() {
    let Some(model) = common::model() else { return };
    let plain = TestServer::start(model.clone(), config());
    let messages = json!([{"role": "user", "content": "What say you?"}]);
    let (status, v) = plain.post("/v1/chat/completions", &json!({"messages": messages}));
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no chat template"));

    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/chat.jinja"
    ))
    .unwrap();
    // The rendered prompt, generated greedily by the runtime, is the answer.
    let chat =
        mamba_server::chat::ChatTemplate::new(template.clone(), String::new(), String::new())
            .unwrap();
    let rendered = chat.render(messages.as_array().unwrap()).unwrap();
    assert!(
        rendered.starts_with("USER:") && rendered.ends_with("ROMEO:\n"),
        "{rendered:?}"
    );
    let (_, reference) = reference_greedy(&model, &rendered, 30);
    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            chat_template: Some(template),
            ..config()
        },
    );
    let body = json!({"messages": messages, "max_tokens": 30, "temperature": 0});
    let (status, v) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], reference);
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    let chunks = server.stream("/v1/chat/completions", &streaming);
    let first: Value = serde_json::from_str(&chunks[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    let (text, usage, _) = streamed_text(&chunks, "delta");
    assert_eq!(text, reference);
    assert!(usage.is_null(), "usage only when asked: {usage}");
    streaming["stream_options"] = json!({"include_usage": true});
    let chunks = server.stream("/v1/chat/completions", &streaming);
    let (text, usage, _) = streamed_text(&chunks, "delta");
    assert_eq!(text, reference);
    assert_eq!(usage["completion_tokens"], v["usage"]["completion_tokens"]);

    // Chat logprobs, and a template's raise_exception as a 400.
    let mut with_lp = body.clone();
    with_lp["logprobs"] = json!(true);
    with_lp["top_logprobs"] = json!(2);
    with_lp["max_tokens"] = json!(3);
    let (status, v) = server.post("/v1/chat/completions", &with_lp);
    assert_eq!(status, 200, "{v}");
    let content = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(content.len(), 3);
    assert_eq!(content[0]["top_logprobs"].as_array().unwrap().len(), 2);
    let (status, v) = server.post(
        "/v1/chat/completions",
        &json!({"messages": [{"role": "tool", "content": "x"}]}),
    );
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown role: tool"),
        "{v}"
    );
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_goes_on() {
    let Some(model) = common::model() else { return };
    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            max_body: 4096,
            ..config()
        },
    );
    let vocab = model.vocab_size();
    let big = "x".repeat(5000);
    let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
        ("/v1/completions", "{not json".into(), 400, None),
        ("/v1/completions", "[1, 2]".into(), 400, None),
        (
            "/v1/completions",
            json!({"max_tokens": 4}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": ""}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": []}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [1, vocab]}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": [1, -3]}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": ["a", "b"]}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": 5}).to_string(),
            400,
            Some("prompt"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "model": "gpt-4"}).to_string(),
            404,
            Some("model"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "temperature": "hot"}).to_string(),
            400,
            Some("temperature"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "temperature": -1}).to_string(),
            400,
            Some("temperature"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "top_p": 0}).to_string(),
            400,
            Some("top_p"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "top_k": -1}).to_string(),
            400,
            Some("top_k"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "min_p": 2}).to_string(),
            400,
            Some("min_p"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "max_tokens": 0}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "max_tokens": 100000}).to_string(),
            400,
            Some("max_tokens"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "n": 5}).to_string(),
            400,
            Some("n"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "logprobs": 21}).to_string(),
            400,
            Some("logprobs"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "echo": "yes"}).to_string(),
            400,
            Some("echo"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "stop": ["1", "2", "3", "4", "5"]}).to_string(),
            400,
            Some("stop"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "frequency_penalty": 3}).to_string(),
            400,
            Some("frequency_penalty"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "presence_penalty": -2.5}).to_string(),
            400,
            Some("presence_penalty"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "repetition_penalty": 0}).to_string(),
            400,
            Some("repetition_penalty"),
        ),
        (
            "/v1/completions",
            json!({"prompt": "a", "seed": "s"}).to_string(),
            400,
            Some("seed"),
        ),
        (
            "/v1/completions",
            json!({"prompt": big}).to_string(),
            413,
            None,
        ),
        (
            "/v1/chat/completions",
            json!({"messages": []}).to_string(),
            400,
            None,
        ),
        (
            "/detokenize",
            json!({"tokens": [vocab]}).to_string(),
            400,
            Some("tokens"),
        ),
        (
            "/tokenize",
            json!({"text": "a"}).to_string(),
            400,
            Some("content"),
        ),
        ("/v1/nothing", "{}".into(), 404, None),
    ];
    for (path, body, status, param) in &cases {
        let (got, v) = server.post_raw(path, body, &[]);
        let shown = &body[..body.len().min(80)];
        assert_eq!(got, *status, "{path} {shown} → {v}");
        let err = &v["error"];
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{shown} → {v}"
        );
        assert!(err["type"].is_string() && err.get("code").is_some(), "{v}");
        if let Some(p) = param {
            assert_eq!(err["param"], *p, "{shown} → {v}");
        }
    }
    // Wrong method: JSON too.
    let (status, text) = server.get("/v1/completions");
    assert_eq!(status, 405);
    assert!(serde_json::from_str::<Value>(&text).unwrap()["error"].is_object());

    // Still serving, and the statuses were counted.
    let (status, v) = server.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 3}),
    );
    assert_eq!(status, 200, "{v}");
    assert!(server.metric("mamba_requests_total{code=\"400\"}") >= 20.0);
    assert_eq!(server.metric("mamba_requests_total{code=\"413\"}"), 1.0);
}

#[test]
fn api_key_tokenize_models_health_and_page() {
    let Some(model) = common::model() else { return };
    let server = TestServer::start(
        model.clone(),
        mamba_server::Config {
            api_key: Some("sesame".into()),
            ..config()
        },
    );
    let body = json!({"prompt": "ROMEO:", "max_tokens": 2}).to_string();
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong")],
        vec![("Authorization", "sesame")],
    ] {
        let (status, v) = server.post_raw("/v1/completions", &body, &headers);
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    let auth = [("Authorization", "Bearer sesame")];
    let (status, _) = server.post_raw("/v1/completions", &body, &auth);
    assert_eq!(status, 200);
    let (status, text) = server.get("/health");
    assert_eq!((status, text.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, page) = server.get("/");
    assert_eq!(status, 200);
    assert!(page.contains("<html") && page.contains("/v1/completions"));
    let (status, _) = server.get("/metrics");
    assert_eq!(status, 401, "metrics need the key");

    let (status, v) = server.post_raw(
        "/tokenize",
        &json!({"content": "ROMEO: hi"}).to_string(),
        &auth,
    );
    assert_eq!(status, 200);
    let expected = model.tokenizer().unwrap().encode("ROMEO: hi").unwrap();
    assert_eq!(v["tokens"], json!(expected));
    let (status, v) = server.post_raw(
        "/detokenize",
        &json!({"tokens": expected}).to_string(),
        &auth,
    );
    assert_eq!(status, 200);
    assert_eq!(v["content"], "ROMEO: hi");

    let open = TestServer::start(model, config());
    let (status, text) = open.get("/v1/models");
    assert_eq!(status, 200);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["data"][0]["id"], "shakespeare");
    assert_eq!(v["object"], "list");
}

/// `ignore_eos`: with end-of-sequence remapped to a token greedy decoding emits, a
/// plain request stops there and an `ignore_eos` one runs on to `max_tokens` with
/// the unchanged model's text.
#[test]
fn ignore_eos_runs_past_the_end_of_sequence_token() {
    let Some(model) = common::model() else { return };
    let src = mamba_testkit::shared_path("models/mamba-shakespeare").unwrap();
    let (ids, reference) = reference_greedy(&model, "ROMEO:", 24);
    assert_eq!(
        ids.len(),
        24,
        "the model's own EOS comes early: pick another prompt"
    );
    // The first greedy token (after the first) not seen before becomes EOS.
    let k = (1..ids.len())
        .find(|&i| !ids[..i].contains(&ids[i]))
        .expect("greedy decoding repeats one token");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    cfg["eos_token_id"] = json!(ids[k]);
    std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    let out = dir.path().join("eos.mbin");
    mamba_convert::convert(&mamba_convert::ConvertOptions {
        input: mamba_convert::Input::Dir(dir.path().to_path_buf()),
        output: out.clone(),
        preset: "f32".parse().unwrap(),
        force: true,
        tokenizer: None,
        progress: false,
    })
    .unwrap();
    let remapped = std::sync::Arc::new(mamba_runtime::Model::open(&out).unwrap());
    assert_eq!(remapped.eos_id(), Some(ids[k]));
    let server = TestServer::start(remapped, config());
    let body = json!({"prompt": "ROMEO:", "max_tokens": 24, "temperature": 0});
    let (status, v) = server.post("/v1/completions", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], k);
    let mut ignoring = body.clone();
    ignoring["ignore_eos"] = json!(true);
    let (status, v) = server.post("/v1/completions", &ignoring);
    assert_eq!(status, 200, "{v}");
    assert_eq!(text_of(&v), reference);
    assert_eq!(v["usage"]["completion_tokens"], ids.len());
}

/// A chat template stored in the `.mbin` (here by `mamba-convert`'s override) is
/// the server's chat template when none is given at start-up, and answers as the
/// same template given with `--chat-template` does.
#[test]
fn the_chat_template_carried_by_the_model_file_serves_chat() {
    let Some(model) = common::model() else { return };
    let src = mamba_testkit::shared_path("models/mamba-shakespeare").unwrap();
    let template_path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat.jinja");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("chat.mbin");
    let mut overrides = mamba_convert::Overrides::default();
    overrides.chat_template = Some(template_path.into());
    mamba_convert::convert_with(
        &mamba_convert::ConvertOptions {
            input: mamba_convert::Input::Dir(src),
            output: out.clone(),
            preset: "f32".parse().unwrap(),
            force: true,
            tokenizer: None,
            progress: false,
        },
        &overrides,
    )
    .unwrap();
    let carrying = std::sync::Arc::new(mamba_runtime::Model::open(&out).unwrap());
    let template = std::fs::read_to_string(template_path).unwrap();
    assert_eq!(carrying.chat_template(), Some(template.as_str()));

    let body = json!({"messages": [{"role": "user", "content": "What say you?"}],
                      "max_tokens": 20, "temperature": 0});
    let from_file = TestServer::start(carrying, config());
    let (status, a) = from_file.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{a}");
    let from_flag = TestServer::start(
        model,
        mamba_server::Config {
            chat_template: Some(template),
            ..config()
        },
    );
    let (status, b) = from_flag.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{b}");
    assert_eq!(
        a["choices"][0]["message"]["content"],
        b["choices"][0]["message"]["content"]
    );
    assert!(!a["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
}

/// `echo` with `logprobs` scores the prompt: what evaluation harnesses (lm-eval's
/// loglikelihood) send, usually with `max_tokens` 0.
#[test]
fn echo_with_logprobs_scores_the_prompt_exactly() {
    let Some(model) = common::model() else { return };
    // Longer than one step's scoring budget, so the prompt is scored in pieces.
    let prompt = common::val_ids(&model, 300);
    let v = model.vocab_size();
    let all = mamba_runtime::Session::new(&model)
        .logits_all(&prompt)
        .unwrap();
    // log_softmax of row j - 1 at prompt[j], in f64 like the server.
    let want: Vec<f64> = (1..prompt.len())
        .map(|j| {
            let row = &all[(j - 1) * v..j * v];
            let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&x| (x as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            row[prompt[j] as usize] as f64 - lse
        })
        .collect();
    let tok = model.tokenizer().unwrap();
    let prompt_text = tok.decode(&prompt).unwrap();
    let server = TestServer::start(model.clone(), config());

    let (status, r) = server.post(
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 0, "echo": true, "logprobs": 2}),
    );
    assert_eq!(status, 200, "{r}");
    let c = &r["choices"][0];
    assert_eq!(c["text"], prompt_text.as_str());
    assert_eq!(c["finish_reason"], "length");
    assert_eq!(r["usage"]["completion_tokens"], 0);
    assert_eq!(r["usage"]["prompt_tokens"], prompt.len());
    let lp = &c["logprobs"];
    let tokens: Vec<&str> = lp["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let each: Vec<String> = prompt.iter().map(|&t| tok.decode(&[t]).unwrap()).collect();
    assert_eq!(tokens, each, "one entry per prompt token");
    assert!(lp["token_logprobs"][0].is_null() && lp["top_logprobs"][0].is_null());
    assert_eq!(lp["text_offset"][0], 0);
    for (j, w) in want.iter().enumerate() {
        let got = lp["token_logprobs"][j + 1].as_f64().unwrap();
        assert!((got - w).abs() < 1e-4, "token {}: {got} vs {w}", j + 1);
        let top = lp["top_logprobs"][j + 1].as_object().unwrap();
        assert_eq!(top.len(), 2);
        let best = top
            .values()
            .map(|x| x.as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        assert!(
            got <= best + 1e-6,
            "token {}: {got} above the best {best}",
            j + 1
        );
    }

    // With tokens generated too: the prompt's entries, then the generated ones,
    // whose offsets start after the echoed text.
    let (status, g) = server.post(
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 4, "temperature": 0, "echo": true,
                "logprobs": 2, "ignore_eos": true}),
    );
    assert_eq!(status, 200, "{g}");
    let glp = &g["choices"][0]["logprobs"];
    assert_eq!(glp["tokens"].as_array().unwrap().len(), prompt.len() + 4);
    for j in 0..prompt.len() {
        assert_eq!(
            glp["token_logprobs"][j], lp["token_logprobs"][j],
            "entry {j}"
        );
    }
    let chars = prompt_text.chars().count() as u64;
    assert_eq!(glp["text_offset"][prompt.len()], chars);

    // Streamed: the echo chunk carries the prompt's entries.
    let chunks = server.stream(
        "/v1/completions",
        &json!({"prompt": prompt, "max_tokens": 0, "echo": true, "logprobs": 2,
                "stream": true}),
    );
    let first: Value = serde_json::from_str(&chunks[0]).unwrap();
    assert_eq!(first["choices"][0]["text"], prompt_text.as_str());
    assert_eq!(
        first["choices"][0]["logprobs"]["token_logprobs"],
        lp["token_logprobs"]
    );
    assert_eq!(chunks.last().map(String::as_str), Some("[DONE]"));

    // Echo alone may ask for nothing generated; without echo, max_tokens 0 is refused.
    let (status, e) = server.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 0, "echo": true}),
    );
    assert_eq!(status, 200, "{e}");
    assert_eq!(text_of(&e), "ROMEO:");
    let (status, e) = server.post(
        "/v1/completions",
        &json!({"prompt": "ROMEO:", "max_tokens": 0}),
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["param"], "max_tokens");
}
