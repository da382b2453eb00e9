//! The board registry: every board xtask deploys to (its crate folder, rustup target, cost unit
//! and how it runs), the runner and memory figures read from its crate, and the memory budget a
//! model must fit before anything is built.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A board xtask knows how to deploy to. A microcontroller board's memory budget is the FLASH
/// and RAM `LENGTH` of its crate's `memory.x` (read at deploy time: the one place those figures
/// live).
#[derive(Debug)]
pub struct Board {
    pub name: &'static str,
    /// Crate folder under the repository root (`boards/<name>`).
    pub dir: &'static str,
    /// What the board's counter measures (printed in the table).
    pub unit: &'static str,
    /// Its rustup target (passed as `--target`; the crate's `.cargo/config.toml` has its runner
    /// and link flags).
    pub target: &'static str,
    pub run: Run,
}

/// How a board runs its firmware: the commands live in the crate's `.cargo/config.toml` runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Run {
    /// `qemu-system-arm ... -kernel ELF` (or `qemu-system-riscv32`), here.
    Qemu,
    /// `probe-rs run --chip CHIP ELF`: flash a board on a debug probe and stream its defmt log.
    Probe { chip: &'static str },
    /// A std aarch64 Linux binary (`boards/jetson`): over ssh on the board, or here under
    /// `qemu-aarch64`.
    Linux,
}

/// The microcontroller boards: built on `boards/app` with the model embedded by `boards/embed`,
/// each with a `memory.x`.
pub const BOARDS: &[Board] = &[
    Board {
        name: "qemu-an386",
        dir: "boards/qemu-an386",
        unit: "QEMU instructions",
        target: "thumbv7em-none-eabihf",
        run: Run::Qemu,
    },
    // The same crate and QEMU machine, built for ARMv6-M: Cortex-M0/M0+ code (the scalar MAC
    // unit, no DSP) on QEMU's Cortex-M4, which runs it as is (counts: a Cortex-M4 executing
    // ARMv6-M instructions, one per instruction under -icount shift=0).
    Board {
        name: "qemu-an386-m0",
        dir: "boards/qemu-an386",
        unit: "QEMU instructions",
        target: "thumbv6m-none-eabi",
        run: Run::Qemu,
    },
    Board {
        name: "qemu-an500",
        dir: "boards/qemu-an500",
        unit: "QEMU instructions",
        target: "thumbv7em-none-eabihf",
        run: Run::Qemu,
    },
    Board {
        name: "qemu-an505",
        dir: "boards/qemu-an505",
        unit: "QEMU instructions",
        target: "thumbv8m.main-none-eabihf",
        run: Run::Qemu,
    },
    Board {
        name: "qemu-riscv32",
        dir: "boards/qemu-riscv32",
        unit: "QEMU instructions",
        target: "riscv32imc-unknown-none-elf",
        run: Run::Qemu,
    },
    Board {
        name: "stm32f746g-disco",
        dir: "boards/stm32f746g-disco",
        unit: "cycles",
        target: "thumbv7em-none-eabihf",
        run: Run::Probe {
            chip: "STM32F746NGHx",
        },
    },
    Board {
        name: "nrf52840-dk",
        dir: "boards/nrf52840-dk",
        unit: "cycles",
        target: "thumbv7em-none-eabihf",
        run: Run::Probe {
            chip: "nRF52840_xxAA",
        },
    },
    Board {
        name: "rp-pico",
        dir: "boards/rp-pico",
        unit: "microseconds",
        target: "thumbv6m-none-eabi",
        run: Run::Probe { chip: "RP2040" },
    },
    Board {
        name: "rp-pico2",
        dir: "boards/rp-pico2",
        unit: "cycles",
        target: "thumbv8m.main-none-eabihf",
        run: Run::Probe { chip: "RP235x" },
    },
    Board {
        name: "esp32c3-devkit",
        dir: "boards/esp32c3-devkit",
        unit: "microseconds",
        target: "riscv32imc-unknown-none-elf",
        run: Run::Probe { chip: "esp32c3" },
    },
];

/// The Jetson-class aarch64 Linux board: a std binary that reads the model and images from files
/// (no `memory.x`, no embedding).
pub const JETSON: Board = Board {
    name: "jetson",
    dir: "boards/jetson",
    unit: "std::time ns",
    target: "aarch64-unknown-linux-gnu",
    run: Run::Linux,
};

/// Every board `deploy` and `measure` take, by name.
pub fn all() -> impl Iterator<Item = &'static Board> {
    BOARDS.iter().chain(std::iter::once(&JETSON))
}

/// Every board's name, for the command line's `--board`.
pub fn names() -> Vec<&'static str> {
    all().map(|b| b.name).collect()
}

/// The board called `name`.
pub fn find(name: &str) -> Result<&'static Board, String> {
    all()
        .find(|b| b.name == name)
        .ok_or_else(|| format!("unknown board '{name}' (boards: {})", names().join(", ")))
}

/// Shared by every board build (xtask deploy and test), so each target's dependencies are
/// compiled once: under the repository's `target/`.
pub const BOARDS_TARGET_DIR: &str = "target/boards";
/// How to get probe-rs, printed when it is missing.
pub const PROBE_RS_INSTALL: &str = "cargo install probe-rs-tools --locked";

/// The bundled MNIST test digits every deploy runs by default.
pub const IDX_IMAGES: &str = "data/mnist/t10k-images-idx3-ubyte";
pub const IDX_LABELS: &str = "data/mnist/t10k-labels-idx1-ubyte";
/// RAM kept free for the stack and the app's own statics when checking the arena budget.
pub const STACK_RESERVE: u64 = 16 * 1024;

/// Whether the emulator a QEMU board needs (its runner's program) is installed (other boards:
/// always true).
pub fn qemu_available(board: &str) -> bool {
    let Ok(b) = find(board) else {
        return false;
    };
    if b.run != Run::Qemu {
        return true;
    }
    let Ok(argv) = runner(&crate::root().join(b.dir)) else {
        return false;
    };
    Command::new(&argv[0])
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The Debian package of a QEMU system emulator (a QEMU runner's program).
pub fn qemu_package(program: &str) -> &'static str {
    match program {
        "qemu-system-riscv32" => "qemu-system-misc",
        _ => "qemu-system-arm",
    }
}

/// The runner from the board's `.cargo/config.toml` (the one place its QEMU or probe-rs
/// command lives), split into words.
pub fn runner(board_dir: &Path) -> Result<Vec<String>, String> {
    let path = board_dir.join(".cargo/config.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let cmd = text
        .lines()
        .find(|l| l.trim_start().starts_with("runner"))
        .and_then(|l| l.split_once('='))
        .map(|x| x.1.trim().trim_matches('"'))
        .ok_or_else(|| format!("{}: no runner", path.display()))?;
    let argv: Vec<String> = cmd.split_whitespace().map(String::from).collect();
    if argv.is_empty() {
        return Err(format!("{}: empty runner", path.display()));
    }
    Ok(argv)
}

/// The file with a board's MEMORY block: `memory.x`, or `budget.x` on a board whose HAL links
/// its own memory map (esp-hal), where a `memory.x` of ours would shadow the HAL's.
pub fn memory_file(board_dir: &Path) -> PathBuf {
    let budget = board_dir.join("budget.x");
    if budget.is_file() {
        budget
    } else {
        board_dir.join("memory.x")
    }
}

/// FLASH and RAM LENGTH from a memory.x (`LENGTH = 4M`, `256K`, `0x40000` or decimal).
pub fn memory_x(path: &Path) -> Result<(u64, u64), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let length = |region: &str| -> Option<u64> {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(region) && l.contains("LENGTH"))?;
        let v = line
            .split("LENGTH")
            .nth(1)?
            .trim_start_matches([' ', '='])
            .trim();
        let v = v.trim_end_matches([',', ';', ' ']);
        let (num, mul) = match v.as_bytes().last()? {
            b'K' | b'k' => (&v[..v.len() - 1], 1024),
            b'M' | b'm' => (&v[..v.len() - 1], 1024 * 1024),
            _ => (v, 1),
        };
        let n = match num.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).ok()?,
            None => num.parse().ok()?,
        };
        Some(n * mul)
    };
    match (length("FLASH"), length("RAM")) {
        (Some(f), Some(r)) => Ok((f, r)),
        _ => Err(format!("{}: no FLASH/RAM LENGTH found", path.display())),
    }
}

/// Checks embedded data (model + test images) against flash and the arena plus a stack reserve
/// against RAM; `Ok` is the budget line to print, `Err` the refusal with the numbers.
pub fn check_budget(
    board: &str,
    (flash, ram): (u64, u64),
    model: u64,
    images: u64,
    arena: u64,
) -> Result<String, String> {
    let flash_need = model + images;
    let ram_need = arena + STACK_RESERVE;
    if flash_need > flash || ram_need > ram {
        let verdict = |need: u64, have: u64| {
            if need > have {
                format!("{} B over", need - have)
            } else {
                "fits".to_string()
            }
        };
        return Err(format!(
            "the model does not fit {board}: flash needs {flash_need} B (model {model} + images {images}) \
             of {flash} B ({}), RAM needs {ram_need} B (arena {arena} + stack reserve {STACK_RESERVE}) \
             of {ram} B ({}); use a smaller model or fewer --images",
            verdict(flash_need, flash),
            verdict(ram_need, ram)
        ));
    }
    Ok(format!(
        "budget: flash {flash_need} B (model {model} + images {images}) of {flash} B, \
         RAM {ram_need} B (arena {arena} + stack reserve {STACK_RESERVE}) of {ram} B"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::root;

    #[test]
    fn memory_x_lengths() {
        let dir = std::env::temp_dir().join(format!("xtask-memx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("memory.x");
        std::fs::write(
            &p,
            "MEMORY\n{\n  FLASH : ORIGIN = 0x08000000, LENGTH = 1M\n  RAM : ORIGIN = 0x20000000, LENGTH = 0x50000\n}\n",
        )
        .unwrap();
        assert_eq!(memory_x(&p).unwrap(), (1 << 20, 0x50000));
        let _ = std::fs::remove_dir_all(&dir);
        let board = root().join("boards/qemu-an386/memory.x");
        assert_eq!(memory_x(&board).unwrap(), (4 << 20, 4 << 20));
    }

    #[test]
    fn every_board_has_its_datasheet_memory() {
        // (flash, RAM) of the image: QEMU machine maps and the chips' datasheets (qemu-riscv32:
        // the ESP32-C3's, carved out of virt's RAM); the RP2040's flash is the Pico's 2 MiB less
        // the 256-byte second-stage bootloader.
        let want = [
            ("qemu-an386", 4 << 20, 4 << 20),
            ("qemu-an386-m0", 4 << 20, 4 << 20),
            ("qemu-an500", 4 << 20, 4 << 20),
            ("qemu-an505", 4 << 20, 4 << 20),
            ("qemu-riscv32", 4 << 20, 400 << 10),
            ("stm32f746g-disco", 1 << 20, 320 << 10),
            ("nrf52840-dk", 1 << 20, 256 << 10),
            ("rp-pico", (2 << 20) - 256, 256 << 10),
            ("rp-pico2", 4 << 20, 512 << 10),
            ("esp32c3-devkit", (4 << 20) - (64 << 10), 313 << 10),
        ];
        assert_eq!(BOARDS.len(), want.len());
        for (b, (name, flash, ram)) in BOARDS.iter().zip(want) {
            assert_eq!(b.name, name);
            let dir = name.strip_suffix("-m0").unwrap_or(name);
            assert_eq!(b.dir, format!("boards/{dir}"));
            let got = memory_x(&memory_file(&root().join(b.dir))).unwrap();
            assert_eq!(got, (flash, ram), "{name}");
            let runner = runner(&root().join(b.dir)).unwrap();
            match b.run {
                Run::Qemu => {
                    let want = if b.target.starts_with("riscv32") {
                        "qemu-system-riscv32"
                    } else {
                        "qemu-system-arm"
                    };
                    assert_eq!(runner[0], want, "{name}");
                    assert!(runner.iter().any(|a| a == "-icount"), "{name}");
                }
                Run::Probe { chip } => {
                    assert_eq!(runner[..4], ["probe-rs", "run", "--chip", chip], "{name}")
                }
                Run::Linux => panic!("{name}: a microcontroller board runs on QEMU or a probe"),
            }
        }
    }

    #[test]
    fn jetson_is_a_board_with_the_qemu_aarch64_runner() {
        let b = find("jetson").unwrap();
        assert_eq!((b.run, b.dir), (Run::Linux, "boards/jetson"));
        let argv = runner(&root().join(b.dir)).unwrap();
        assert_eq!(argv[..3], ["qemu-aarch64", "-cpu", "max"]);
        assert_eq!(names().len(), BOARDS.len() + 1);
        let e = find("qemu-an387").unwrap_err();
        assert!(
            e.contains("unknown board 'qemu-an387'") && e.contains("jetson"),
            "{e}"
        );
    }

    #[test]
    fn a_big_model_is_refused_for_the_real_boards() {
        // The figures of a quantized cifar-flat-4c (1135604-byte .skq, 198784-byte arena) with
        // 20 CIFAR images (3072 pixels + 1 label each); each board's numbers are its memory.x.
        let budget = |name: &str| {
            let b = find(name).unwrap();
            let mem = memory_x(&memory_file(&root().join(b.dir))).unwrap();
            check_budget(name, mem, 1_135_604, 20 * 3073, 198_784)
        };
        let e = budget("stm32f746g-disco").unwrap_err();
        assert!(
            e.contains(
                "flash needs 1197064 B (model 1135604 + images 61460) of 1048576 B (148488 B over)"
            ),
            "{e}"
        );
        assert!(e.contains("of 327680 B (fits)"), "{e}");
        let e = budget("nrf52840-dk").unwrap_err();
        assert!(e.contains("of 1048576 B (148488 B over)"), "{e}");
        assert!(
            e.contains(
                "RAM needs 215168 B (arena 198784 + stack reserve 16384) of 262144 B (fits)"
            ),
            "{e}"
        );
        // The Pico has 2 MiB of flash: this one fits.
        assert!(budget("rp-pico").is_ok());
    }

    #[test]
    fn a_model_too_big_for_the_rp2040_fits_the_rp2350() {
        // A model whose 262144-byte arena alone is the RP2040's whole RAM; the RP2350 has twice.
        let budget = |name: &str| {
            let b = find(name).unwrap();
            let mem = memory_x(&memory_file(&root().join(b.dir))).unwrap();
            check_budget(name, mem, 600_000, 20 * 785, 262_144)
        };
        let e = budget("rp-pico").unwrap_err();
        assert!(
            e.contains("RAM needs 278528 B (arena 262144 + stack reserve 16384) of 262144 B (16384 B over)"),
            "{e}"
        );
        assert!(budget("rp-pico2").is_ok());
    }

    #[test]
    fn too_big_is_refused_with_numbers() {
        let e = check_budget("tiny", (64 * 1024, 32 * 1024), 41436, 15700, 43904).unwrap_err();
        assert!(e.contains("does not fit tiny"), "{e}");
        assert!(e.contains("RAM needs 60288 B (arena 43904"), "{e}");
        assert!(check_budget("big", (4 << 20, 4 << 20), 41436, 15700, 43904).is_ok());
    }
}
