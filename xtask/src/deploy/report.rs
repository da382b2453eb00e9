//! The host side of a device run's report: the parser of the lines the boards print (their one
//! writer is `firmware::report`), the test digits read on the host, the host engine's check of
//! every int8 logit, and the per-layer table.
use firmware::idx::Idx;
use std::path::Path;

/// What the device printed, parsed.
#[derive(Debug, Default)]
pub struct DeviceRun {
    /// (label, pred, logits) per image, in order.
    pub images: Vec<(u8, usize, Vec<i8>)>,
    /// The predicted class's name per image, when the board printed one (models with names).
    pub names: Vec<Option<String>>,
    /// (kind, summed units over all images) per op.
    pub layers: Vec<(String, u64)>,
    pub per_inference: u64,
    /// The name of the per-inference figure, e.g. `qemu_instructions_per_inference` or
    /// `cycles_per_inference` (from the `total` line).
    pub per_inference_name: String,
    /// Stack high-water mark, from the `memory` line of boards built on `boards/app`.
    pub stack_bytes: Option<u64>,
    /// (`Model::from_bytes`, its memory-plan check alone), in the counter's units, from the
    /// `load` line.
    pub load: Option<(u64, u64)>,
}

impl DeviceRun {
    /// (kind, cost per inference) per op: the summed costs divided by the `n` images.
    pub fn per_inference_layers(&self, n: usize) -> Vec<(String, u64)> {
        let n = n.max(1) as u64;
        self.layers
            .iter()
            .map(|(k, v)| (k.clone(), v / n))
            .collect()
    }
}

/// Parses the board's report lines (shapes in `boards/app/src/lib.rs`; the cost is the
/// last number of a `layer`/`total` line, so `layer I KIND ns T` from `boards/jetson` parses too).
pub fn parse(out: &str, n: usize) -> Result<DeviceRun, String> {
    let mut d = DeviceRun::default();
    let bad = |l: &str| format!("cannot parse the board's line: {l}");
    for l in out.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.first().copied() {
            Some("image") => {
                // image I label L pred P logits [a, b, ..]
                let (label, pred) = match (w.get(3), w.get(5)) {
                    (Some(l), Some(p)) => (l.parse().ok(), p.parse().ok()),
                    _ => (None, None),
                };
                // ... logits [a, b, ..] (then ` class NAME` for models with names)
                let (list, name) = match l.trim_end().split_once('[').map(|x| x.1) {
                    Some(rest) => match rest.split_once(']') {
                        Some((list, "")) => (Some(list), None),
                        Some((list, tail)) => match tail.strip_prefix(" class ") {
                            Some(n) if !n.is_empty() => (Some(list), Some(n.to_string())),
                            _ => (None, None),
                        },
                        None => (None, None),
                    },
                    None => (None, None),
                };
                let logits: Option<Vec<i8>> =
                    list.map(|s| s.split(',').filter_map(|v| v.trim().parse().ok()).collect());
                match (label, pred, logits) {
                    (Some(a), Some(b), Some(c)) => {
                        d.images.push((a, b, c));
                        d.names.push(name);
                    }
                    _ => return Err(bad(l)),
                }
            }
            Some("layer") => {
                // layer I KIND ticks T qemu_instructions Q  |  layer I KIND ns T
                let q = w
                    .last()
                    .filter(|_| w.len() >= 5)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(l))?;
                d.layers.push((w.get(2).unwrap_or(&"?").to_string(), q));
            }
            Some("total") => {
                // total ticks T qemu_instructions_per_inference Q  |  total ns T ns_per_inference Q
                d.per_inference = w
                    .last()
                    .filter(|_| w.len() >= 5)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| bad(l))?;
                d.per_inference_name = w.get(3).unwrap_or(&"per_inference").to_string();
            }
            Some("load") => {
                // load ticks T UNIT U plan_check_ticks P UNIT Q  |  load ns T plan_check_ns P
                let at = |i: usize| w.get(i).and_then(|v| v.parse().ok());
                let pair = match w.len() {
                    9 => at(4).zip(at(8)),
                    5 => at(2).zip(at(4)),
                    _ => None,
                };
                d.load = Some(pair.ok_or_else(|| bad(l))?);
            }
            Some("memory") => {
                // memory model_bytes M arena_bytes A stack_bytes S
                if let Some(i) = w.iter().position(|&k| k == "stack_bytes") {
                    d.stack_bytes = Some(
                        w.get(i + 1)
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| bad(l))?,
                    );
                }
            }
            _ => {}
        }
    }
    if d.images.len() != n {
        return Err(format!(
            "the board printed {} image lines, expected {n}; its output:\n{out}",
            d.images.len()
        ));
    }
    Ok(d)
}

/// The host engine's verdict on a device run (every board, jetson included).
pub struct HostCheck {
    /// Images the device predicted right.
    pub correct: usize,
    /// One line per image whose device int8 logits differ from the host engine's.
    pub mismatches: Vec<String>,
}

impl HostCheck {
    /// `Err` (after printing the first few mismatches) if any logit differed.
    pub fn result(&self, n: usize) -> Result<(), String> {
        if self.mismatches.is_empty() {
            return Ok(());
        }
        for m in self.mismatches.iter().take(5) {
            eprintln!("mismatch {m}");
        }
        Err(format!(
            "{} of {n} images: device int8 logits differ from the host engine's",
            self.mismatches.len()
        ))
    }
}

/// Runs the host engine (the same `firmware` crate) on the same pixels and compares every int8
/// logit and label with the device's.
pub fn check_with_host(
    m: &firmware::Model,
    digits: &[Vec<u8>],
    labels: &[u8],
    dev: &DeviceRun,
) -> Result<HostCheck, String> {
    let mut arena = vec![0i8; m.arena_bytes() + m.arena_align().max(1)];
    let off = arena.as_ptr().align_offset(m.arena_align().max(1));
    let mut check = HostCheck {
        correct: 0,
        mismatches: Vec::new(),
    };
    for (i, (pixels, &label)) in digits.iter().zip(labels).enumerate() {
        let host = firmware::run(m, pixels, &mut arena[off..], &mut firmware::NoProfiler)
            .map_err(|e| format!("host engine, image {i}: {e}"))?;
        let (dlabel, pred, logits) = dev
            .images
            .get(i)
            .ok_or_else(|| format!("the board printed no line for image {i}"))?;
        if *dlabel != label {
            return Err(format!(
                "image {i}: device label {dlabel}, host label {label}: the board ran other images"
            ));
        }
        check.correct += usize::from(*pred == label as usize);
        if logits.as_slice() != host {
            check
                .mismatches
                .push(format!("image {i}: device {logits:?} host {host:?}"));
        }
    }
    Ok(check)
}

/// Prints the per-layer cost table (per inference, mean of `n` images) with output shapes.
pub fn print_layers(m: &firmware::Model, dev: &DeviceRun, unit: &str, n: usize) {
    let ops: Vec<String> = m
        .ops()
        .map(|op| {
            op.map(|op| describe(m, &op))
                .unwrap_or_else(|e| e.to_string())
        })
        .collect();
    println!("\nper layer ({unit}, per inference, mean of {n} images):");
    println!(
        "{:>3}  {:<15} {:<28} {:>14} {:>7}",
        "op", "kind", "output", "cost", "share"
    );
    let layer_total: u64 = dev.layers.iter().map(|l| l.1).sum();
    for (i, (kind, sum)) in dev.layers.iter().enumerate() {
        let share = 100.0 * *sum as f64 / layer_total.max(1) as f64;
        let shape = ops.get(i).map(String::as_str).unwrap_or("");
        println!(
            "{i:>3}  {kind:<15} {shape:<28} {:>14} {share:>6.1}%",
            sum / n.max(1) as u64
        );
    }
    println!(
        "{:>3}  {:<15} {:<28} {:>14}",
        "",
        "layers",
        "",
        layer_total / n.max(1) as u64
    );
}

/// One op's kind-independent description: output shape.
fn describe(m: &firmware::Model, op: &firmware::format::Op) -> String {
    let y = op.output();
    match m.tensor(y) {
        Ok(t) => format!("-> {}x{}x{}", t.h, t.w, t.c),
        Err(e) => e.to_string(),
    }
}

/// The first `n` images (each `record_len` bytes) and labels of an IDX3/IDX1 pair, read with
/// `firmware::idx::Idx`; fewer if the files hold fewer. Errors are one line naming the file.
pub fn read_idx(images: &Path, labels: &Path, n: usize) -> Result<(Vec<Vec<u8>>, Vec<u8>), String> {
    let img = std::fs::read(images).map_err(|e| format!("{}: {e}", images.display()))?;
    let lab = std::fs::read(labels).map_err(|e| format!("{}: {e}", labels.display()))?;
    let i = Idx::parse_rank(&img, 3).map_err(|e| format!("{}: {e}", images.display()))?;
    let l = Idx::parse_rank(&lab, 1).map_err(|e| format!("{}: {e}", labels.display()))?;
    let n = n.min(i.count()).min(l.count());
    Ok((
        i.first(n)
            .chunks(i.record_len())
            .map(<[u8]>::to_vec)
            .collect(),
        l.first(n).to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware::report::{Clock, Line};

    /// The text of `lines`, one per line, as a board prints them (through firmware's writer).
    fn printed(lines: &[Line<'_>]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    fn start(clock: Clock<'_>, images: usize) -> Line<'_> {
        Line::Start {
            board: "qemu-an386",
            model_bytes: 9,
            arena_bytes: 8,
            arena_align: 16,
            input_len: 4,
            classes: 4,
            ops: 2,
            images,
            clock,
        }
    }

    #[test]
    fn every_line_of_a_counter_board_parses_back() {
        let clock = Clock::Counter {
            unit: "qemu_instructions",
            units_per_tick: 40,
        };
        let out = printed(&[
            start(clock, 2),
            Line::Calibration {
                loop_instructions: 200_000,
                ticks: 5000,
                instructions_per_tick: 40,
            },
            Line::Load {
                ticks: 50,
                plan_check_ticks: 6,
                clock,
            },
            Line::Image {
                index: 0,
                label: 7,
                pred: 2,
                logits: &[-1, 2, 127, -128],
                name: Some("two birds"),
            },
            Line::Image {
                index: 1,
                label: 0,
                pred: 0,
                logits: &[5, 0, 0, -5],
                name: None,
            },
            Line::Accuracy {
                correct: 1,
                images: 2,
            },
            Line::Layer {
                index: 0,
                kind: "conv3x3",
                ticks: 10,
                clock,
            },
            Line::Layer {
                index: 1,
                kind: "fc",
                ticks: 3,
                clock,
            },
            Line::Total {
                ticks: 14,
                per_inference: 280,
                clock,
            },
            Line::Memory {
                model_bytes: 9,
                arena_bytes: 8,
                stack_bytes: Some(4032),
            },
        ]);
        let d = parse(&out, 2).unwrap();
        assert_eq!(
            d.images,
            vec![(7, 2, vec![-1, 2, 127, -128]), (0, 0, vec![5, 0, 0, -5])]
        );
        // The layer cost is the units (ticks x units per tick), summed over the images.
        assert_eq!(
            d.layers,
            vec![("conv3x3".to_string(), 400), ("fc".to_string(), 120)]
        );
        assert_eq!(d.per_inference_layers(2)[0], ("conv3x3".to_string(), 200));
        assert_eq!(d.per_inference, 280);
        assert_eq!(d.per_inference_name, "qemu_instructions_per_inference");
        assert_eq!(d.stack_bytes, Some(4032));
        assert_eq!(d.load, Some((2000, 240)));
        assert_eq!(d.names, vec![Some("two birds".to_string()), None]);
        // A count other than the image lines is refused, with the output.
        let e = parse(&out, 3).unwrap_err();
        assert!(e.contains("printed 2 image lines, expected 3"), "{e}");
    }

    #[test]
    fn every_line_of_the_jetson_binary_parses_back() {
        let clock = Clock::Nanoseconds;
        let out = printed(&[
            start(clock, 1),
            Line::Load {
                ticks: 9000,
                plan_check_ticks: 700,
                clock,
            },
            Line::Image {
                index: 0,
                label: 7,
                pred: 3,
                logits: &[-1, 2, 127, -128],
                name: None,
            },
            Line::Accuracy {
                correct: 0,
                images: 1,
            },
            Line::Layer {
                index: 0,
                kind: "conv3x3",
                ticks: 1500,
                clock,
            },
            Line::Layer {
                index: 1,
                kind: "fc",
                ticks: 20,
                clock,
            },
            Line::Total {
                ticks: 1600,
                per_inference: 1600,
                clock,
            },
            Line::Memory {
                model_bytes: 10,
                arena_bytes: 20,
                stack_bytes: None,
            },
        ]);
        let d = parse(&out, 1).unwrap();
        assert_eq!(d.images, vec![(7, 3, vec![-1, 2, 127, -128])]);
        assert_eq!(
            d.layers,
            vec![("conv3x3".to_string(), 1500), ("fc".to_string(), 20)]
        );
        assert_eq!(d.per_inference, 1600);
        assert_eq!(d.per_inference_name, "ns_per_inference");
        assert_eq!(d.stack_bytes, None);
        assert_eq!(d.load, Some((9000, 700)));
    }

    #[test]
    fn real_boards_and_error_lines() {
        // probe-rs prints each defmt frame's text (--log-format {s}), here with a trailing
        // space; the cycle counters' total names its unit.
        let clock = Clock::Counter {
            unit: "cycles",
            units_per_tick: 1,
        };
        let image = Line::Image {
            index: 0,
            label: 7,
            pred: 7,
            logits: &[-1, 2, 127, -128],
            name: None,
        };
        let total = Line::Total {
            ticks: 1200,
            per_inference: 1200,
            clock,
        };
        let out = format!("{image} \n{total}\n");
        let d = parse(&out, 1).unwrap();
        assert_eq!(d.images[0].2, vec![-1, 2, 127, -128]);
        assert_eq!(d.per_inference_name, "cycles_per_inference");
        // Error lines are no report lines: the run has no image line, so the parse fails and
        // its message carries the board's output, error line included.
        let errors = printed(&[
            Line::ModelError(firmware::ModelError::BadMagic),
            Line::RunError {
                image: 0,
                error: firmware::Error::ArenaMisaligned { align: 16 },
            },
            Line::Failed("the arena was already taken"),
        ]);
        assert!(errors.lines().all(|l| l.starts_with("error: ")), "{errors}");
        let e = parse(&errors, 1).unwrap_err();
        assert!(e.contains("error: the arena was already taken"), "{e}");
    }

    #[test]
    fn broken_lines_are_refused() {
        for bad in [
            "image 0 label 7 pred x logits [1]\n",
            "image 0 label 7 pred 7 logits [1, 2\n",
            "image 0 label 7 pred 7 logits [1, 2] clas x\n",
            "image 0 label 7 pred 7 logits [1, 2] class \n",
            "layer 0 conv3x3 ns\n",
            "total ticks 12 qemu_instructions_per_inference\n",
            "memory model_bytes 9 arena_bytes 8 stack_bytes many\n",
            "load ticks 3 qemu_instructions 120 plan_check_ticks 1\n",
            "load ns 3 plan_check_ns x\n",
        ] {
            let e = parse(bad, 0).unwrap_err();
            assert!(e.starts_with("cannot parse the board's line"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_bundled_digits_read_with_the_shared_idx_parser() {
        let root = crate::root();
        let (images, labels) = read_idx(
            &root.join(crate::boards::IDX_IMAGES),
            &root.join(crate::boards::IDX_LABELS),
            3,
        )
        .unwrap();
        assert_eq!((images.len(), labels.len()), (3, 3));
        assert!(images.iter().all(|i| i.len() == 28 * 28));
        // Labels given as images: one line naming the file.
        let labels_file = root.join(crate::boards::IDX_LABELS);
        let e = read_idx(&labels_file, &labels_file, 1).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: an IDX file of rank 1", labels_file.display())),
            "{e}"
        );
    }
}
