//! The training-curve picture: loss (train, test) and test accuracy per epoch, as plain SVG.
use crate::io::EpochMetrics;
use std::fmt::Write;

const W: f32 = 720.0;
const H: f32 = 300.0;
const PAD: f32 = 48.0;

/// One panel: a polyline per series over epochs, y from `lo` to `hi`.
fn panel(
    s: &mut String,
    x0: f32,
    title: &str,
    series: &[(&str, &str, Vec<f32>)],
    lo: f32,
    hi: f32,
    fmt: impl Fn(f32) -> String,
) {
    let pw = W / 2.0 - PAD * 1.5;
    let ph = H - PAD * 2.0;
    let n = series.first().map(|s| s.2.len()).unwrap_or(0).max(1);
    let px = |i: usize| {
        x0 + PAD
            + if n > 1 {
                pw * i as f32 / (n - 1) as f32
            } else {
                pw / 2.0
            }
    };
    let py = |v: f32| PAD + ph * (1.0 - ((v - lo) / (hi - lo).max(1e-9)).clamp(0.0, 1.0));
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">{title}</text>"#,
        x0 + PAD + pw / 2.0,
        PAD - 16.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{}" y="{PAD}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##,
        x0 + PAD
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f32 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"#,
            x0 + PAD - 4.0,
            py(v) + 3.0,
            fmt(v)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">epoch (1..{n})</text>"#,
        x0 + PAD + pw / 2.0,
        H - PAD + 18.0
    );
    for (li, (name, colour, vals)) in series.iter().enumerate() {
        let pts: Vec<String> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", px(i), py(*v)))
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="2" points="{}"/>"#,
            pts.join(" ")
        );
        for (i, v) in vals.iter().enumerate() {
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"/>"#,
                px(i),
                py(*v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="11" fill="{colour}">{name}</text>"#,
            x0 + PAD + 8.0,
            PAD + 16.0 + 14.0 * li as f32
        );
    }
}

pub fn curve_svg(model: &str, history: &[EpochMetrics]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let tl: Vec<f32> = history.iter().map(|m| m.train_loss).collect();
    let vl: Vec<f32> = history.iter().map(|m| m.test_loss).collect();
    let hi = tl.iter().chain(&vl).copied().fold(0.0f32, f32::max);
    panel(
        &mut s,
        0.0,
        &format!("{model}: loss"),
        &[("train", "#1f77b4", tl), ("test", "#d62728", vl)],
        0.0,
        hi.max(1e-3),
        |v| format!("{v:.2}"),
    );
    let acc: Vec<f32> = history.iter().map(|m| 100.0 * m.test_accuracy).collect();
    let tacc: Vec<f32> = history.iter().map(|m| 100.0 * m.train_accuracy).collect();
    let lo = acc
        .iter()
        .chain(&tacc)
        .copied()
        .fold(100.0f32, f32::min)
        .floor()
        .min(99.0);
    panel(
        &mut s,
        W / 2.0,
        "accuracy (%)",
        &[("test", "#d62728", acc), ("train", "#1f77b4", tacc)],
        lo,
        100.0,
        |v| format!("{v:.1}"),
    );
    s.push_str("</svg>\n");
    s
}
