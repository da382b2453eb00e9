//! Where the report goes: one [`Line`] at a time into a [`Sink`]. The text of every line is
//! written by one writer, `firmware::report` (`impl Display for Line`); the two sinks, chosen by
//! the board, only carry it: [`Semihosting`] (QEMU: text on the host's stdout) and [`Defmt`]
//! (real boards: one defmt `{=str}` frame per line over RTT, printed by `probe-rs run`).

pub use firmware::report::{Clock, Line};

/// Writes report lines somewhere a host can read them.
pub trait Sink {
    fn emit(&mut self, line: Line<'_>);
}

/// Plain text over semihosting (QEMU `-semihosting-config enable=on,target=native`): Arm's
/// (cortex-m-semihosting) or, on RISC-V, the RISC-V semihosting specification's
/// (riscv-semihosting), the same operations behind another trap sequence.
#[cfg(feature = "semihosting")]
pub struct Semihosting;

#[cfg(feature = "semihosting")]
impl Sink for Semihosting {
    fn emit(&mut self, line: Line<'_>) {
        #[cfg(not(target_arch = "riscv32"))]
        cortex_m_semihosting::hprintln!("{}", line);
        #[cfg(target_arch = "riscv32")]
        riscv_semihosting::hprintln!("{}", line);
    }
}

/// Bytes of the buffer [`Defmt`] formats a line into. The longest line is an image's: about 60
/// bytes of indices and labels, then at most 6 bytes per logit (`-128, `), so this holds the
/// line of a model of 150 classes; a longer line is replaced by an `error:` line saying so.
#[cfg(feature = "defmt")]
pub const LINE_BYTES: usize = 1024;

/// defmt frames (the board links a global logger, e.g. `defmt-rtt`): each line's text,
/// formatted on the board into a [`LINE_BYTES`] buffer, as one `{=str}` frame; `probe-rs run
/// --log-format "{s}"` prints it as the same text line as [`Semihosting`].
#[cfg(feature = "defmt")]
pub struct Defmt;

#[cfg(feature = "defmt")]
impl Sink for Defmt {
    fn emit(&mut self, line: Line<'_>) {
        use core::fmt::Write;
        let mut text = heapless::String::<LINE_BYTES>::new();
        if write!(text, "{line}").is_ok() {
            defmt::println!("{=str}", text.as_str());
        } else {
            defmt::println!(
                "error: a report line is longer than app::sink::LINE_BYTES ({=usize} bytes)",
                LINE_BYTES
            );
        }
    }
}
