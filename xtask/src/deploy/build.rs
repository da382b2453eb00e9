//! Building and running a board: `cargo build --release` of its crate with the model and test
//! images (for the microcontroller boards, embedded by `boards/embed`), the ELF's flash and RAM
//! figures, and running it (QEMU here, probe-rs on a real board) with a timeout, its stdout
//! captured for the report parser.
use crate::boards::{
    qemu_package, runner, Board, BOARDS_TARGET_DIR, IDX_IMAGES, IDX_LABELS, PROBE_RS_INSTALL,
};
use crate::{cargo, root};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What `cargo xtask bench firmware` changes about a deploy: the kernels the firmware is built
/// with (`SHIFTKIT_KERNELS=portable`, firmware/build.rs) and the IDX images/labels (default:
/// the bundled MNIST test digits).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub kernels_portable: bool,
    pub idx: Option<(PathBuf, PathBuf)>,
}

impl Overrides {
    pub fn idx(&self) -> (PathBuf, PathBuf) {
        self.idx
            .clone()
            .unwrap_or_else(|| (root().join(IDX_IMAGES), root().join(IDX_LABELS)))
    }
}

/// `cargo build --release` in the board crate with the model and images; returns the ELF path.
pub fn build(b: &Board, model: &Path, images: usize, over: &Overrides) -> Result<PathBuf, String> {
    let board_dir = root().join(b.dir);
    let mut c = build_command(b, model, images);
    let (idx_images, idx_labels) = over.idx();
    c.env("SHIFTKIT_IDX_IMAGES", idx_images)
        .env("SHIFTKIT_IDX_LABELS", idx_labels);
    if over.kernels_portable {
        c.env("SHIFTKIT_KERNELS", "portable");
    } else {
        c.env_remove("SHIFTKIT_KERNELS");
    }
    let hint = format!("is the target installed? rustup target add {}", b.target);
    build_executable(c, &board_dir, &hint)
}

/// Runs `cargo build` command `c` (in `board_dir`) with JSON messages and returns the path of
/// the executable it built; `hint` says what to check if the build fails.
pub fn build_executable(mut c: Command, board_dir: &Path, hint: &str) -> Result<PathBuf, String> {
    c.arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    let out = c.output().map_err(|e| {
        format!(
            "could not start cargo build in {}: {e}",
            board_dir.display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "cargo build --release in {} failed ({hint})",
            board_dir.display()
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["reason"] == "compiler-artifact")
        .filter_map(|v| v["executable"].as_str().map(PathBuf::from))
        .next_back()
        .ok_or_else(|| {
            format!(
                "cargo build in {} produced no executable",
                board_dir.display()
            )
        })
}

/// `cargo build --release` in the board's crate with `model` and the first `images` bundled test
/// digits embedded (`boards/embed` reads these variables), into the shared [`BOARDS_TARGET_DIR`].
pub fn build_command(b: &Board, model: &Path, images: usize) -> Command {
    let args = ["build", "--release", "--target", b.target];
    board_cargo(&root().join(b.dir), model, images, &args)
}

/// [`build_command`] for the board crate in `dir` (also the benchmark boards, which are not
/// deploy targets).
pub fn build_command_in(dir: &Path, model: &Path, images: usize) -> Command {
    board_cargo(dir, model, images, &["build", "--release"])
}

/// `cargo clippy --release -- -D warnings` on the board crate, with the model and images its
/// build script embeds (`cargo xtask test`).
pub fn clippy_command(b: &Board, model: &Path, images: usize) -> Command {
    let args = [
        "clippy",
        "--release",
        "--target",
        b.target,
        "--",
        "-D",
        "warnings",
    ];
    board_cargo(&root().join(b.dir), model, images, &args)
}

/// `cargo ARGS` in a board crate's folder, in the boards' shared target folder, with the
/// environment its build script reads.
fn board_cargo(dir: &Path, model: &Path, images: usize, args: &[&str]) -> Command {
    let mut c = cargo();
    c.current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", root().join(BOARDS_TARGET_DIR))
        .env("SHIFTKIT_MODEL", model)
        .env("SHIFTKIT_IMAGES", images.to_string())
        .env("SHIFTKIT_IDX_IMAGES", root().join(IDX_IMAGES))
        .env("SHIFTKIT_IDX_LABELS", root().join(IDX_LABELS));
    c
}

/// Runs the ELF under the board's QEMU runner, killing it after `timeout`; returns stdout.
pub fn run_qemu(board_dir: &Path, elf: &Path, timeout: Duration) -> Result<String, String> {
    let argv = runner(board_dir)?;
    let install = format!("install QEMU: apt-get install {}", qemu_package(&argv[0]));
    run_captured(&argv, elf, timeout, &install)
}

/// Flashes the ELF with the board's `probe-rs run --chip ..` runner and returns the defmt log,
/// printed message-only (`--log-format {s}`) so that it has the QEMU boards' line shapes.
/// Without probe-rs, says how to install it (the build and budget are already printed).
pub fn run_probe(
    board_dir: &Path,
    chip: &str,
    elf: &Path,
    timeout: Duration,
) -> Result<String, String> {
    let installed = Command::new("probe-rs")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Err(format!(
            "probe-rs is not installed, so {} was built but not flashed: install it with \
             `{PROBE_RS_INSTALL}` (about 6 minutes), connect the board ({chip}) over its debug \
             probe, and run this command again",
            elf.display()
        ));
    }
    let mut argv = runner(board_dir)?;
    argv.extend(["--log-format".to_string(), "{s}".to_string()]);
    println!("flashing with: {} {}", argv.join(" "), elf.display());
    run_captured(&argv, elf, timeout, PROBE_RS_INSTALL)
}

/// Runs `argv` + `elf` through [`run_timed`].
fn run_captured(
    argv: &[String],
    elf: &Path,
    timeout: Duration,
    install: &str,
) -> Result<String, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err("the board's runner is empty".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args).arg(elf);
    run_timed(cmd, timeout, install)
}

/// Runs `cmd` with stdout captured and stderr passed through, killing it after `timeout`;
/// prints the device's header, image, calibration and error lines and returns all of stdout.
/// `install` is the hint if the program cannot be started.
pub fn run_timed(mut cmd: Command, timeout: Duration, install: &str) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {program}: {e} ({install})"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| format!("{program}: {e}"))? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let text = reader.join().unwrap_or_default();
            return Err(format!(
                "{program} did not exit within {} s (raise --timeout); its output:\n{text}",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = reader.join().unwrap_or_default();
    for l in text.lines().filter(|l| {
        ["image ", "shiftkit ", "calibration ", "error"]
            .iter()
            .any(|p| l.starts_with(p))
    }) {
        println!("{l}");
    }
    if !status.success() {
        return Err(format!(
            "{program} exited with {status} after {:.1} s; its output:\n{text}",
            start.elapsed().as_secs_f64()
        ));
    }
    println!("({program} ran {:.1} s)", start.elapsed().as_secs_f64());
    Ok(text)
}

/// Bytes in flash and in RAM of an ELF32 (little-endian) from its section headers: allocated
/// sections that are not NOBITS occupy flash, writable ones occupy RAM (.data both). Read-only
/// NOBITS sections are reservations, not counted: esp-hal's `.rotext_dummy` (it only moves
/// flash-mapped addresses past an alias) and its `.stack` (all the RAM the statics leave; the
/// budget counts a stack reserve instead). riscv-rt's `.stack` is the same reservation but
/// writable, so a NOBITS section of that name is not counted either.
pub fn elf_sizes(path: &Path) -> Result<(u64, u64), String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let bad = || format!("{}: not a 32-bit little-endian ELF", path.display());
    if b.get(0..6) != Some(&[0x7f, b'E', b'L', b'F', 1, 1][..]) {
        return Err(bad());
    }
    let u16_at = |o: usize| {
        b.get(o..o + 2)
            .map(|s| u16::from_le_bytes([s[0], s[1]]) as usize)
    };
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64)
    };
    let shoff = u32_at(0x20).ok_or_else(bad)? as usize;
    let shentsize = u16_at(0x2e).ok_or_else(bad)?;
    let shnum = u16_at(0x30).ok_or_else(bad)?;
    // The section-name string table, to recognise `.stack`.
    let shstrndx = u16_at(0x32).ok_or_else(bad)?;
    let names = u32_at(shoff + shstrndx * shentsize + 0x10).ok_or_else(bad)? as usize;
    let is_stack = |name: usize| {
        b.get(names + name..)
            .is_some_and(|n| n.starts_with(b".stack\0"))
    };
    let (mut flash, mut ram) = (0, 0);
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let name = u32_at(h).ok_or_else(bad)? as usize;
        let kind = u32_at(h + 4).ok_or_else(bad)?;
        let flags = u32_at(h + 8).ok_or_else(bad)?;
        let size = u32_at(h + 0x14).ok_or_else(bad)?;
        const SHF_WRITE: u64 = 1;
        const SHF_ALLOC: u64 = 2;
        const SHT_NOBITS: u64 = 8;
        if flags & SHF_ALLOC == 0 || (kind == SHT_NOBITS && is_stack(name)) {
            continue;
        }
        if kind != SHT_NOBITS {
            flash += size;
        }
        if flags & SHF_WRITE != 0 {
            ram += size;
        }
    }
    Ok((flash, ram))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_sizes_refuse_what_is_not_an_elf32() {
        let p = std::env::temp_dir().join(format!("xtask-elf-{}", std::process::id()));
        std::fs::write(&p, b"\x7fELF\x02\x01 a 64-bit header").unwrap();
        let e = elf_sizes(&p).unwrap_err();
        assert!(e.contains("not a 32-bit little-endian ELF"), "{e}");
        let _ = std::fs::remove_file(&p);
    }

    /// An ELF32 header and section headers (`(name, type, flags, size)`, names in a
    /// `.shstrtab` after the header), nothing else: what `elf_sizes` reads.
    fn elf32(sections: &[(&str, u32, u32, u32)]) -> Vec<u8> {
        let mut names = vec![0u8];
        let mut offsets = Vec::new();
        for (name, ..) in sections.iter().chain([&(".shstrtab", 3, 0, 0)]) {
            offsets.push(names.len() as u32);
            names.extend(name.as_bytes());
            names.push(0);
        }
        let shoff = 52 + names.len();
        let shnum = sections.len() + 2;
        let mut b = vec![0u8; 52];
        b[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 1, 1]);
        b[0x20..0x24].copy_from_slice(&(shoff as u32).to_le_bytes());
        b[0x2e..0x30].copy_from_slice(&40u16.to_le_bytes());
        b[0x30..0x32].copy_from_slice(&(shnum as u16).to_le_bytes());
        b[0x32..0x34].copy_from_slice(&(shnum as u16 - 1).to_le_bytes());
        b.extend(&names);
        let header = |name: u32, kind: u32, flags: u32, offset: u32, size: u32| {
            let mut h = [0u8; 40];
            for (at, v) in [
                (0, name),
                (4, kind),
                (8, flags),
                (0x10, offset),
                (0x14, size),
            ] {
                h[at..at + 4].copy_from_slice(&v.to_le_bytes());
            }
            h
        };
        b.extend(header(0, 0, 0, 0, 0));
        for (i, &(_, kind, flags, size)) in sections.iter().enumerate() {
            b.extend(header(offsets[i], kind, flags, 0, size));
        }
        let strtab = offsets[sections.len()];
        b.extend(header(strtab, 3, 0, 52, names.len() as u32));
        b
    }

    #[test]
    fn elf_sizes_count_flash_and_ram_but_not_the_stack_reservations() {
        const PROGBITS: u32 = 1;
        const NOBITS: u32 = 8;
        // SHF_ALLOC, with SHF_WRITE, with SHF_EXECINSTR.
        const A: u32 = 2;
        const WA: u32 = 3;
        const AX: u32 = 6;
        let elf = elf32(&[
            (".text", PROGBITS, AX, 1000),
            (".rodata", PROGBITS, A, 200),
            (".data", PROGBITS, WA, 30),
            (".bss", NOBITS, WA, 4000),
            // esp-hal's read-only reservations, riscv-rt's writable .stack, a debug section.
            (".rotext_dummy", NOBITS, A, 1 << 20),
            (".stack", NOBITS, WA, 300_000),
            (".debug_info", PROGBITS, 0, 77_777),
        ]);
        let p = std::env::temp_dir().join(format!("xtask-elf-sizes-{}", std::process::id()));
        std::fs::write(&p, elf).unwrap();
        let sizes = elf_sizes(&p);
        let _ = std::fs::remove_file(&p);
        assert_eq!(sizes.unwrap(), (1230, 4030));
    }

    #[test]
    fn a_missing_program_says_how_to_install_it() {
        let e = run_timed(
            Command::new("shiftkit-no-such-program"),
            Duration::from_secs(1),
            "apt-get install it",
        )
        .unwrap_err();
        assert!(
            e.contains("could not start shiftkit-no-such-program"),
            "{e}"
        );
        assert!(e.contains("(apt-get install it)"), "{e}");
    }
}
