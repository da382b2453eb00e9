//! `cargo xtask measure --board BOARD MODEL.skq [--images N] [--timeout S] [--ssh USER@HOST]`:
//! deploys on the board, then prints the per-layer table (cost, share, arena bytes live) and
//! writes `measure-BOARD.svg` next to the model: (a) a horizontal bar per layer with its cost and
//! share of the total, (b) the memory timeline, arena bytes in use at each op with the arena size.
//!
//! "In use at op i" = the bytes of the arena covered by the tensors written at or before op i and
//! read at or after it (the output until the end), at their planned offsets: an in-place op's
//! input and output share bytes and count once. The input pixels are the caller's slice, not
//! arena. The peak equals the arena when the plan wastes nothing; the gap between them is what
//! the plan's placement leaves unused.
use crate::boards::{self, Run};
use crate::deploy::{self, jetson};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What a deploy measured, whatever the board.
#[derive(Debug)]
pub struct Costs {
    pub board: String,
    /// What one cost unit is (QEMU instructions, std::time ns, cycles).
    pub unit: String,
    /// (kind, cost per inference) per op, in op order.
    pub layers: Vec<(String, u64)>,
    pub images: usize,
}

impl From<&deploy::Report> for Costs {
    fn from(r: &deploy::Report) -> Self {
        Costs {
            board: r.board.clone(),
            unit: r.unit.to_string(),
            layers: r.layers.clone(),
            images: r.images,
        }
    }
}

/// `cargo xtask measure`: the deploy, then the table and the picture.
pub fn main(args: &deploy::Args) -> Result<(), String> {
    let (board, model, images, timeout, ssh) = (
        &args.board,
        &args.model,
        args.images,
        args.timeout(),
        &args.ssh,
    );
    let costs = if boards::find(board)?.run == Run::Linux {
        let r = jetson::deploy(model, images, timeout, ssh.as_deref())?;
        let unit = if ssh.is_some() {
            r.unit.to_string()
        } else {
            format!("{} under qemu-aarch64", r.unit)
        };
        Costs {
            board: format!("{board} ({})", r.ran_on),
            unit,
            layers: r.layers,
            images: r.images,
        }
    } else if ssh.is_some() {
        return Err(format!("--ssh is for --board {}", boards::JETSON.name));
    } else {
        let over = deploy::data_overrides(model, args.data.as_deref(), images)?;
        Costs::from(&deploy::deploy_with(board, model, images, timeout, &over)?)
    };
    let path = picture(model, board, &costs)?;
    println!("picture: {}", path.display());
    Ok(())
}

/// Arena bytes live at each op of a model (see the module doc).
pub fn live_bytes(m: &firmware::Model) -> Result<Vec<u64>, String> {
    let ops: Vec<(u16, [Option<u16>; 2])> = m
        .ops()
        .map(|op| op.map(|op| (op.output(), op.inputs())))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let ranges: Vec<(u64, u64)> = m
        .tensors()
        .map(|t| t.map(|t| (t.offset as u64, t.bytes() as u64)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    Ok(liveness(&ops, &ranges, m.header().output))
}

/// Arena bytes in use at each op, from (output, inputs) tensor ids per op in execution order and
/// the (offset, size) of each tensor id: a tensor is live from the first op that writes it to
/// the last op that reads it (`output`: to the end); the bytes counted are the union of the live
/// tensors' ranges. Tensors no op writes (the input) are not counted.
fn liveness(ops: &[(u16, [Option<u16>; 2])], ranges: &[(u64, u64)], output: u16) -> Vec<u64> {
    let mut span: Vec<Option<(usize, usize)>> = vec![None; ranges.len()];
    for (i, (y, xs)) in ops.iter().enumerate() {
        if let Some(s @ None) = span.get_mut(*y as usize) {
            *s = Some((i, i));
        }
        for x in xs.iter().flatten() {
            if let Some(Some((_, end))) = span.get_mut(*x as usize) {
                *end = (*end).max(i);
            }
        }
    }
    if let Some(Some((_, end))) = span.get_mut(output as usize) {
        *end = ops.len().saturating_sub(1);
    }
    (0..ops.len())
        .map(|i| {
            let mut live: Vec<(u64, u64)> = ranges
                .iter()
                .zip(&span)
                .filter(|(_, s)| matches!(s, Some((a, b)) if *a <= i && i <= *b))
                .map(|(&(o, n), _)| (o, o + n))
                .collect();
            live.sort_unstable();
            // The union of the ranges: merge overlapping ones, sum the lengths.
            let (mut total, mut reach) = (0u64, 0u64);
            for (a, b) in live {
                let a = a.max(reach);
                if b > a {
                    total += b - a;
                    reach = b;
                }
            }
            total
        })
        .collect()
}

/// Prints the per-layer table and writes `measure-BOARD.svg` next to `model`; returns its path.
pub fn picture(model: &Path, board: &str, costs: &Costs) -> Result<PathBuf, String> {
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;
    let live = live_bytes(&m).map_err(|e| format!("{}: {e}", model.display()))?;
    if live.len() != costs.layers.len() {
        return Err(format!(
            "{}: {} ops, the board reported {} layers",
            model.display(),
            live.len(),
            costs.layers.len()
        ));
    }
    let total: u64 = costs.layers.iter().map(|l| l.1).sum();
    println!(
        "\nmeasure {}: {} per inference (mean of {} images), arena bytes in use per op",
        costs.board, costs.unit, costs.images
    );
    println!(
        "{:>3}  {:<15} {:>14} {:>7} {:>10}",
        "op", "kind", "cost", "share", "live B"
    );
    for (i, ((kind, c), l)) in costs.layers.iter().zip(&live).enumerate() {
        println!(
            "{i:>3}  {kind:<15} {c:>14} {:>6.1}% {l:>10}",
            share(*c, total)
        );
    }
    let peak = live.iter().copied().max().unwrap_or(0);
    println!(
        "{:>3}  {:<15} {total:>14} {:>7} {peak:>10} peak (arena {} B)",
        "",
        "total",
        "",
        m.arena_bytes()
    );
    let name = model
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let svg = svg(&name, costs, &live, m.arena_bytes() as u64);
    let dir = model.parent().unwrap_or(Path::new("."));
    let path = dir.join(format!("measure-{board}.svg"));
    std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn share(part: u64, total: u64) -> f64 {
    100.0 * part as f64 / total.max(1) as f64
}

/// 1234567 -> "1.23M".
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn colour(kind: &str) -> &'static str {
    match kind {
        "conv3x3" | "conv" => "#9467bd",
        "shift-conv1x1" => "#1f77b4",
        "conv1x1" => "#17becf",
        "add" => "#ff7f0e",
        "fc" => "#d62728",
        _ => "#2ca02c", // pools
    }
}

const W: f32 = 900.0;
const LEFT: f32 = 150.0;
const RIGHT: f32 = 130.0;
const ROW: f32 = 16.0;
const MEM_H: f32 = 220.0;

/// The two panels as plain SVG (style of host-train's training curve).
fn svg(model: &str, costs: &Costs, live: &[u64], arena: u64) -> String {
    let n = costs.layers.len();
    let total: u64 = costs.layers.iter().map(|l| l.1).sum();
    let max = costs.layers.iter().map(|l| l.1).max().unwrap_or(0).max(1) as f32;
    let bars_top = 56.0;
    let bars_h = ROW * n as f32;
    let mem_top = bars_top + bars_h + 90.0;
    let h = mem_top + MEM_H + 60.0;
    let pw = W - LEFT - RIGHT;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="20" font-size="15" text-anchor="middle">(a) {} on {}: cost per layer, total {} per inference</text>"#,
        W / 2.0,
        escape(model),
        escape(&costs.board),
        si(total as f64)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="40" font-size="11" text-anchor="middle" fill="#555">{}, per inference, mean of {} images; label: cost and share of the total</text>"##,
        W / 2.0,
        escape(&costs.unit),
        costs.images
    );
    for (i, (kind, c)) in costs.layers.iter().enumerate() {
        let y = bars_top + ROW * i as f32;
        let bw = pw * *c as f32 / max;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{i} {}</text>"#,
            LEFT - 6.0,
            y + ROW - 4.0,
            escape(kind)
        );
        let _ = writeln!(
            s,
            r#"<rect x="{LEFT}" y="{}" width="{bw:.1}" height="{}" fill="{}"/>"#,
            y + 2.0,
            ROW - 3.0,
            colour(kind)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="10">{} ({:.1}%)</text>"#,
            LEFT + bw + 4.0,
            y + ROW - 4.0,
            si(*c as f64),
            share(*c, total)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{bars_top}" x2="{LEFT}" y2="{}" stroke="#999"/>"##,
        bars_top + bars_h
    );

    // (b) memory timeline.
    let peak = live.iter().copied().max().unwrap_or(0);
    // Axis top: a round step (1, 2 or 5 x 10^k) times 4..=8, above the arena and the peak.
    let top = arena.max(peak).max(1) as f32 * 1.05;
    let step = [1.0f32, 2.0, 5.0]
        .iter()
        .flat_map(|m| (0..10).map(move |k| m * 10f32.powi(k)))
        .filter(|st| top / st <= 8.0)
        .fold(f32::MAX, f32::min);
    let ticks = (top / step).ceil() as usize;
    let hi = step * ticks as f32;
    let py = |v: f32| mem_top + MEM_H * (1.0 - v / hi);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" text-anchor="middle">(b) arena bytes in use at each op (peak {} B) and the arena ({} B)</text>"#,
        W / 2.0,
        mem_top - 30.0,
        peak,
        arena
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="middle" fill="#555">in use: the arena bytes of the tensors written at or before the op and read at or after it, at their planned offsets (in-place ops share bytes)</text>"##,
        W / 2.0,
        mem_top - 12.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{mem_top}" width="{pw}" height="{MEM_H}" fill="none" stroke="#999"/>"##
    );
    for k in 0..=ticks {
        let v = step * k as f32;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}B</text>"#,
            LEFT - 4.0,
            py(v) + 3.0,
            si(v as f64)
        );
    }
    let cw = pw / n.max(1) as f32;
    let every = n.div_ceil(30).max(1);
    for (i, &l) in live.iter().enumerate() {
        let x = LEFT + cw * i as f32;
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4" fill-opacity="0.75"><title>op {i}: {l} B in use</title></rect>"##,
            x + 1.0,
            py(l as f32),
            (cw - 2.0).max(0.5),
            mem_top + MEM_H - py(l as f32)
        );
        if i % every == 0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{i}</text>"#,
                x + cw / 2.0,
                mem_top + MEM_H + 14.0
            );
        }
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{a:.1}" x2="{}" y2="{a:.1}" stroke="#d62728" stroke-width="2" stroke-dasharray="6,4"/>"##,
        LEFT + pw,
        a = py(arena as f32)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{:.1}" font-size="11" fill="#d62728">arena {} B</text>"##,
        LEFT + pw + 6.0,
        py(arena as f32) + 4.0,
        arena
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">op index (execution order)</text>"#,
        LEFT + pw / 2.0,
        mem_top + MEM_H + 32.0
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_a_bar_per_layer_and_the_arena_line() {
        let costs = Costs {
            board: "b".into(),
            unit: "u".into(),
            layers: vec![("conv3x3".into(), 300), ("add".into(), 100)],
            images: 1,
        };
        let s = svg("m<1>.skq", &costs, &[784, 1000], 1500);
        assert!(s.contains("m&lt;1&gt;.skq"));
        assert!(s.contains("0 conv3x3") && s.contains("1 add"));
        assert!(s.contains("300 (75.0%)") && s.contains("100 (25.0%)"));
        assert!(s.contains("op 1: 1000 B in use") && s.contains("arena 1500 B"));
        assert!(s.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn liveness_counts_a_tensor_from_its_writer_to_its_last_reader() {
        // t0 input (not arena) -> op0 -> t1 -> op1 -> t2; add(t1, t2) -> t3 (output) at op2;
        // op3 writes t4 from t3, but t3 is the output: live to the end.
        let ops = [
            (1, [Some(0), None]),
            (2, [Some(1), None]),
            (3, [Some(1), Some(2)]),
            (4, [Some(3), None]),
        ];
        // Disjoint offsets: the sizes add up.
        let sizes = [(0, 1000), (0, 100), (100, 20), (120, 3), (200, 5)];
        assert_eq!(liveness(&ops, &sizes, 3), vec![100, 120, 123, 8]);
        // Output t2 instead: it stays live to the end, t3 dies at op3 where it is read.
        assert_eq!(liveness(&ops, &sizes, 2), vec![100, 120, 123, 28]);
        assert_eq!(liveness(&ops[..3], &sizes, 3), vec![100, 120, 123]);
        assert!(liveness(&[], &sizes, 0).is_empty());
        // In place: t2 written over t1's first 20 bytes, t3 over t2: shared bytes count once.
        let in_place = [(0, 1000), (0, 100), (0, 20), (0, 3), (200, 5)];
        assert_eq!(liveness(&ops, &in_place, 3), vec![100, 100, 100, 8]);
    }

    #[test]
    fn si_prefixes() {
        assert_eq!(si(999.0), "999");
        assert_eq!(si(43904.0), "43.9k");
        assert_eq!(si(1_234_567.0), "1.23M");
    }
}
