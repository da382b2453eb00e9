//! `cargo xtask setup [--check]`: installs what the tests and the pipeline need on a fresh
//! machine (rustup targets and components, Debian packages), idempotently, one printed line per
//! step; `--check` only lists what is missing and fails if anything is.
use std::process::{Command, Stdio};

/// The Rust targets the firmware crate and the boards build for.
pub const TARGETS: &[&str] = &[
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "aarch64-unknown-linux-gnu",
    "riscv32imc-unknown-none-elf",
    "riscv32imac-unknown-none-elf",
];

/// The rustup components `cargo xtask test` runs.
pub const COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// A Debian package and what needs it.
pub struct Package {
    pub name: &'static str,
    pub why: &'static str,
}

/// QEMU for the Cortex-M boards: the pipeline's device stage needs only this one.
pub const QEMU_ARM: Package = Package {
    name: "qemu-system-arm",
    why: "QEMU Cortex-M4/M7/M33 boards (pipeline deploy, kernel-check, board tests)",
};

/// Every Debian package the tests need.
pub const PACKAGES: &[Package] = &[
    QEMU_ARM,
    Package {
        name: "qemu-system-misc",
        why: "qemu-system-riscv32 runs the QEMU RISC-V board (qemu-riscv32)",
    },
    Package {
        name: "qemu-user",
        why: "qemu-aarch64 runs the aarch64 firmware tests and the jetson board",
    },
    Package {
        name: "gcc-aarch64-linux-gnu",
        why: "the aarch64 linker",
    },
    Package {
        name: "libc6-dev-arm64-cross",
        why: "the aarch64 C library the jetson binary links",
    },
    Package {
        name: "gcc-arm-none-eabi",
        why: "the C library's header tests and its examples for Cortex-M (export c --check)",
    },
    Package {
        name: "libnewlib-arm-none-eabi",
        why: "newlib and its semihosting (rdimon) for the Cortex-M C examples",
    },
    Package {
        name: "g++",
        why: "the C library's header compiled as C++ (capi/tests/header.rs)",
    },
    Package {
        name: "make",
        why: "the Makefile that export c writes builds the C examples",
    },
];

fn quiet(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn rustup_installed(kind: &str) -> Result<Vec<String>, String> {
    let text = quiet(Command::new("rustup").args([kind, "list", "--installed"])).ok_or_else(|| {
        format!("`rustup {kind} list --installed` failed: shiftkit needs rustup (https://rustup.rs)")
    })?;
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

/// Rust targets not installed yet.
fn missing_targets() -> Result<Vec<&'static str>, String> {
    let have = rustup_installed("target")?;
    Ok(TARGETS
        .iter()
        .copied()
        .filter(|t| !have.iter().any(|h| h == t))
        .collect())
}

/// rustup components not installed yet (listed as e.g. `clippy-x86_64-unknown-linux-gnu`).
fn missing_components() -> Result<Vec<&'static str>, String> {
    let have = rustup_installed("component")?;
    Ok(COMPONENTS
        .iter()
        .copied()
        .filter(|c| {
            !have
                .iter()
                .any(|h| h == c || h.starts_with(&format!("{c}-")))
        })
        .collect())
}

/// The nightly toolchain cargo-fuzz builds with (sanitizer coverage needs `-Z` flags).
pub const NIGHTLY: &str = "nightly";

/// Whether the nightly toolchain is installed.
pub fn nightly_installed() -> bool {
    quiet(Command::new("rustup").args(["run", NIGHTLY, "rustc", "--version"])).is_some()
}

/// Whether cargo-fuzz (`cargo fuzz`, the fuzz targets' runner) is installed.
pub fn cargo_fuzz_installed() -> bool {
    quiet(Command::new("cargo").args([&format!("+{NIGHTLY}"), "fuzz", "--version"])).is_some()
}

fn package_installed(name: &str) -> bool {
    quiet(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|s| s.contains("install ok installed"))
}

/// How to run apt-get here: directly as root, through `sudo -n` where that works, or not at all.
fn apt_prefix() -> Option<Vec<&'static str>> {
    let uid = quiet(Command::new("id").arg("-u")).unwrap_or_default();
    if uid.trim() == "0" {
        Some(vec![])
    } else if Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        Some(vec!["sudo", "-n"])
    } else {
        None
    }
}

fn run_step(what: &str, program: &str, args: &[&str]) -> Result<(), String> {
    println!("== setup: {what}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("{what}: could not start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: `{program} {}` failed ({status})",
            args.join(" ")
        ))
    }
}

/// Installs the Debian packages among `packages` that are missing: `apt-get update` once, then
/// one `apt-get install`. Without root or sudo, fails with the exact command to run.
pub fn ensure_packages(packages: &[&Package]) -> Result<(), String> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| !package_installed(p.name))
        .map(|p| p.name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!(
        "sudo apt-get update && sudo apt-get install -y {}",
        missing.join(" ")
    );
    let Some(prefix) = apt_prefix() else {
        return Err(format!(
            "missing Debian packages {}; this user cannot run apt-get (not root, no password-less sudo): run `{command}`",
            missing.join(", ")
        ));
    };
    let (program, lead) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => ("apt-get", vec![]),
    };
    let with = |args: &[&'static str]| -> Vec<&str> {
        let mut v: Vec<&str> = lead.clone();
        if program != "apt-get" {
            v.push("apt-get");
        }
        v.extend_from_slice(args);
        v
    };
    run_step("package lists", program, &with(&["update", "-qq"]))?;
    // One package per `apt-get install`: a single install of all of them was once refused by
    // the dependency resolver on these machines where the same packages one by one installed.
    for name in missing {
        let mut install = with(&["install", "-y", "-qq", "--no-install-recommends"]);
        install.push(name);
        run_step(&format!("Debian package {name}"), program, &install)?;
    }
    Ok(())
}

/// `cargo xtask setup [--check]`.
pub fn main(check: bool) -> Result<(), String> {
    let targets = missing_targets()?;
    let components = missing_components()?;
    let packages: Vec<&Package> = PACKAGES
        .iter()
        .filter(|p| !package_installed(p.name))
        .collect();
    if check {
        for t in &targets {
            println!("missing: rust target {t} (rustup target add {t})");
        }
        for c in &components {
            println!("missing: rustup component {c} (rustup component add {c})");
        }
        for p in &packages {
            println!("missing: Debian package {} ({})", p.name, p.why);
        }
        let nightly = !nightly_installed();
        if nightly {
            println!("missing: the {NIGHTLY} toolchain, for `cargo xtask fuzz` (rustup toolchain install {NIGHTLY} --profile minimal)");
        }
        let fuzz = !cargo_fuzz_installed();
        if fuzz {
            println!(
                "missing: cargo-fuzz, for `cargo xtask fuzz` (cargo install cargo-fuzz --locked)"
            );
        }
        let venv = !crate::oracle::venv_ready();
        if venv {
            println!(
                "missing: the Python virtualenv {} with {}, for `cargo xtask oracle` and its tests \
                 (python3 -m venv {0}; {0}/bin/pip install ...)",
                crate::oracle::VENV,
                crate::oracle::PY_PACKAGES.join(" ")
            );
        }
        let n = targets.len()
            + components.len()
            + packages.len()
            + usize::from(nightly)
            + usize::from(fuzz)
            + usize::from(venv);
        return if n == 0 {
            println!("setup: everything the tests and the pipeline need is installed");
            Ok(())
        } else {
            Err(format!(
                "{n} thing(s) missing; `cargo xtask setup` installs them"
            ))
        };
    }
    if targets.is_empty() {
        println!("== setup: rust targets: all {} installed", TARGETS.len());
    } else {
        let mut args = vec!["target", "add"];
        args.extend(targets.iter().copied());
        run_step("rust targets", "rustup", &args)?;
    }
    if components.is_empty() {
        println!(
            "== setup: rustup components: {} installed",
            COMPONENTS.join(", ")
        );
    } else {
        let mut args = vec!["component", "add"];
        args.extend(components.iter().copied());
        run_step("rustup components", "rustup", &args)?;
    }
    if packages.is_empty() {
        let names: Vec<&str> = PACKAGES.iter().map(|p| p.name).collect();
        println!("== setup: Debian packages: {} installed", names.join(", "));
    } else {
        ensure_packages(&packages)?;
    }
    if nightly_installed() {
        println!("== setup: the {NIGHTLY} toolchain (fuzzing): installed");
    } else {
        run_step(
            "the nightly toolchain (fuzzing)",
            "rustup",
            &["toolchain", "install", NIGHTLY, "--profile", "minimal"],
        )?;
    }
    if cargo_fuzz_installed() {
        println!("== setup: cargo-fuzz: installed");
    } else {
        run_step(
            "cargo-fuzz (a few minutes: it builds from source)",
            "cargo",
            &["install", "cargo-fuzz", "--locked"],
        )?;
    }
    venv()
}

/// The project's Python virtualenv (`.venv`, ignored by git) with LiteRT, onnxruntime, onnx and
/// NumPy, pinned.
fn venv() -> Result<(), String> {
    use crate::oracle::{python, venv_ready, PY_PACKAGES, VENV};
    if venv_ready() {
        println!(
            "== setup: Python virtualenv {VENV}: {} installed",
            PY_PACKAGES.join(", ")
        );
        return Ok(());
    }
    let dir = crate::root().join(VENV);
    if !python().is_file() {
        let dir = dir.display().to_string();
        run_step(
            "the Python virtualenv (python3 -m venv; Debian: apt-get install python3-venv)",
            "python3",
            &["-m", "venv", &dir],
        )?;
    }
    let py = python().display().to_string();
    let mut args = vec![
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ];
    args.extend(PY_PACKAGES.iter().copied());
    run_step(
        "LiteRT, onnxruntime, onnx and NumPy into the virtualenv (pip)",
        &py,
        &args,
    )
}
