//! `app::run` on the host with a fake board (a counter that advances a fixed step per reading,
//! a pin that records its levels, a sink that records the lines), over small networks written
//! by the firmware's own test writer: the report has one line per image with the engine's exact
//! logits, one layer line per op, the pin is high around each inference only, and every failure
//! is an `error:` line instead of a report.

#[path = "../../../firmware/tests/common/mod.rs"]
mod common;

use app::{Clock, Counter, Embedded, Line, Sink};
use core::cell::Cell;
use core::convert::Infallible;

/// Advances `STEP` ticks per reading; scale 3 units per tick.
struct FakeCounter(Cell<u32>);

const STEP: u32 = 5;

impl Counter for FakeCounter {
    fn unit(&self) -> &'static str {
        "fake_units"
    }
    fn units_per_tick(&self) -> u32 {
        3
    }
    fn now(&self) -> u32 {
        let t = self.0.get();
        self.0.set(t.wrapping_add(STEP));
        t
    }
    fn since(&self, start: u32) -> u32 {
        self.now().wrapping_sub(start)
    }
}

#[derive(Default)]
struct FakePin(Vec<bool>);

impl embedded_hal::digital::ErrorType for FakePin {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for FakePin {
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.0.push(true);
        Ok(())
    }
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.push(false);
        Ok(())
    }
}

/// The lines, owned.
#[derive(Default)]
struct Recorder {
    starts: Vec<(usize, usize, String, u32)>,
    /// (load ticks, plan-check ticks) of each `load` line.
    loads: Vec<(u64, u64)>,
    images: Vec<(usize, u8, usize, Vec<i8>)>,
    accuracy: Vec<(usize, usize)>,
    layers: Vec<(usize, String, u64, u64)>,
    totals: Vec<(u64, u64)>,
    memory: Vec<(usize, usize, Option<usize>)>,
    errors: Vec<String>,
    /// Every line's text, as both sinks print it.
    text: Vec<String>,
}

/// A counter clock's unit and units per tick (the fake board has no other).
fn counter_clock(clock: Clock<'_>) -> (String, u32) {
    match clock {
        Clock::Counter {
            unit,
            units_per_tick,
        } => (unit.to_string(), units_per_tick),
        Clock::Nanoseconds => ("ns".to_string(), 1),
    }
}

impl Sink for Recorder {
    fn emit(&mut self, line: Line<'_>) {
        self.text.push(line.to_string());
        match line {
            Line::Start {
                ops, images, clock, ..
            } => {
                let (unit, per_tick) = counter_clock(clock);
                self.starts.push((ops, images, unit, per_tick))
            }
            Line::Image {
                index,
                label,
                pred,
                logits,
                ..
            } => self.images.push((index, label, pred, logits.to_vec())),
            Line::Accuracy { correct, images } => self.accuracy.push((correct, images)),
            Line::Layer {
                index,
                kind,
                ticks,
                clock,
            } => {
                let per_tick = u64::from(counter_clock(clock).1);
                self.layers
                    .push((index, kind.to_string(), ticks, ticks * per_tick))
            }
            Line::Total {
                ticks,
                per_inference,
                ..
            } => self.totals.push((ticks, per_inference)),
            Line::Memory {
                model_bytes,
                arena_bytes,
                stack_bytes,
            } => self.memory.push((model_bytes, arena_bytes, stack_bytes)),
            Line::ModelError(e) => self.errors.push(format!("model: {e}")),
            Line::RunError { image, error } => self.errors.push(format!("image {image}: {error}")),
            Line::Failed(what) => self.errors.push(what.to_string()),
            Line::Calibration { .. } => self.errors.push("unexpected calibration".into()),
            Line::Load {
                ticks,
                plan_check_ticks,
                ..
            } => self.loads.push((ticks, plan_check_ticks)),
        }
    }
}

fn images(seed: u64, n: usize, len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = common::Rng(seed);
    let pixels = (0..n * len).map(|_| rng.below(256) as u8).collect();
    let labels = (0..n).map(|_| rng.below(4) as u8).collect();
    (pixels, labels)
}

/// Runs the app with `OPS` slots; returns the summary, the recorded lines and the pin levels.
fn run_app<const OPS: usize>(
    file: &[u8],
    pixels: &[u8],
    labels: &[u8],
    input_len: usize,
    arena: Option<&mut [i8]>,
) -> (Option<app::Summary>, Recorder, Vec<bool>) {
    let data = Embedded {
        model: file,
        images: pixels,
        labels,
        input_len,
    };
    let counter = FakeCounter(Cell::new(0));
    let mut pin = FakePin::default();
    let mut sink = Recorder::default();
    let s = app::run::<OPS, _, _, _>("host", &data, arena, &counter, &mut pin, &mut sink);
    (s, sink, pin.0)
}

#[test]
fn report_has_the_engines_logits_and_every_layer() {
    for (net, file) in [common::tiny_net(7).1, common::second_net(11).1]
        .into_iter()
        .enumerate()
    {
        let m = firmware::Model::from_bytes(&file).unwrap();
        let (len, ops) = (m.input_len(), m.header().ops as usize);
        let n = 3;
        let (pixels, labels) = images(net as u64 + 1, n, len);
        let mut arena = vec![0i8; m.arena_bytes()];
        let (s, r, pin) = run_app::<64>(&file, &pixels, &labels, len, Some(&mut arena));
        assert!(r.errors.is_empty(), "net {net}: {:?}", r.errors);
        let s = s.expect("a summary");

        assert_eq!(r.starts, vec![(ops, n, "fake_units".to_string(), 3)]);
        // Loading and the plan check are each timed by one pair of readings.
        assert_eq!(r.loads, vec![(u64::from(STEP), u64::from(STEP))]);
        let mut host_arena = vec![0i8; m.arena_bytes()];
        let mut correct = 0;
        for (i, (px, &label)) in pixels.chunks(len).zip(&labels).enumerate() {
            let want = firmware::run(&m, px, &mut host_arena, &mut firmware::NoProfiler).unwrap();
            let pred = app::argmax(want);
            correct += usize::from(pred == usize::from(label));
            assert_eq!(r.images[i], (i, label, pred, want.to_vec()), "net {net}");
        }
        assert_eq!(r.images.len(), n);
        assert_eq!(r.accuracy, vec![(correct, n)]);
        assert_eq!((s.correct, s.images), (correct, n));

        // One line per op, in order, kinds from the model; each op is one begin/end pair, so
        // STEP ticks per image, scaled by 3.
        let kinds: Vec<String> = m
            .ops()
            .map(|op| app::op_kind(&op.unwrap()).to_string())
            .collect();
        assert_eq!(r.layers.len(), ops);
        for (i, (index, kind, ticks, units)) in r.layers.iter().enumerate() {
            assert_eq!((*index, kind), (i, &kinds[i]));
            assert_eq!(*ticks, u64::from(STEP) * n as u64);
            assert_eq!(*units, ticks * 3);
        }
        // The whole run per image: start + one reading per begin and per end + the end reading.
        let per_image = u64::from(STEP) * (2 * ops as u64 + 1);
        assert_eq!(r.totals, vec![(per_image * n as u64, per_image * 3)]);
        assert_eq!(s.per_inference, per_image * 3);
        // No linker-script stack on the host: the mark is 0 there (painted on the boards).
        assert_eq!(r.memory, vec![(file.len(), m.arena_bytes(), Some(0))]);
        // The text: start, load, one line per image, accuracy, one per op, total, memory.
        assert_eq!(r.text.len(), 2 + n + 1 + ops + 2, "net {net}");
        assert!(
            r.text[0].starts_with("shiftkit host: model "),
            "{}",
            r.text[0]
        );
        assert!(
            r.text[0].ends_with(&format!("{n} images, counter fake_units (3 per tick)")),
            "{}",
            r.text[0]
        );
        assert_eq!(
            r.text[1],
            format!(
                "load ticks {STEP} fake_units {} plan_check_ticks {STEP} fake_units {}",
                3 * STEP,
                3 * STEP
            )
        );
        let logits: Vec<String> = r.images[0].3.iter().map(i8::to_string).collect();
        assert_eq!(
            r.text[2],
            format!(
                "image 0 label {} pred {} logits [{}]",
                r.images[0].1,
                r.images[0].2,
                logits.join(", ")
            )
        );
        assert_eq!(
            r.text[3 + n],
            format!(
                "layer 0 {} ticks {} fake_units {}",
                kinds[0],
                STEP as usize * n,
                3 * STEP as usize * n
            )
        );
        assert_eq!(
            r.text.last().unwrap(),
            &format!(
                "memory model_bytes {} arena_bytes {} stack_bytes 0",
                file.len(),
                m.arena_bytes()
            )
        );
        // High during each inference only.
        assert_eq!(pin, [true, false].repeat(n));
    }
}

#[test]
fn failures_are_error_lines_not_reports() {
    let (_, file) = common::tiny_net(7);
    let m = firmware::Model::from_bytes(&file).unwrap();
    let len = m.input_len();
    let (pixels, labels) = images(3, 2, len);

    // Fewer op slots than the model has ops: the board was built for another model.
    let mut arena = vec![0i8; m.arena_bytes()];
    let (s, r, pin) = run_app::<2>(&file, &pixels, &labels, len, Some(&mut arena));
    assert!(s.is_none());
    assert!(r.errors[0].contains("more ops"), "{:?}", r.errors);
    assert!(r.images.is_empty() && pin.is_empty());

    // No arena.
    let (s, r, _) = run_app::<64>(&file, &pixels, &labels, len, None);
    assert!(s.is_none());
    assert_eq!(r.errors, vec!["the arena was already taken".to_string()]);

    // An arena too small for the model: the engine's error, for image 0, with the pin low again.
    let mut small = vec![0i8; m.arena_bytes() - 1];
    let (s, r, pin) = run_app::<64>(&file, &pixels, &labels, len, Some(&mut small));
    assert!(s.is_none());
    assert!(
        r.errors[0].starts_with("image 0: arena is"),
        "{:?}",
        r.errors
    );
    assert_eq!(pin, [true, false]);

    // A corrupt model: no report at all.
    let mut bad = file.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    let (s, r, _) = run_app::<64>(&bad, &pixels, &labels, len, Some(&mut arena));
    assert!(s.is_none());
    assert!(r.errors[0].starts_with("model: "), "{:?}", r.errors);
    assert!(r.starts.is_empty() && r.images.is_empty());
}

#[test]
fn argmax_takes_the_first_of_equal_maxima() {
    assert_eq!(app::argmax(&[-3, 7, 7, 1]), 1);
    assert_eq!(app::argmax(&[-128]), 0);
    assert_eq!(app::argmax(&[5, -1, 5]), 0);
}
