//! `cargo xtask deploy --board jetson MODEL.skq [--images N] [--ssh USER@HOST]`: builds
//! `boards/jetson` (a std aarch64 Linux binary around the firmware engine) and runs it on the
//! first N bundled test digits, either on the board (`--ssh`: binary, model and IDX files are
//! copied with scp into `~/shiftkit-jetson/` and run over ssh) or locally under the runner of
//! `boards/jetson/.cargo/config.toml` (`qemu-aarch64 -cpu max`), where the nanoseconds are the
//! emulator's, not the board's. Every int8 logit is compared with the host engine's through
//! `deploy`'s own check ([`super::report`]).
use super::build::{build_executable, run_timed};
use super::report::{self, DeviceRun};
use crate::boards::{runner, IDX_IMAGES, IDX_LABELS, JETSON};
use crate::{cargo, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const BOARD: &str = JETSON.name;
const TARGET: &str = JETSON.target;
const UNIT: &str = JETSON.unit;
/// Folder in the remote user's home that `--ssh` copies into.
const REMOTE_DIR: &str = "shiftkit-jetson";

/// One jetson run, checked against the host engine.
#[derive(Debug)]
pub struct Report {
    pub images: usize,
    pub device_accuracy: f64,
    pub device_matches_host: bool,
    /// Mean `run()` wall time per image, in ns (under QEMU: emulated).
    pub ns_per_inference: u64,
    /// (kind, ns per inference) per op.
    pub layers: Vec<(String, u64)>,
    pub unit: &'static str,
    /// Where it ran: `qemu-aarch64` or the ssh destination.
    pub ran_on: String,
}

/// Builds, runs (over ssh or under QEMU) and checks; prints as it goes. `Err` if anything fails
/// or a device logit differs from the host's (after printing the report).
pub fn deploy(
    model: &Path,
    images: usize,
    timeout: Duration,
    ssh: Option<&str>,
) -> Result<Report, String> {
    let model = std::path::absolute(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let bytes = std::fs::read(&model).map_err(|e| {
        format!(
            "{}: {e} (quantize a run first: cargo xtask quantize runs/default)",
            model.display()
        )
    })?;
    let m = firmware::Model::from_bytes(&bytes)
        .map_err(|e| format!("{}: not a valid model: {e}", model.display()))?;
    let (idx_images, idx_labels) = (root().join(IDX_IMAGES), root().join(IDX_LABELS));
    let (digits, labels) = report::read_idx(&idx_images, &idx_labels, images)?;
    let n = labels.len();
    if digits.first().is_some_and(|d| d.len() != m.input_len()) {
        return Err(format!(
            "{}: takes {} input bytes, the bundled test digits are 28x28x1 ({} bytes)",
            model.display(),
            m.input_len(),
            digits[0].len()
        ));
    }
    let ran_on = ssh.map_or_else(|| "qemu-aarch64".to_string(), str::to_string);
    println!(
        "== deploy {BOARD} ({ran_on}): {} ({} B model, {} B arena), {n} images",
        model.display(),
        bytes.len(),
        m.arena_bytes()
    );

    let board_dir = root().join(JETSON.dir);
    let bin = build(&board_dir)?;
    let size = std::fs::metadata(&bin).map(|md| md.len()).unwrap_or(0);
    println!("binary {}: {size} B", bin.display());

    let count = n.to_string();
    let start = Instant::now();
    let out = match ssh {
        Some(dest) => run_ssh(
            dest,
            &bin,
            &model,
            (&idx_images, &idx_labels),
            &count,
            timeout,
        )?,
        None => {
            let argv = runner(&board_dir)?;
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]).arg(&bin).arg(&model);
            c.args([&idx_images, &idx_labels]).args(["--count", &count]);
            run_timed(c, timeout, "apt-get install qemu-user")?
        }
    };
    let wall = start.elapsed().as_secs_f64();
    println!("({ran_on} ran {wall:.1} s, start-up and copies included)");
    let dev: DeviceRun = report::parse(&out, n)?;
    let check = report::check_with_host(&m, &digits, &labels, &dev)?;
    let unit = if ssh.is_some() {
        UNIT
    } else {
        "std::time ns under qemu-aarch64: the emulator's time, not the board's"
    };
    report::print_layers(&m, &dev, unit, n);

    let report = Report {
        images: n,
        device_accuracy: check.correct as f64 / n.max(1) as f64,
        device_matches_host: check.mismatches.is_empty(),
        ns_per_inference: dev.per_inference,
        layers: dev.per_inference_layers(n),
        unit: UNIT,
        ran_on,
    };
    println!("\nboard: {BOARD} ({})", report.ran_on);
    println!(
        "device_accuracy: {}/{n} ({:.2}%)",
        check.correct,
        100.0 * report.device_accuracy
    );
    println!("device_matches_host: {}", report.device_matches_host);
    println!(
        "ns_per_inference: {} (mean run() wall time, std::time::Instant{})",
        report.ns_per_inference,
        if ssh.is_some() {
            ""
        } else {
            "; under qemu-aarch64, not the board's"
        }
    );
    println!(
        "model_bytes: {}  arena_bytes: {}",
        bytes.len(),
        m.arena_bytes()
    );
    check.result(n)?;
    Ok(report)
}

/// `cargo build --release` in the board crate (target aarch64 from its config); returns the
/// binary's path.
fn build(board_dir: &Path) -> Result<PathBuf, String> {
    let mut c = cargo();
    c.current_dir(board_dir)
        .args(["build", "--release", "--target", TARGET]);
    let hint = format!(
        "needs rustup target add {TARGET} and the cross linker: apt-get install \
         gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
    );
    build_executable(c, board_dir, &hint)
}

/// Copies the binary, the model and the IDX files into `~/shiftkit-jetson/` on `dest` and runs
/// the binary there; returns its stdout.
fn run_ssh(
    dest: &str,
    bin: &Path,
    model: &Path,
    (images, labels): (&Path, &Path),
    count: &str,
    timeout: Duration,
) -> Result<String, String> {
    if dest.starts_with('-') || dest.contains(char::is_whitespace) {
        return Err(format!("--ssh {dest}: expected user@host"));
    }
    const HINT: &str = "install OpenSSH and set up key login: ssh-copy-id USER@HOST";
    // BatchMode: fail instead of waiting for a password nobody can type.
    let ssh = |remote: &str| {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes", dest, remote]);
        c
    };
    run_timed(ssh(&format!("mkdir -p {REMOTE_DIR}")), timeout, HINT)?;
    let mut scp = Command::new("scp");
    scp.args(["-q", "-o", "BatchMode=yes"])
        .args([bin, model, images, labels])
        .arg(format!("{dest}:{REMOTE_DIR}/"));
    run_timed(scp, timeout, HINT)?;
    let name = |p: &Path| {
        p.file_name()
            .map(|f| format!("{REMOTE_DIR}/{}", f.to_string_lossy()))
            .unwrap_or_default()
    };
    let remote = format!(
        "./{} '{}' '{}' '{}' --count {count}",
        name(bin),
        name(model),
        name(images),
        name(labels)
    );
    println!("ssh {dest} {remote}");
    run_timed(ssh(&remote), timeout, HINT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_destination_is_checked() {
        let e = run_ssh(
            "-oProxyCommand=x",
            Path::new("b"),
            Path::new("m"),
            (Path::new("i"), Path::new("l")),
            "1",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.contains("expected user@host"), "{e}");
    }
}
