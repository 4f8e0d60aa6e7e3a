//! Counters, gauges and histograms, rendered in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Upper bounds (seconds) of the time-to-first-token buckets.
const TTFT_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Upper bounds (seconds) of the per-token latency buckets.
const TOKEN_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// A cumulative histogram with fixed buckets.
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>, // one per bound, plus +Inf
    sum: f64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, x: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| x <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += x;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, c) in self.counts.iter().enumerate() {
            cum += c;
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cum}");
        }
        let _ = writeln!(out, "{name}_sum {}\n{name}_count {cum}", self.sum);
    }
}

/// Every metric the server exports; shared by the handlers and the scheduler.
pub struct Metrics {
    requests: Mutex<BTreeMap<u16, u64>>,
    /// Prompt tokens of admitted requests.
    pub prompt_tokens: AtomicU64,
    /// Tokens generated (every choice).
    pub generated_tokens: AtomicU64,
    /// Requests waiting for a slot.
    pub queue_depth: AtomicU64,
    /// Sequences holding a slot (prefilling or decoding).
    pub active_sequences: AtomicU64,
    /// Admissions that found a cached prefix.
    pub cache_hits: AtomicU64,
    /// Admissions that found none.
    pub cache_misses: AtomicU64,
    /// Prompt tokens not prefilled thanks to the cache.
    pub cache_reused_tokens: AtomicU64,
    /// Bytes held by the state cache.
    pub cache_bytes: AtomicU64,
    ttft: Mutex<Histogram>,
    token_latency: Mutex<Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            prompt_tokens: AtomicU64::new(0),
            generated_tokens: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            active_sequences: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_reused_tokens: AtomicU64::new(0),
            cache_bytes: AtomicU64::new(0),
            ttft: Mutex::new(Histogram::new(&TTFT_BUCKETS)),
            token_latency: Mutex::new(Histogram::new(&TOKEN_BUCKETS)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves plain numbers behind: still usable.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Counts one answered request by status code.
    pub fn request(&self, status: u16) {
        *lock(&self.requests).entry(status).or_insert(0) += 1;
    }

    /// Records a time to first token.
    pub fn observe_ttft(&self, secs: f64) {
        lock(&self.ttft).observe(secs);
    }

    /// Records the time between two tokens of one sequence.
    pub fn observe_token_latency(&self, secs: f64) {
        lock(&self.token_latency).observe(secs);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP mamba_requests_total HTTP requests answered, by status code.\n\
             # TYPE mamba_requests_total counter"
        );
        for (code, n) in lock(&self.requests).iter() {
            let _ = writeln!(out, "mamba_requests_total{{code=\"{code}\"}} {n}");
        }
        let scalars: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "mamba_prompt_tokens_total",
                "counter",
                "Prompt tokens of admitted requests.",
                &self.prompt_tokens,
            ),
            (
                "mamba_generated_tokens_total",
                "counter",
                "Tokens generated.",
                &self.generated_tokens,
            ),
            (
                "mamba_queue_depth",
                "gauge",
                "Requests waiting for a slot.",
                &self.queue_depth,
            ),
            (
                "mamba_active_sequences",
                "gauge",
                "Sequences prefilling or decoding.",
                &self.active_sequences,
            ),
            (
                "mamba_cache_hits_total",
                "counter",
                "Requests that resumed from a cached prefix.",
                &self.cache_hits,
            ),
            (
                "mamba_cache_misses_total",
                "counter",
                "Requests that found no cached prefix.",
                &self.cache_misses,
            ),
            (
                "mamba_cache_reused_tokens_total",
                "counter",
                "Prompt tokens taken from the state cache instead of prefilled.",
                &self.cache_reused_tokens,
            ),
            (
                "mamba_cache_bytes",
                "gauge",
                "Bytes held by the state cache.",
                &self.cache_bytes,
            ),
        ];
        for (name, kind, help, v) in scalars {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                v.load(Relaxed)
            );
        }
        lock(&self.ttft).render(
            &mut out,
            "mamba_time_to_first_token_seconds",
            "Time from a request's arrival to its first generated token.",
        );
        lock(&self.token_latency).render(
            &mut out,
            "mamba_token_latency_seconds",
            "Time between two generated tokens of one sequence.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request(200);
        m.request(200);
        m.request(429);
        m.observe_ttft(0.03);
        m.observe_ttft(100.0);
        let t = m.render();
        assert!(t.contains("mamba_requests_total{code=\"200\"} 2\n"));
        assert!(t.contains("mamba_requests_total{code=\"429\"} 1\n"));
        assert!(t.contains("mamba_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"));
        assert!(t.contains("mamba_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(t.contains("mamba_time_to_first_token_seconds_count 2\n"));
        assert!(t.contains("mamba_cache_bytes 0\n"));
    }
}
