//! The committed `capi/include/shiftkit.h` is what cbindgen generates from `capi/src/lib.rs`
//! (with `capi/cbindgen.toml`), and it compiles, warnings as errors, as C99 and C++17 with the
//! host's gcc/g++ and with arm-none-eabi-gcc/g++ for Cortex-M4 and M0+.
//!
//! `SHIFTKIT_BLESS=1 cargo test -p shiftkit-c --test header` rewrites the header.
use std::path::{Path, PathBuf};
use std::process::Command;

const REGENERATE: &str = "SHIFTKIT_BLESS=1 cargo test -p shiftkit-c --test header";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The header as cbindgen writes it now.
fn generated() -> String {
    let dir = crate_dir();
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .unwrap_or_else(|e| panic!("capi/cbindgen.toml: {e}"));
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen on capi/src/lib.rs: {e}"));
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen writes UTF-8")
}

#[test]
fn the_committed_header_is_what_cbindgen_generates() {
    let want = generated();
    let path = crate_dir().join("include/shiftkit.h");
    if std::env::var_os("SHIFTKIT_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "capi/include/shiftkit.h is stale: it differs from what cbindgen generates from \
         capi/src/lib.rs; regenerate it with `{REGENERATE}`"
    );
    for call in [
        "sk_model_load",
        "sk_model_arena",
        "sk_model_input_shape",
        "sk_model_input_len",
        "sk_model_classes",
        "sk_model_ops",
        "sk_model_class_name",
        "sk_run",
        "sk_run_profiled",
        "sk_status_message",
        "sk_version",
    ] {
        assert!(have.contains(&format!("{call}(")), "{call} missing");
    }
    assert!(have.contains("#define SK_HANDLE_BYTES 320"));
    assert!(have.contains("extern \"C\""));
}

/// Compiles `src` to an object with `compiler` and `flags`, warnings as errors; a missing
/// compiler fails with the command that installs it.
fn compile(compiler: &str, flags: &[&str], src: &str, install: &str) {
    let dir = crate_dir();
    let obj = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{}-{}.o",
        src.replace(['/', '.'], "_"),
        compiler
    ));
    let out = Command::new(compiler)
        .args(flags)
        .args(["-Wall", "-Wextra", "-Werror", "-c", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join(src))
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap_or_else(|e| panic!("could not start {compiler}: {e}; install it with `{install}`"));
    assert!(
        out.status.success(),
        "{compiler} {} capi/{src} failed:\n{}",
        flags.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(obj.is_file(), "{compiler} wrote no object");
}

const HOST_GCC: &str = "apt-get install gcc g++";
const ARM_GCC: &str =
    "cargo xtask setup (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)";
const M4: &[&str] = &[
    "-mcpu=cortex-m4",
    "-mthumb",
    "-mfloat-abi=hard",
    "-mfpu=fpv4-sp-d16",
];
const M0: &[&str] = &["-mcpu=cortex-m0plus", "-mthumb"];

#[test]
fn the_header_compiles_as_c99_with_gcc() {
    compile(
        "gcc",
        &["-std=c99", "-pedantic"],
        "tests/c/use_header.c",
        HOST_GCC,
    );
}

#[test]
fn the_header_compiles_as_cpp17_with_gpp() {
    compile(
        "g++",
        &["-std=c++17", "-pedantic"],
        "tests/c/use_header.cpp",
        HOST_GCC,
    );
}

#[test]
fn the_header_compiles_for_cortex_m_with_arm_none_eabi_gcc_and_gpp() {
    for cpu in [M4, M0] {
        let c: Vec<&str> = ["-std=c99", "-pedantic"]
            .iter()
            .chain(cpu)
            .copied()
            .collect();
        compile("arm-none-eabi-gcc", &c, "tests/c/use_header.c", ARM_GCC);
        let cpp: Vec<&str> = ["-std=c++17", "-pedantic"]
            .iter()
            .chain(cpu)
            .copied()
            .collect();
        compile("arm-none-eabi-g++", &cpp, "tests/c/use_header.cpp", ARM_GCC);
    }
}
