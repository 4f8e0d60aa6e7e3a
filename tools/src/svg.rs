//! A hand-written SVG line plot: one x axis (log2 scale) and two y axes, one curve
//! each, for `mamba-bench --plot`.

use std::fmt::Write;

/// One curve.
#[derive(Clone, Debug)]
pub struct Series {
    /// Axis and legend label, with unit.
    pub label: String,
    /// One value per x.
    pub ys: Vec<f64>,
    /// Stroke colour (`#rrggbb`).
    pub color: &'static str,
}

/// A plot of two curves over the same x values (left and right axes).
#[derive(Clone, Debug)]
pub struct TwoAxisPlot {
    /// Title line.
    pub title: String,
    /// x axis label.
    pub x_label: String,
    /// x values (> 0; plotted on a log2 scale, each one a tick).
    pub xs: Vec<f64>,
    /// Curve on the left axis.
    pub left: Series,
    /// Curve on the right axis.
    pub right: Series,
}

const W: f64 = 760.0;
const H: f64 = 440.0;
const ML: f64 = 80.0; // margins: left, right, top, bottom
const MR: f64 = 90.0;
const MT: f64 = 60.0;
const MB: f64 = 60.0;

/// XML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" axis maximum (1, 2 or 5 × 10^k, at least `max`) and its tick step.
pub fn nice_axis(max: f64) -> (f64, f64) {
    if !(max.is_finite() && max > 0.0) {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s * 5.0 >= max)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{}", (v * 100.0).round() / 100.0)
    } else {
        format!("{}", (v * 1e4).round() / 1e4)
    }
}

impl TwoAxisPlot {
    /// The SVG document.
    pub fn to_svg(&self) -> String {
        let (pw, ph) = (W - ML - MR, H - MT - MB);
        let lx: Vec<f64> = self
            .xs
            .iter()
            .map(|&x| x.max(f64::MIN_POSITIVE).log2())
            .collect();
        let (mut x0, mut x1) = lx
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if x1.partial_cmp(&x0) != Some(std::cmp::Ordering::Greater) {
            // One point (or none): centre it.
            let c = if x0.is_finite() { x0 } else { 0.0 };
            (x0, x1) = (c - 1.0, c + 1.0);
        }
        // Keep the end points off the frame.
        let pad = (x1 - x0) * 0.06;
        (x0, x1) = (x0 - pad, x1 + pad);
        let px = |v: f64| ML + (v - x0) / (x1 - x0) * pw;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="15">{}</text>"#,
            W / 2.0,
            escape(&self.title)
        );
        // Plot frame and x ticks.
        let _ = writeln!(
            s,
            r##"<rect x="{ML}" y="{MT}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>"##
        );
        for (&x, &v) in self.xs.iter().zip(&lx) {
            let xp = px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{xp:.1}" y1="{MT}" x2="{xp:.1}" y2="{}" stroke="#ddd"/>"##,
                MT + ph
            );
            let _ = writeln!(
                s,
                r#"<text x="{xp:.1}" y="{}" text-anchor="middle">{}</text>"#,
                MT + ph + 18.0,
                fmt_num(x)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            ML + pw / 2.0,
            H - 16.0,
            escape(&self.x_label)
        );
        // The two curves with their axes.
        for (series, left) in [(&self.left, true), (&self.right, false)] {
            let max = series
                .ys
                .iter()
                .cloned()
                .filter(|v| v.is_finite())
                .fold(0.0, f64::max);
            let (top, step) = nice_axis(max);
            let py = |v: f64| MT + ph - v / top * ph;
            let (ax, anchor, dx) = if left {
                (ML, "end", -6.0)
            } else {
                (ML + pw, "start", 6.0)
            };
            let mut t = 0.0;
            while t <= top + step * 1e-6 {
                let yp = py(t);
                let _ = writeln!(
                    s,
                    r#"<line x1="{ax}" y1="{yp:.1}" x2="{:.1}" y2="{yp:.1}" stroke="{}"/>"#,
                    ax - dx / 1.5,
                    series.color
                );
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{:.1}" text-anchor="{anchor}" fill="{}">{}</text>"#,
                    ax + dx,
                    yp + 4.0,
                    series.color,
                    fmt_num(t)
                );
                t += step;
            }
            let lxp = if left { 20.0 } else { W - 20.0 };
            let _ = writeln!(
                s,
                r#"<text x="{lxp}" y="{:.1}" text-anchor="middle" fill="{}" transform="rotate({} {lxp} {:.1})">{}</text>"#,
                MT + ph / 2.0,
                series.color,
                if left { -90 } else { 90 },
                MT + ph / 2.0,
                escape(&series.label)
            );
            let pts: Vec<String> = lx
                .iter()
                .zip(&series.ys)
                .filter(|(_, y)| y.is_finite())
                .map(|(&x, &y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                pts.join(" "),
                series.color
            );
            for p in &pts {
                let (cx, cy) = p.split_once(',').expect("x,y");
                let _ = writeln!(
                    s,
                    r#"<circle cx="{cx}" cy="{cy}" r="3.5" fill="{}"/>"#,
                    series.color
                );
            }
        }
        // Legend.
        for (i, series) in [&self.left, &self.right].into_iter().enumerate() {
            let y = MT + 16.0 + 18.0 * i as f64;
            let x = ML + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{x}" y1="{y}" x2="{}" y2="{y}" stroke="{}" stroke-width="2"/>"#,
                x + 24.0,
                series.color
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">{}</text>"#,
                x + 30.0,
                y + 4.0,
                escape(&series.label)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        assert_eq!(nice_axis(7.3), (8.0, 2.0));
        assert_eq!(nice_axis(1.0), (1.0, 0.2));
        assert_eq!(nice_axis(430.0), (500.0, 100.0));
        assert_eq!(nice_axis(0.0), (1.0, 0.2));
    }

    #[test]
    fn writes_a_document_with_two_curves() {
        let plot = TwoAxisPlot {
            title: "a <b> & c".into(),
            x_label: "batch".into(),
            xs: vec![1.0, 2.0, 4.0],
            left: Series {
                label: "time (s)".into(),
                ys: vec![1.0, 1.5, 2.5],
                color: "#1f77b4",
            },
            right: Series {
                label: "memory (MiB)".into(),
                ys: vec![10.0, 12.0, 16.0],
                color: "#d62728",
            },
        };
        let svg = plot.to_svg();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        // One point only still gives a valid plot.
        let one = TwoAxisPlot {
            xs: vec![4.0],
            left: Series {
                ys: vec![1.0],
                ..plot.left.clone()
            },
            right: Series {
                ys: vec![2.0],
                ..plot.right.clone()
            },
            ..plot
        };
        assert!(!one.to_svg().contains("NaN"));
    }
}
