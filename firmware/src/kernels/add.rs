//! Residual add, TFLite ADD semantics, element by element over equal shapes:
//! ```text
//! a' = (qa - zp_a) << left_shift          b' = (qb - zp_b) << left_shift
//! sum = mbqm(a', a_m, a_s) + mbqm(b', b_m, b_s)
//! y  = clamp(zp_y + mbqm(sum, out_m, out_s), act_min, act_max)
//! ```
//! The shifted inputs wrap for `left_shift > 23` (model validation rejects that) and the sum
//! saturates (TFLite adds plainly; both agree when it does not overflow).
//!
//! [`forward_in_place`] writes the sum over one of the inputs (the memory plan's in-place add,
//! `crate::plan_rules`): element `i` is read before it is written and never read again.
use super::KernelError;
#[cfg(not(any(shiftkit_dsp, shiftkit_scalar)))]
use crate::requant::form_smmlar;
use crate::requant::{mbqm, requantize, Requantizer};

/// Constants of one add (zero points from the three tensors, the rest from the op).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddParams {
    /// Zero point of input `a`.
    pub a_zero_point: i8,
    /// Zero point of input `b`.
    pub b_zero_point: i8,
    /// Zero point of the output.
    pub y_zero_point: i8,
    /// Left shift of both inputs before rescaling (20, as TFLite).
    pub left_shift: u8,
    /// Q31 multiplier of `a` to the common scale.
    pub a_multiplier: i32,
    /// Power-of-two exponent of `a`'s rescaling.
    pub a_shift: i32,
    /// Q31 multiplier of `b` to the common scale.
    pub b_multiplier: i32,
    /// Power-of-two exponent of `b`'s rescaling.
    pub b_shift: i32,
    /// Q31 multiplier of the sum to the output scale.
    pub out_multiplier: i32,
    /// Power-of-two exponent of the output rescaling.
    pub out_shift: i32,
    /// Lowest output value.
    pub act_min: i8,
    /// Highest output value.
    pub act_max: i8,
}

/// `y = a + b`, all three of the same length.
pub fn forward(y: &mut [i8], a: &[i8], b: &[i8], p: &AddParams) -> Result<(), KernelError> {
    if a.len() != y.len() || b.len() != y.len() {
        return Err(KernelError("add: input and output lengths differ"));
    }
    add_all(y, Src::In(a), Src::In(b), &Tables::new(p));
    Ok(())
}

/// Where an add reads one input: the output buffer itself (in place) or a separate slice.
#[derive(Clone, Copy)]
enum Src<'a> {
    Out,
    In(&'a [i8]),
}

/// The element loop of every add (one copy of it in the firmware). With the output stage's fast
/// form (every quantize-made add: [`Requantizer`]) it runs one of four tight loops over doubled
/// term tables, `2 sum` being the operand of that form; otherwise the general one.
#[inline(never)]
fn add_all(y: &mut [i8], a: Src, b: Src, t: &Tables) {
    if let (Some((m, r, e)), true) = (t.out.fast_constants(), t.doubled) {
        // |sum| <= 2^29 (the bound given to the requantizer), so 2 sum never overflows.
        fast_loop(y, a, b, &t.a, &t.b, (m, r, e));
        return;
    }
    for (i, out) in y.iter_mut().enumerate() {
        let read = |s: Src| match s {
            Src::Out => *out,
            Src::In(v) => v.get(i).copied().unwrap_or(0),
        };
        let (qa, qb) = (read(a), read(b));
        *out = t.add(qa, qb);
    }
}

/// The fast form's element loop: `y[i] = ssat8((smmlar(2s, m, r) + (2s >> 31)) >> e)` with
/// `2s = a2[a[i]] + b2[b[i]]` (tables indexed by the byte as u8).
#[cfg(not(any(shiftkit_dsp, shiftkit_scalar)))]
fn fast_loop(y: &mut [i8], a: Src, b: Src, a2: &[i32; 256], b2: &[i32; 256], c: (i32, i32, u32)) {
    let (m, r, e) = c;
    let f = |qa: i8, qb: i8| -> i8 {
        let s2 = a2[qa as u8 as usize].wrapping_add(b2[qb as u8 as usize]);
        // |2s| <= 2^30 and m >= 2^30: the fast form's bounds.
        let g = form_smmlar(s2, m, r).wrapping_add(s2 >> 31);
        (g >> e).clamp(-128, 127) as i8
    };
    // The callers checked that every input is as long as `y`.
    match (a, b) {
        (Src::Out, Src::In(v)) => y.iter_mut().zip(v).for_each(|(o, &qb)| *o = f(*o, qb)),
        (Src::In(v), Src::Out) => y.iter_mut().zip(v).for_each(|(o, &qa)| *o = f(qa, *o)),
        (Src::Out, Src::Out) => y.iter_mut().for_each(|o| *o = f(*o, *o)),
        (Src::In(va), Src::In(vb)) => y
            .iter_mut()
            .zip(va.iter().zip(vb))
            .for_each(|(o, (&qa, &qb))| *o = f(qa, qb)),
    }
}

/// The `asm!` element loops' pointers: `a`'s and `b`'s (`y`'s own for [`Src::Out`]), `y`'s, and
/// the length; `None` if `y` is empty or an input is shorter than it.
#[cfg(any(shiftkit_dsp, shiftkit_scalar))]
fn pointers(y: &mut [i8], a: Src, b: Src) -> Option<(*const i8, *const i8, *mut i8, usize)> {
    let n = y.len();
    let yp = y.as_mut_ptr();
    let src = |s: Src| match s {
        Src::Out => Some(yp.cast_const()),
        Src::In(v) => (v.len() >= n).then_some(v.as_ptr()),
    };
    Some((src(a)?, src(b)?, yp, n)).filter(|_| n > 0)
}

/// [`fast_loop`] on the DSP unit: 10 instructions per element, four elements a loop (the
/// first `n % 4` one at a time).
#[cfg(shiftkit_dsp)]
#[allow(unsafe_code)]
fn fast_loop(y: &mut [i8], a: Src, b: Src, a2: &[i32; 256], b2: &[i32; 256], c: (i32, i32, u32)) {
    let Some((pa, pb, yp, n)) = pointers(y, a, b) else {
        return; // the callers checked the lengths
    };
    // SAFETY: the loop runs `n >= 1` times; it reads `n` bytes from `pa` and from `pb` (each is
    // `y` itself or an input at least `n` long), one word of each table at the byte's unsigned
    // value (< 256), and writes `n` bytes to `y`. Element i is read (from `y` too when an input
    // is the output) before it is written, and never read again. No stack.
    unsafe {
        core::arch::asm!(
            ".macro shiftkit_add_one",
            "ldrb {qa}, [{pa}], #1",
            "ldrb {qb}, [{pb}], #1",
            "ldr {qa}, [{ta}, {qa}, lsl #2]",
            "ldr {qb}, [{tb}, {qb}, lsl #2]",
            "add {qa}, {qa}, {qb}",
            "smmlar {qb}, {qa}, {m}, {r}",
            "add {qb}, {qb}, {qa}, asr #31",
            "asr {qb}, {qb}, {e}",
            "ssat {qb}, #8, {qb}",
            "strb {qb}, [{py}], #1",
            ".endm",
            "tst {n}, #3",
            "beq 3f",
            "2:",
            "shiftkit_add_one",
            "sub {n}, {n}, #1",
            "tst {n}, #3",
            "bne 2b",
            "cmp {n}, #0",
            "beq 4f",
            "3:",
            ".rept 4",
            "shiftkit_add_one",
            ".endr",
            "subs {n}, {n}, #4",
            "bne 3b",
            "4:",
            ".purgem shiftkit_add_one",
            pa = inout(reg) pa => _,
            pb = inout(reg) pb => _,
            py = inout(reg) yp => _,
            n = inout(reg) n => _,
            ta = in(reg) a2.as_ptr(),
            tb = in(reg) b2.as_ptr(),
            m = in(reg) c.0,
            r = in(reg) c.1,
            e = in(reg) c.2,
            qa = out(reg) _,
            qb = out(reg) _,
            options(nostack),
        );
    }
}

/// [`fast_loop`] on RV32: 20 instructions per element (`smmlar` as `mul`, `mulh` and the low
/// word's bit 31, the saturation as two branches), two elements a loop (an odd first one
/// alone).
#[cfg(all(target_arch = "riscv32", shiftkit_scalar))]
#[allow(unsafe_code)]
fn fast_loop(y: &mut [i8], a: Src, b: Src, a2: &[i32; 256], b2: &[i32; 256], c: (i32, i32, u32)) {
    let Some((pa, pb, yp, n)) = pointers(y, a, b) else {
        return; // the callers checked the lengths
    };
    // SAFETY: the loop runs over `n >= 1` elements; it reads `n` bytes from `pa` and from `pb`
    // (each is `y` itself or an input at least `n` long; `end` is `pa + n`), one word of each
    // table at the byte's unsigned value (< 256), and writes `n` bytes to `y`. Element i is
    // read (from `y` too when an input is the output) before it is written, and never read
    // again. Registers only besides these; no stack.
    unsafe {
        core::arch::asm!(
            ".macro shiftkit_add_one k",
            "lbu {qa}, \\k({pa})",
            "lbu {qb}, \\k({pb})",
            "slli {qa}, {qa}, 2",
            "slli {qb}, {qb}, 2",
            "add {qa}, {qa}, {ta}",
            "add {qb}, {qb}, {tb}",
            "lw {qa}, 0({qa})",
            "lw {qb}, 0({qb})",
            "add {qa}, {qa}, {qb}", // 2s
            "mul {t}, {qa}, {m}",
            "mulh {qb}, {qa}, {m}",
            "srli {t}, {t}, 31",
            "add {qb}, {qb}, {t}",
            "add {qb}, {qb}, {r}",
            "srai {qa}, {qa}, 31",
            "add {qb}, {qb}, {qa}",
            "sra {qb}, {qb}, {e}",
            "bge {qb}, {lo}, 3f",
            "mv {qb}, {lo}",
            "3:",
            "bge {hi}, {qb}, 4f",
            "mv {qb}, {hi}",
            "4:",
            "sb {qb}, \\k({py})",
            ".endm",
            "andi {t}, {n}, 1",
            "beqz {t}, 5f",
            "shiftkit_add_one 0",
            "addi {pa}, {pa}, 1",
            "addi {pb}, {pb}, 1",
            "addi {py}, {py}, 1",
            "5:",
            "beq {pa}, {end}, 6f",
            "2:",
            "shiftkit_add_one 0",
            "shiftkit_add_one 1",
            "addi {pa}, {pa}, 2",
            "addi {pb}, {pb}, 2",
            "addi {py}, {py}, 2",
            "bne {pa}, {end}, 2b",
            "6:",
            ".purgem shiftkit_add_one",
            pa = inout(reg) pa => _,
            pb = inout(reg) pb => _,
            py = inout(reg) yp => _,
            end = in(reg) pa.wrapping_add(n),
            n = in(reg) n,
            ta = in(reg) a2.as_ptr(),
            tb = in(reg) b2.as_ptr(),
            m = in(reg) c.0,
            r = in(reg) c.1,
            e = in(reg) c.2,
            lo = in(reg) -128,
            hi = in(reg) 127,
            qa = out(reg) _,
            qb = out(reg) _,
            t = out(reg) _,
            options(nostack, preserves_flags),
        );
    }
}

/// [`fast_loop`] on Cortex-M0/M0+: about 37 instructions per element, two elements a loop (an
/// odd first one alone). `smmlar` is [`crate::requant::smmlar_halves`] (four `muls`, the
/// rounding from `asrs`'s carry by `adcs`); the constants live in the high registers, which
/// most Thumb-1 instructions cannot use but `mov`, `add` and `cmp` can.
#[cfg(all(target_arch = "arm", shiftkit_scalar))]
#[allow(unsafe_code)]
fn fast_loop(y: &mut [i8], a: Src, b: Src, a2: &[i32; 256], b2: &[i32; 256], c: (i32, i32, u32)) {
    let Some((pa, pb, yp, n)) = pointers(y, a, b) else {
        return; // the callers checked the lengths
    };
    let (m, r, e) = c;
    let args: [usize; 8] = [
        a2.as_ptr() as usize,
        b2.as_ptr() as usize,
        (m & 0xffff) as usize,
        (m >> 16) as usize,
        r as usize,
        e as usize,
        pa.wrapping_add(n) as usize,
        n & 1,
    ];
    // SAFETY: the loop runs over `n >= 1` elements; it reads `n` bytes from `pa` and from `pb`
    // (each is `y` itself or an input at least `n` long; `args[6]` is `pa + n`), one word of
    // each table at the byte's unsigned value (< 256), the eight words of `args`, and writes
    // `n` bytes to `y`. Element i is read (from `y` too when an input is the output) before it
    // is written, and never read again. r6 to r12 and lr, which cannot be operands here, are
    // pushed first and restored last; every byte pushed between is popped or dropped.
    unsafe {
        core::arch::asm!(
            "push {{r6, r7}}",
            "mov r4, r8",
            "mov r5, r9",
            "mov r6, r10",
            "mov r7, r11",
            "push {{r4, r5, r6, r7}}",
            "mov r4, r12",
            "mov r5, lr",
            "push {{r4, r5}}",
            "ldr r4, [r3, #0]",
            "mov r8, r4", // a2
            "ldr r4, [r3, #4]",
            "mov r9, r4", // b2
            "ldr r4, [r3, #8]",
            "mov r10, r4", // the multiplier's low half
            "ldr r4, [r3, #12]",
            "mov r11, r4", // its high half
            "ldr r4, [r3, #16]",
            "mov r12, r4", // R
            "ldr r4, [r3, #20]",
            "mov lr, r4", // e
            "ldr r4, [r3, #24]",
            "push {{r4}}", // [sp] = the end of a
            ".macro shiftkit_add_one k",
            "ldrb r3, [r0, #\\k]",
            "ldrb r4, [r1, #\\k]",
            "lsls r3, r3, #2",
            "lsls r4, r4, #2",
            "mov r5, r8",
            "ldr r3, [r5, r3]",
            "mov r5, r9",
            "ldr r4, [r5, r4]",
            "adds r3, r3, r4", // 2s
            "asrs r7, r3, #31",
            "add r7, r12", // R + (2s >> 31)
            "sxth r4, r3", // al
            "subs r3, r3, r4",
            "asrs r3, r3, #16", // ah
            "mov r5, r10",
            "mov r6, r5",
            "muls r6, r4, r6", // al bl
            "asrs r6, r6, #16",
            "muls r5, r3, r5", // ah bl
            "adds r6, r6, r5",
            "mov r5, r11",
            "muls r4, r5, r4", // al bh
            "adds r6, r6, r4", // S
            "muls r5, r3, r5", // ah bh
            "asrs r6, r6, #16", // carry = bit 15 of S
            "adcs r6, r5",      // smmlar(2s, m, 0)
            "adds r6, r6, r7",
            "mov r5, lr",
            "asrs r6, r5", // >> e
            "mov r5, r6",
            "adds r5, #128",
            "cmp r5, #255",
            "bls 3f",
            "asrs r6, r6, #31", // saturate: 127 ^ sign
            "movs r5, #127",
            "eors r6, r5",
            "3:",
            "strb r6, [r2, #\\k]",
            ".endm",
            "ldr r4, [r3, #28]",
            "cmp r4, #0",
            "beq 5f",
            "shiftkit_add_one 0",
            "adds r0, #1",
            "adds r1, #1",
            "adds r2, #1",
            "5:",
            "ldr r4, [sp]",
            "cmp r0, r4",
            "beq 6f",
            "2:",
            "shiftkit_add_one 0",
            "shiftkit_add_one 1",
            "adds r0, #2",
            "adds r1, #2",
            "adds r2, #2",
            "ldr r4, [sp]",
            "cmp r0, r4",
            "bne 2b",
            "6:",
            ".purgem shiftkit_add_one",
            "add sp, #4",
            "pop {{r4, r5}}",
            "mov r12, r4",
            "mov lr, r5",
            "pop {{r4, r5, r6, r7}}",
            "mov r8, r4",
            "mov r9, r5",
            "mov r10, r6",
            "mov r11, r7",
            "pop {{r6, r7}}",
            inout("r0") pa => _,
            inout("r1") pb => _,
            inout("r2") yp => _,
            inout("r3") args.as_ptr() => _,
            out("r4") _,
            out("r5") _,
        );
    }
}

/// Which inputs of an in-place add the output buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Over<'a> {
    /// `y` holds `a`; `b` is separate.
    A {
        /// The separate input `b`.
        b: &'a [i8],
    },
    /// `y` holds `b`; `a` is separate.
    B {
        /// The separate input `a`.
        a: &'a [i8],
    },
    /// `y` holds both (the two inputs are the same bytes).
    Both,
}

/// `y = a + b` with `y` holding one input (or both) on entry, as `over` says.
pub fn forward_in_place(y: &mut [i8], over: Over, p: &AddParams) -> Result<(), KernelError> {
    let other = match over {
        Over::A { b: o } | Over::B { a: o } => o,
        Over::Both => &[],
    };
    if over != Over::Both && other.len() != y.len() {
        return Err(KernelError("add: input and output lengths differ"));
    }
    let (a, b) = match over {
        Over::A { b } => (Src::Out, Src::In(b)),
        Over::B { a } => (Src::In(a), Src::Out),
        Over::Both => (Src::Out, Src::Out),
    };
    add_all(y, a, b, &Tables::new(p));
    Ok(())
}

/// `mbqm((q - zp) << ls, m, s)` for every int8 `q` (twice that if `double`) into `t`, indexed
/// by `q as u8`. For quantize's constants ([`fast_term`]: `m` in `[2^30, 2^31)`, a right shift
/// `e = -s` of at most 31, `ls <= 23`, so `|x| < 2^31`) each term is
/// `h = srdhm(x, m) = (x*m + 2^30) >> 31` (see `Requantizer`) rounded half away from zero by
/// `2^e`, with the product stepped from one `q` to the next; any other constants take `mbqm`.
#[inline(never)]
fn term_table(t: &mut [i32; 256], zp: i8, ls: u32, m: i32, s: i32, double: bool) {
    let d = double as u32;
    if !fast_term(ls, m, s) {
        for (i, v) in t.iter_mut().enumerate() {
            let x = (i as u8 as i8 as i32 - zp as i32).wrapping_shl(ls);
            *v = mbqm(x, m, s).wrapping_shl(d);
        }
        return;
    }
    // q from -128 up: the product x*m + 2^30 grows by m << ls a step (i64 adds, no multiply);
    // h = that >> 31 fits i32 (|x| < 2^31, m < 2^31). Rounding half away from zero by 2^e in
    // i32 without overflow: h >= 0 gives ((h >> (e-1)) + 1) >> 1 = (h + 2^(e-1)) >> e, and
    // h < 0 gives (((h - 1) >> (e-1)) + 1) >> 1 = (h - 1 + 2^(e-1)) >> e (floors of floors).
    // q runs up from -128, so the table fills from byte 128 and wraps to 0 at q = 0.
    let e = s.unsigned_abs();
    let step = (m as i64) << ls;
    let mut p = (-128 - zp as i64) * step + (1 << 30);
    if e == 0 {
        for i in 128..384usize {
            t[i & 255] = ((p >> 31) as i32) << d;
            p += step;
        }
        return;
    }
    for i in 128..384usize {
        let h = (p >> 31) as i32;
        t[i & 255] = ((((h + (h >> 31)) >> (e - 1)) + 1) >> 1) << d;
        p += step;
    }
}

/// Whether [`term_table`] takes its fast form for these constants (every quantize-made add):
/// then each term is a non-decreasing function of the input byte.
fn fast_term(ls: u32, m: i32, s: i32) -> bool {
    m >= 1 << 30 && (-31..=0).contains(&s) && ls <= 23
}

/// An add's per-input terms `mbqm((q - zp) << left_shift, m, s)` for all 256 values of `q`
/// (each depends on its own input byte only), and the output stage: per element two table
/// reads, a saturating add and one requantisation, instead of three requantisations.
struct Tables {
    a: [i32; 256],
    b: [i32; 256],
    out: Requantizer,
    /// The tables hold twice each term: the fast element loop's operand (see [`add_all`]).
    doubled: bool,
}

impl Tables {
    fn new(p: &AddParams) -> Self {
        let ls = p.left_shift as u32;
        let terms = [
            (p.a_zero_point, p.a_multiplier, p.a_shift),
            (p.b_zero_point, p.b_multiplier, p.b_shift),
        ];
        let monotone = terms.iter().all(|&(_, m, s)| fast_term(ls, m, s));
        let mut tables = [[0i32; 256]; 2];
        // The largest |sum| the element loop can form (the sum saturates at i32's ends). Fast
        // terms are monotone in the input byte, so the tables' ends bound them, and whether the
        // fast element loop runs (tables built doubled) is known before they are built.
        let mut bound = 0u32;
        for (t, &(zp, m, s)) in tables.iter_mut().zip(&terms) {
            let mut end = 0;
            if monotone {
                for q in [-128, 127] {
                    end = end.max(mbqm((q - zp as i32).wrapping_shl(ls), m, s).unsigned_abs());
                }
            } else {
                term_table(t, zp, ls, m, s, false);
                end = t.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            }
            bound = bound.saturating_add(end);
        }
        let out = Requantizer::new(
            p.out_multiplier,
            p.out_shift,
            p.y_zero_point,
            p.act_min,
            p.act_max,
            bound,
        );
        let doubled = monotone && out.fast_constants().is_some() && out.full_range();
        if monotone {
            for (t, &(zp, m, s)) in tables.iter_mut().zip(&terms) {
                term_table(t, zp, ls, m, s, doubled);
            }
        }
        let [a, b] = tables;
        Tables { a, b, out, doubled }
    }

    /// `add(qa, qb, p)`, exactly.
    #[inline(always)]
    fn add(&self, qa: i8, qb: i8) -> i8 {
        let d = self.doubled as u32; // doubled entries halve exactly
        let sum = (self.a[qa as u8 as usize] >> d).saturating_add(self.b[qb as u8 as usize] >> d);
        self.out.apply(sum)
    }
}

/// One element, as the formulas say (the tables above must equal it; tested, and on the
/// device by `fast::selftest::add`).
pub(crate) fn add(qa: i8, qb: i8, p: &AddParams) -> i8 {
    let ls = p.left_shift as u32;
    let a1 = (qa as i32 - p.a_zero_point as i32).wrapping_shl(ls);
    let b1 = (qb as i32 - p.b_zero_point as i32).wrapping_shl(ls);
    let sum =
        mbqm(a1, p.a_multiplier, p.a_shift).saturating_add(mbqm(b1, p.b_multiplier, p.b_shift));
    requantize(
        sum,
        p.out_multiplier,
        p.out_shift,
        p.y_zero_point,
        p.act_min,
        p.act_max,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tables give exactly the formula's result for every input pair, on varied constants.
    #[test]
    fn tables_equal_the_formula() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..40 {
            let r = next();
            let m = |x: u64| (1i32 << 30) | ((x >> 20) as i32 & ((1 << 30) - 1));
            let p = AddParams {
                a_zero_point: r as i8,
                b_zero_point: (r >> 8) as i8,
                y_zero_point: (r >> 16) as i8,
                left_shift: 20,
                a_multiplier: m(next()),
                a_shift: -((next() % 4) as i32),
                b_multiplier: m(next()),
                b_shift: -((next() % 4) as i32),
                out_multiplier: m(next()),
                out_shift: -18 - (next() % 6) as i32,
                act_min: if r % 2 == 0 { (r >> 16) as i8 } else { -128 },
                act_max: 127,
            };
            let t = Tables::new(&p);
            for qa in i8::MIN..=i8::MAX {
                for qb in i8::MIN..=i8::MAX {
                    assert_eq!(t.add(qa, qb), add(qa, qb, &p), "{qa} + {qb} with {p:?}");
                }
            }
        }
    }

    /// Every element loop (separate inputs, in place over either input or both), fast form or
    /// not, gives the formula's result for every input pair.
    #[test]
    fn element_loops_equal_the_formula() {
        let m = |x: u32| (1i32 << 30) | (x as i32 & ((1 << 30) - 1));
        let qa: [i8; 65536] = core::array::from_fn(|i| i as u8 as i8);
        let qb: [i8; 65536] = core::array::from_fn(|i| (i >> 8) as u8 as i8);
        // Realistic constants (the fast form), a right shift of 0 (not fast) and a clamp.
        for (out_shift, act_min) in [(-20, -128), (-17, -128), (0, -128), (-20, -5)] {
            let p = AddParams {
                a_zero_point: -7,
                b_zero_point: 12,
                y_zero_point: -128,
                left_shift: 20,
                a_multiplier: m(0x1234_5678),
                a_shift: -1,
                b_multiplier: m(0x7654_3210),
                b_shift: 0,
                out_multiplier: m(0x2468_ace0),
                out_shift,
                act_min,
                act_max: 127,
            };
            let want: [i8; 65536] = core::array::from_fn(|i| add(qa[i], qb[i], &p));
            let mut y = [0i8; 65536];
            forward(&mut y, &qa, &qb, &p).unwrap();
            assert_eq!(y, want, "separate, shift {out_shift}");
            let mut y = qa;
            forward_in_place(&mut y, Over::A { b: &qb }, &p).unwrap();
            assert_eq!(y, want, "over a, shift {out_shift}");
            let mut y = qb;
            forward_in_place(&mut y, Over::B { a: &qa }, &p).unwrap();
            assert_eq!(y, want, "over b, shift {out_shift}");
            let both: [i8; 65536] = core::array::from_fn(|i| add(qa[i], qa[i], &p));
            let mut y = qa;
            forward_in_place(&mut y, Over::Both, &p).unwrap();
            assert_eq!(y, both, "over both, shift {out_shift}");
        }
    }

    /// The term tables equal `mbqm` entry by entry, at the ends of the ranges validation allows
    /// (left shifts up to 23, right shifts up to 31, extreme multipliers and zero points).
    #[test]
    fn term_tables_equal_mbqm_at_the_edges() {
        for ls in [0u32, 1, 20, 23] {
            for s in [0i32, -1, -15, -30, -31, 1, 5] {
                for m in [1i32 << 30, i32::MAX, (1 << 30) + 12345, 0, -5] {
                    for zp in [-128i8, -1, 0, 127] {
                        for double in [false, true] {
                            let mut t = [0; 256];
                            term_table(&mut t, zp, ls, m, s, double);
                            for (i, &v) in t.iter().enumerate() {
                                let x = (i as u8 as i8 as i32 - zp as i32).wrapping_shl(ls);
                                let want = mbqm(x, m, s).wrapping_shl(double as u32);
                                assert_eq!(v, want, "ls {ls} s {s} m {m} zp {zp} q {i} {double}");
                            }
                        }
                    }
                }
            }
        }
    }
}
