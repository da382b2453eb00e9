//! `cargo xtask fuzz`: runs the libFuzzer targets of `fuzz/` (cargo-fuzz, nightly) one after
//! another, each for a fixed time from the committed seed corpus, and prints what each did:
//! executions, executions per second, libFuzzer's coverage (`cov`: edges, `ft`: features) and
//! its corpus. A crash stops it, naming the input libFuzzer saved and the command that replays
//! it. New inputs go to `target/fuzz-corpus/TARGET`, not into the committed corpus.
use crate::root;
use crate::setup::NIGHTLY as TOOLCHAIN;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The targets, in `fuzz/fuzz_targets/`, and what each feeds.
pub const TARGETS: &[(&str, &str)] = &[
    (
        "model_run",
        "Model::from_bytes + engine::run, CRC-keeping .skq mutator",
    ),
    ("wire_records", "graph record reader against postcard"),
    ("data_loaders", "IDX, MNIST pairs, CIFAR-10/100 batches"),
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Minutes per target
    #[arg(long, default_value_t = 1.0, conflicts_with = "seconds")]
    minutes: f64,
    /// Seconds per target (instead of --minutes; CI's short run)
    #[arg(long)]
    seconds: Option<u64>,
    /// Only this target (model_run, wire_records, data_loaders)
    #[arg(long)]
    target: Option<String>,
    /// Parallel fuzzing processes per target (libFuzzer -fork)
    #[arg(long, default_value_t = 1)]
    jobs: u32,
    /// Build without AddressSanitizer (about twice the executions; the engine's few `unsafe`
    /// kernel wrappers are then checked by Rust's bounds only)
    #[arg(long)]
    no_asan: bool,
}

/// What libFuzzer printed at the end of one run.
#[derive(Debug, Default, PartialEq)]
pub struct Stats {
    pub executions: u64,
    pub cov: u64,
    pub ft: u64,
    pub corpus: u64,
    pub peak_rss_mb: u64,
}

/// The numbers of libFuzzer's output: `stat::number_of_executed_units`, `stat::peak_rss_mb`,
/// and the last status line's `cov:`, `ft:` and `corp:`.
pub fn parse_stats(out: &str) -> Stats {
    let mut s = Stats::default();
    let after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    for line in out.lines() {
        if let Some(v) = after(line, "stat::number_of_executed_units:") {
            s.executions = v;
        }
        if let Some(v) = after(line, "stat::peak_rss_mb:") {
            s.peak_rss_mb = v;
        }
        if line.starts_with('#') {
            if let Some(v) = after(line, "cov:") {
                s.cov = v;
            }
            if let Some(v) = after(line, "ft:") {
                s.ft = v;
            }
            if let Some(v) = after(line, "corp:") {
                s.corpus = v;
            }
        }
    }
    s
}

/// Fails with the command that installs what is missing: the nightly toolchain, cargo-fuzz.
pub fn check_tools() -> Result<(), String> {
    if !crate::setup::nightly_installed() {
        return Err(format!(
            "fuzzing needs the {TOOLCHAIN} toolchain: run `cargo xtask setup` (or `rustup toolchain install {TOOLCHAIN} --profile minimal`)"
        ));
    }
    if !crate::setup::cargo_fuzz_installed() {
        return Err(
            "fuzzing needs cargo-fuzz: run `cargo xtask setup` (or `cargo install cargo-fuzz --locked`)"
                .into(),
        );
    }
    Ok(())
}

fn cargo_fuzz(args: &[&str], no_asan: bool) -> Command {
    let mut c = Command::new("cargo");
    c.current_dir(root().join("fuzz"))
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .arg(format!("+{TOOLCHAIN}"))
        .arg("fuzz")
        .args(args);
    if no_asan {
        c.args(["--sanitizer", "none"]);
    }
    c
}

pub fn fuzz(args: &Args) -> Result<(), String> {
    check_tools()?;
    let seconds = args
        .seconds
        .unwrap_or((args.minutes * 60.0).round().max(1.0) as u64);
    let targets: Vec<&str> = match &args.target {
        Some(t) => {
            if !TARGETS.iter().any(|(name, _)| name == t) {
                let names: Vec<&str> = TARGETS.iter().map(|t| t.0).collect();
                return Err(format!(
                    "--target {t}: no such fuzz target; the targets are {}",
                    names.join(", ")
                ));
            }
            vec![t.as_str()]
        }
        None => TARGETS.iter().map(|t| t.0).collect(),
    };
    let root = root();
    println!(
        "== fuzz: building {} (cargo +{TOOLCHAIN} fuzz build)",
        targets.join(", ")
    );
    // `cargo fuzz build` takes one target, or none for all of them.
    let mut build = cargo_fuzz(&["build"], args.no_asan);
    if let [one] = targets[..] {
        build.arg(one);
    }
    crate::run(build)?;
    let mut rows = Vec::new();
    for target in &targets {
        let seeds = root.join("fuzz/corpus").join(target);
        let grown = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&grown).map_err(|e| format!("{}: {e}", grown.display()))?;
        let artifacts = root.join("target/fuzz-artifacts").join(target);
        std::fs::create_dir_all(&artifacts).map_err(|e| format!("{}: {e}", artifacts.display()))?;
        println!("== fuzz: {target} for {seconds} s (seeds {})", rel(&seeds));
        let mut c = cargo_fuzz(&["run", target], args.no_asan);
        c.arg(&grown).arg(&seeds).arg("--").args([
            format!("-max_total_time={seconds}"),
            "-print_final_stats=1".into(),
            "-timeout=10".into(),
            "-rss_limit_mb=2048".into(),
            format!("-artifact_prefix={}/", artifacts.display()),
        ]);
        if args.jobs > 1 {
            c.arg(format!("-fork={}", args.jobs));
        }
        let start = Instant::now();
        let (status, text) = run_streaming(c, seconds)?;
        let stats = parse_stats(&text);
        if !status.success() {
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(format!(
                "fuzz target {target} found a failure ({}); libFuzzer's output ends:\n{}\n\
                 the input is saved under {}; replay it with `cd fuzz && cargo +{TOOLCHAIN} fuzz run {target} FILE`, \
                 then make it a named regression test",
                status,
                tail.join("\n"),
                rel(&artifacts)
            ));
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "   {target}: {} executions in {secs:.0} s, cov {} ft {} corpus {} (no crash)",
            stats.executions, stats.cov, stats.ft, stats.corpus
        );
        rows.push((target.to_string(), secs, stats));
    }
    println!(
        "\n{:<14} {:>7} {:>14} {:>10} {:>7} {:>7} {:>7}",
        "target", "seconds", "executions", "exec/s", "cov", "ft", "corpus"
    );
    for (t, secs, s) in &rows {
        println!(
            "{t:<14} {secs:>7.0} {:>14} {:>10.0} {:>7} {:>7} {:>7}",
            s.executions,
            s.executions as f64 / secs.max(1e-9),
            s.cov,
            s.ft,
            s.corpus
        );
    }
    println!(
        "(no crashes; sanitizer: {}; new inputs in target/fuzz-corpus/)",
        if args.no_asan { "none" } else { "address" }
    );
    Ok(())
}

/// Runs libFuzzer, keeping its whole output (stderr) for [`parse_stats`] and printing one
/// progress line as each of its `pulse` lines comes (at every power of two executions), with
/// the time left.
fn run_streaming(
    mut c: Command,
    seconds: u64,
) -> Result<(std::process::ExitStatus, String), String> {
    use std::io::{BufRead, BufReader};
    let mut child = c
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start cargo fuzz: {e}"))?;
    let start = Instant::now();
    let mut text = String::new();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines() {
            let line = line.map_err(|e| format!("reading libFuzzer's output: {e}"))?;
            if line.contains(" pulse ") {
                let elapsed = start.elapsed().as_secs();
                println!(
                    "   {line}  [{elapsed} s of {seconds} s]",
                    line = line.replace('\t', " ")
                );
            }
            text.push_str(&line);
            text.push('\n');
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for cargo fuzz: {e}"))?;
    Ok((status, text))
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_final_stats_are_read() {
        let out = "INFO: Seed: 1\n\
                   #2\tINITED cov: 1500 ft: 2100 corp: 8/40Kb exec/s: 0 rss: 40Mb\n\
                   #65536\tpulse  cov: 1612 ft: 2500 corp: 40/60Kb lim: 4096 exec/s: 21845 rss: 60Mb\n\
                   Done 70000 runs in 3 second(s)\n\
                   stat::number_of_executed_units: 70012\n\
                   stat::average_exec_per_sec:     23337\n\
                   stat::new_units_added:          32\n\
                   stat::slowest_unit_time_sec:    0\n\
                   stat::peak_rss_mb:              61\n";
        assert_eq!(
            parse_stats(out),
            Stats {
                executions: 70012,
                cov: 1612,
                ft: 2500,
                corpus: 40,
                peak_rss_mb: 61
            }
        );
        assert_eq!(parse_stats("no stats here"), Stats::default());
    }
}
