//! Sampling: a pure function of (logits, parameters, recent tokens, coin), plus a
//! seeded generator that supplies the coin.
//!
//! Order of the transforms, as in transformers' logits processors: repetition
//! penalty, then OpenAI's frequency and presence penalties, temperature, top-k,
//! top-p, min-p, then a draw. Temperature 0 is greedy (after the penalties).

use crate::error::{Result, RuntimeError};

/// Sampling parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; 0 means greedy (argmax). Range `[0, 100]`.
    pub temperature: f32,
    /// Keep only the k most likely tokens; 0 disables.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches p; 1 disables. Range `(0, 1]`.
    pub top_p: f32,
    /// Drop tokens with probability below `min_p × max probability`; 0 disables. Range `[0, 1]`.
    pub min_p: f32,
    /// Repetition penalty as transformers defines it (divide positive logits,
    /// multiply negative ones, of tokens seen in the window); 1 disables. Range `(0, 10]`.
    pub repeat_penalty: f32,
    /// Window of recent tokens the penalty looks at (prompt included); 0 disables.
    pub repeat_last_n: usize,
    /// OpenAI's frequency penalty: subtracted from a token's logit once per time
    /// the token was generated so far (the prompt does not count); 0 disables.
    /// Range `[-2, 2]`.
    pub frequency_penalty: f32,
    /// OpenAI's presence penalty: subtracted once from the logit of every token
    /// generated so far (the prompt does not count); 0 disables. Range `[-2, 2]`.
    pub presence_penalty: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplerParams {
    /// The common local-runner defaults.
    fn default() -> Self {
        SamplerParams {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }
}

impl SamplerParams {
    /// Greedy decoding (no penalty).
    pub fn greedy() -> Self {
        SamplerParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        }
    }

    /// Checks every range; an impossible value is an error, never clamped.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: String, why| Err(RuntimeError::BadSampling { name, value, why });
        if !(self.temperature.is_finite() && (0.0..=100.0).contains(&self.temperature)) {
            return bad(
                "temperature",
                self.temperature.to_string(),
                "must be in [0, 100]",
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", self.top_p.to_string(), "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", self.min_p.to_string(), "must be in [0, 1]");
        }
        if !(self.repeat_penalty > 0.0 && self.repeat_penalty <= 10.0) {
            return bad(
                "repeat_penalty",
                self.repeat_penalty.to_string(),
                "must be in (0, 10]",
            );
        }
        if !(-2.0..=2.0).contains(&self.frequency_penalty) {
            return bad(
                "frequency_penalty",
                self.frequency_penalty.to_string(),
                "must be in [-2, 2]",
            );
        }
        if !(-2.0..=2.0).contains(&self.presence_penalty) {
            return bad(
                "presence_penalty",
                self.presence_penalty.to_string(),
                "must be in [-2, 2]",
            );
        }
        Ok(())
    }
}

/// Index of the largest value (the first on ties), as `torch.argmax`.
pub fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Applies transformers' repetition penalty to `logits` for each distinct id in `recent`.
pub fn apply_repeat_penalty(logits: &mut [f32], recent: &[u32], penalty: f32) {
    if penalty == 1.0 {
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(recent.len());
    for &id in recent {
        if let Some(l) = logits.get_mut(id as usize) {
            if seen.insert(id) {
                *l = if *l < 0.0 { *l * penalty } else { *l / penalty };
            }
        }
    }
}

/// Applies OpenAI's frequency and presence penalties to `logits`:
/// `logit[j] -= count[j] × frequency + (count[j] > 0) × presence`, where `count[j]`
/// is how many times `j` occurs in `generated`.
pub fn apply_frequency_presence(
    logits: &mut [f32],
    generated: &[u32],
    frequency: f32,
    presence: f32,
) {
    if frequency == 0.0 && presence == 0.0 {
        return;
    }
    let mut counts = std::collections::HashMap::with_capacity(generated.len());
    for &id in generated {
        *counts.entry(id).or_insert(0u32) += 1;
    }
    for (id, n) in counts {
        if let Some(l) = logits.get_mut(id as usize) {
            *l -= n as f32 * frequency + presence;
        }
    }
}

/// Reusable buffers of [`sample`], so sampling does not allocate per token.
#[derive(Clone, Debug, Default)]
pub struct SampleScratch {
    penalised: Vec<f32>,
    cand: Vec<(f32, u32)>,
}

/// Picks a token: the pure core of sampling. `recent` are the last tokens (the
/// repetition penalty's window is applied here), `generated` the tokens generated
/// so far (what the frequency and presence penalties count), `coin` is uniform in
/// `[0, 1)`.
pub fn sample(
    logits: &[f32],
    p: &SamplerParams,
    recent: &[u32],
    generated: &[u32],
    coin: f32,
    scratch: &mut SampleScratch,
) -> u32 {
    let window = &recent[recent.len().saturating_sub(p.repeat_last_n)..];
    let repeat = p.repeat_penalty != 1.0 && !window.is_empty();
    let openai = (p.frequency_penalty != 0.0 || p.presence_penalty != 0.0) && !generated.is_empty();
    let logits = if repeat || openai {
        scratch.penalised.clear();
        scratch.penalised.extend_from_slice(logits);
        if repeat {
            apply_repeat_penalty(&mut scratch.penalised, window, p.repeat_penalty);
        }
        apply_frequency_presence(
            &mut scratch.penalised,
            generated,
            p.frequency_penalty,
            p.presence_penalty,
        );
        &scratch.penalised[..]
    } else {
        logits
    };
    let work = &mut scratch.cand;
    if p.temperature == 0.0 {
        return argmax(logits);
    }
    work.clear();
    work.extend(
        logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (l / p.temperature, i as u32)),
    );
    // Sort descending by logit; ties broken by id so the result is deterministic.
    let k = if p.top_k == 0 {
        work.len()
    } else {
        p.top_k.min(work.len())
    };
    if k < work.len() {
        work.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        work.truncate(k);
    }
    work.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    // Softmax over the survivors.
    let max = work[0].0;
    let mut sum = 0.0f64;
    for e in work.iter_mut() {
        e.0 = (e.0 - max).exp();
        sum += e.0 as f64;
    }
    for e in work.iter_mut() {
        e.0 = (e.0 as f64 / sum) as f32;
    }
    // top-p: keep the smallest prefix reaching p (at least one token).
    if p.top_p < 1.0 {
        let mut cum = 0.0f32;
        let mut keep = work.len();
        for (i, e) in work.iter().enumerate() {
            cum += e.0;
            if cum >= p.top_p {
                keep = i + 1;
                break;
            }
        }
        work.truncate(keep);
    }
    // min-p: relative to the most likely token.
    if p.min_p > 0.0 {
        let floor = work[0].0 * p.min_p;
        let keep = work.iter().take_while(|e| e.0 >= floor).count().max(1);
        work.truncate(keep);
    }
    let total: f32 = work.iter().map(|e| e.0).sum();
    let target = coin * total;
    let mut cum = 0.0f32;
    for e in work.iter() {
        cum += e.0;
        if target < cum {
            return e.1;
        }
    }
    work.last().expect("at least one candidate").1
}

/// A seeded sampler: parameters, a PCG32 generator, the tokens it has drawn
/// (for the frequency and presence penalties) and scratch space.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: Pcg32,
    generated: Vec<u32>,
    work: SampleScratch,
}

impl Sampler {
    /// Validates the parameters and seeds the generator.
    pub fn new(params: SamplerParams) -> Result<Sampler> {
        params.validate()?;
        let rng = Pcg32::new(params.seed);
        Ok(Sampler {
            params,
            rng,
            generated: Vec::new(),
            work: SampleScratch::default(),
        })
    }

    /// The parameters.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Tokens drawn so far by this sampler (what the frequency and presence
    /// penalties count).
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }

    /// Draws the next token from `logits`, given the sequence's recent tokens, and
    /// records it as generated.
    pub fn sample(&mut self, logits: &[f32], recent: &[u32]) -> u32 {
        let coin = self.rng.next_f32();
        let t = sample(
            logits,
            &self.params,
            recent,
            &self.generated,
            coin,
            &mut self.work,
        );
        self.generated.push(t);
        t
    }
}

/// PCG32 (O'Neill 2014, `pcg32_random_r`): small, fast, seedable, reproducible.
#[derive(Clone, Debug)]
pub struct Pcg32 {
    state: u64,
    inc: u64,
}

impl Pcg32 {
    /// Seeds the generator (stream 0x5851f42d4c957f2d-derived increment).
    pub fn new(seed: u64) -> Pcg32 {
        let mut r = Pcg32 {
            state: 0,
            inc: (0xda3e_39cb_94b9_5bdb << 1) | 1,
        };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    /// The next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(self.inc);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        let rot = (old >> 59) as u32;
        xorshifted.rotate_right(rot)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> SampleScratch {
        SampleScratch::default()
    }

    #[test]
    fn greedy_is_argmax_and_ignores_the_coin() {
        let l = [0.1, 2.0, -1.0, 2.0, 0.5];
        let p = SamplerParams::greedy();
        for coin in [0.0, 0.5, 0.999] {
            assert_eq!(
                sample(&l, &p, &[], &[], coin, &mut scratch()),
                1,
                "first maximum wins ties"
            );
        }
    }

    #[test]
    fn repetition_penalty_as_transformers() {
        let mut l = vec![2.0, -2.0, 1.0];
        apply_repeat_penalty(&mut l, &[0, 1, 0], 2.0);
        assert_eq!(
            l,
            vec![1.0, -4.0, 1.0],
            "positive divided, negative multiplied, each id once"
        );
        // With a penalty, greedy picks another token.
        let p = SamplerParams {
            repeat_penalty: 3.0,
            repeat_last_n: 4,
            ..SamplerParams::greedy()
        };
        assert_eq!(sample(&[3.0, 2.0], &p, &[0], &[], 0.0, &mut scratch()), 1);
        // Outside the window, no penalty.
        let p = SamplerParams {
            repeat_penalty: 3.0,
            repeat_last_n: 1,
            ..SamplerParams::greedy()
        };
        assert_eq!(
            sample(&[3.0, 2.0], &p, &[0, 5], &[], 0.0, &mut scratch()),
            0
        );
    }

    #[test]
    fn frequency_and_presence_penalties_as_openai() {
        // logit[j] -= count[j] × frequency + (count[j] > 0) × presence.
        let mut l = vec![1.0f32, 1.0, 1.0];
        apply_frequency_presence(&mut l, &[0, 0, 1, 9], 0.5, 0.25);
        assert_eq!(l, vec![-0.25, 0.25, 1.0], "id 9 is outside the vocabulary");
        let mut l = vec![1.0f32, -1.0];
        apply_frequency_presence(&mut l, &[0, 1], -1.0, 0.0);
        assert_eq!(l, vec![2.0, 0.0], "a negative penalty encourages");

        // Greedy follows the penalised logits; the prompt (`recent`) is not counted.
        let p = SamplerParams {
            frequency_penalty: 1.0,
            ..SamplerParams::greedy()
        };
        assert_eq!(
            sample(&[3.0, 2.5], &p, &[0, 0, 0], &[], 0.0, &mut scratch()),
            0
        );
        assert_eq!(sample(&[3.0, 2.5], &p, &[], &[0], 0.0, &mut scratch()), 1);
        let p = SamplerParams {
            presence_penalty: 0.4,
            ..SamplerParams::greedy()
        };
        assert_eq!(
            sample(&[3.0, 2.5], &p, &[], &[0, 0, 0], 0.0, &mut scratch()),
            0,
            "presence counts once: 2.6 > 2.5"
        );

        // Order: the repetition penalty first (3 / 2 = 1.5), then the subtraction
        // (1.5 - 1 = 0.5 < 1); the other order would give (3 - 1) / 2 = 1, a tie.
        let p = SamplerParams {
            repeat_penalty: 2.0,
            repeat_last_n: 8,
            presence_penalty: 1.0,
            ..SamplerParams::greedy()
        };
        assert_eq!(sample(&[3.0, 1.0], &p, &[0], &[0], 0.0, &mut scratch()), 1);

        // The sampler counts what it draws itself.
        let mut s = Sampler::new(SamplerParams {
            frequency_penalty: 2.0,
            ..SamplerParams::greedy()
        })
        .unwrap();
        let l = [3.0f32, 0.5, 0.0];
        let drawn: Vec<u32> = (0..4).map(|_| s.sample(&l, &[])).collect();
        // Id 0 at 3, then 1, then -1 (id 1 at 0.5 wins), then id 1 at -1.5 and id 2 at 0.
        assert_eq!(drawn, vec![0, 0, 1, 2]);
        assert_eq!(s.generated(), &drawn[..]);
    }

    #[test]
    fn top_k_top_p_min_p_restrict_the_candidates() {
        // Probabilities after softmax at T=1: roughly 0.64, 0.24, 0.09, 0.03.
        let l = [3.0f32, 2.0, 1.0, 0.0];
        let base = SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        };
        let draw = |p: &SamplerParams, coin| sample(&l, p, &[], &[], coin, &mut scratch());
        assert_eq!(
            draw(&base, 0.999),
            3,
            "the full distribution reaches the last token"
        );
        assert_eq!(
            draw(
                &SamplerParams {
                    top_k: 2,
                    ..base.clone()
                },
                0.999
            ),
            1
        );
        assert_eq!(
            draw(
                &SamplerParams {
                    top_p: 0.5,
                    ..base.clone()
                },
                0.999
            ),
            0,
            "0.64 ≥ 0.5 keeps one token"
        );
        assert_eq!(
            draw(
                &SamplerParams {
                    top_p: 0.8,
                    ..base.clone()
                },
                0.999
            ),
            1
        );
        assert_eq!(
            draw(
                &SamplerParams {
                    min_p: 0.3,
                    ..base.clone()
                },
                0.999
            ),
            1,
            "0.09 < 0.3 × 0.64"
        );
        assert_eq!(draw(&base, 0.0), 0);
    }

    #[test]
    fn temperature_sharpens() {
        let l = [1.0f32, 0.0];
        let hot = SamplerParams {
            temperature: 100.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 0,
        };
        let cold = SamplerParams {
            temperature: 0.05,
            ..hot.clone()
        };
        // Coin 0.6: at T=100 the split is ~50/50, so token 1; at T=0.05 token 0 has all the mass.
        assert_eq!(sample(&l, &hot, &[], &[], 0.6, &mut scratch()), 1);
        assert_eq!(sample(&l, &cold, &[], &[], 0.6, &mut scratch()), 0);
    }

    #[test]
    fn frequencies_follow_the_distribution() {
        let l = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut s = Sampler::new(SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repeat_penalty: 1.0,
            repeat_last_n: 0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            seed: 3,
        })
        .unwrap();
        let ones = (0..20_000).filter(|_| s.sample(&l, &[]) == 1).count();
        let f = ones as f64 / 20_000.0;
        assert!((f - 0.75).abs() < 0.02, "{f}");
    }

    #[test]
    fn impossible_values_are_errors() {
        let ok = SamplerParams::default();
        ok.validate().unwrap();
        for bad in [
            SamplerParams {
                temperature: -1.0,
                ..ok.clone()
            },
            SamplerParams {
                temperature: f32::NAN,
                ..ok.clone()
            },
            SamplerParams {
                top_p: 0.0,
                ..ok.clone()
            },
            SamplerParams {
                top_p: 1.5,
                ..ok.clone()
            },
            SamplerParams {
                min_p: -0.1,
                ..ok.clone()
            },
            SamplerParams {
                repeat_penalty: 0.0,
                ..ok.clone()
            },
            SamplerParams {
                frequency_penalty: 2.5,
                ..ok.clone()
            },
            SamplerParams {
                presence_penalty: -2.1,
                ..ok.clone()
            },
            SamplerParams {
                presence_penalty: f32::NAN,
                ..ok.clone()
            },
        ] {
            assert!(matches!(
                Sampler::new(bad),
                Err(RuntimeError::BadSampling { .. })
            ));
        }
    }

    #[test]
    fn pcg32_is_reproducible() {
        let a: Vec<u32> = {
            let mut r = Pcg32::new(1);
            (0..4).map(|_| r.next_u32()).collect()
        };
        let b: Vec<u32> = {
            let mut r = Pcg32::new(1);
            (0..4).map(|_| r.next_u32()).collect()
        };
        let c: Vec<u32> = {
            let mut r = Pcg32::new(2);
            (0..4).map(|_| r.next_u32()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Pcg32::new(9);
        assert!((0..1000).all(|_| (0.0..1.0).contains(&r.next_f32())));
    }
}
