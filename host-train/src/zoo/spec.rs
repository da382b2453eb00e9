//! Model specs: a zoo family at any size and input, `FAMILY[:KEY=VALUE,...]`, e.g.
//! `flat-4c:in=96x96x3,w=16,blocks=2-2-2` (docs/design.md, "Model specs").
//!
//! [`parse`] turns a spec into an [`Arch`] whose `name` is the canonical spec ([`Arch::spec`]),
//! which parses back to the same `Arch`. A spec that cannot build a network that trains,
//! quantizes and runs is refused with one line saying why, before anything is loaded.
use super::{Arch, BlockKind, Stem};
use crate::graph::{Neighbourhood, Shape, ShiftSpec};

/// Why a `--model` value gives no network.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Neither a zoo name nor a spec of a known family.
    #[error(
        "unknown model '{name}' (run `cargo xtask zoo` to list the zoo; or give a spec \
         FAMILY[:KEY=VALUE,...], FAMILY one of {})",
        family_list()
    )]
    Unknown { name: String },
    /// A spec of a known family that cannot work.
    #[error("model spec '{spec}': {why}")]
    Spec { spec: String, why: String },
}

/// The families of the spec syntax: (name, block, shift neighbourhood).
pub const FAMILIES: &[(&str, BlockKind, Option<Neighbourhood>)] = &[
    ("bottleneck", BlockKind::Bottleneck, None),
    ("noshift", BlockKind::NoShift, None),
    ("shift-4c", BlockKind::SingleShift, Some(Neighbourhood::C4)),
    ("shift-8c", BlockKind::SingleShift, Some(Neighbourhood::C8)),
    (
        "multishift-4c",
        BlockKind::MultiShift,
        Some(Neighbourhood::C4),
    ),
    (
        "multishift-8c",
        BlockKind::MultiShift,
        Some(Neighbourhood::C8),
    ),
    ("flat-4c", BlockKind::Flat, Some(Neighbourhood::C4)),
    ("flat-8c", BlockKind::Flat, Some(Neighbourhood::C8)),
    ("basic", BlockKind::Basic, None),
    ("basic-4c", BlockKind::BasicShift, Some(Neighbourhood::C4)),
    ("basic-8c", BlockKind::BasicShift, Some(Neighbourhood::C8)),
];

/// The keys, in the order the canonical spec writes them.
pub const KEYS: &[&str] = &[
    "in",
    "classes",
    "stem",
    "stem-stride",
    "blocks",
    "w",
    "widths",
    "mids",
    "strides",
    "centre",
    "inner",
];

/// Defaults of the keys a spec leaves out.
pub const DEFAULT_INPUT: Shape = Shape { h: 32, w: 32, c: 3 };
pub const DEFAULT_CLASSES: usize = 10;
pub const DEFAULT_STAGES: usize = 3;
pub const DEFAULT_BLOCKS: usize = 2;
/// The `.skq` format stores sizes, channels and classes as u16.
const MAX_DIM: usize = u16::MAX as usize;
/// Blocks over all stages: the `.skq` format holds at most 65,535 ops (about 13 per block).
const MAX_BLOCKS: usize = 4096;

/// The family names, comma-separated.
pub fn family_list() -> String {
    FAMILIES.iter().map(|f| f.0).collect::<Vec<_>>().join(", ")
}

/// Blocks with a bottleneck (mid width below the output width): `mids=` applies to these.
fn has_mids(block: BlockKind) -> bool {
    matches!(
        block,
        BlockKind::Bottleneck | BlockKind::SingleShift | BlockKind::NoShift | BlockKind::MultiShift
    )
}

/// The default `w` (first stage width; stage `s` is `w * 2^s`): 64 for bottleneck families, so
/// that the default mids (`w / 4` = 16) hold the 9 groups of an 8C shift; 16 otherwise.
pub fn default_w(block: BlockKind) -> usize {
    if has_mids(block) {
        64
    } else {
        16
    }
}

fn default_strides(n: usize) -> Vec<usize> {
    (0..n).map(|s| if s == 0 { 1 } else { 2 }).collect()
}

fn doubling(w: usize, n: usize) -> Vec<usize> {
    (0..n).map(|s| w << s).collect()
}

fn default_mids(block: BlockKind, widths: &[usize]) -> Vec<usize> {
    if has_mids(block) {
        widths.iter().map(|w| w / 4).collect()
    } else {
        widths.to_vec()
    }
}

fn join(v: &[usize]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

fn stem_stride(stem: Stem) -> usize {
    match stem {
        Stem::Conv3 => 1,
        Stem::Conv3s2 => 2,
        Stem::ImageNet => 4,
    }
}

fn family_of(block: BlockKind, shift: Option<Neighbourhood>) -> Option<&'static str> {
    FAMILIES
        .iter()
        .find(|f| f.1 == block && f.2 == shift)
        .map(|f| f.0)
}

impl Arch {
    /// The canonical spec of this network: its family, then every key whose value differs from
    /// what the spec syntax would default it to, in [`KEYS`] order. [`parse`] of it gives this
    /// `Arch` back (named by the spec) for every network the zoo or a spec builds.
    pub fn spec(&self) -> String {
        let family = family_of(self.block, self.shift).unwrap_or("unknown");
        let n = self.blocks.len();
        let mut k: Vec<String> = vec![];
        let i = self.input;
        if i != DEFAULT_INPUT {
            k.push(format!("in={}x{}x{}", i.h, i.w, i.c));
        }
        if self.classes != DEFAULT_CLASSES {
            k.push(format!("classes={}", self.classes));
        }
        if Some(&self.stem_width) != self.mids.first() {
            k.push(format!("stem={}", self.stem_width));
        }
        if self.stem != Stem::Conv3 {
            k.push(format!("stem-stride={}", stem_stride(self.stem)));
        }
        let mut lists = 0;
        let blocks_at = k.len();
        if self.blocks != vec![DEFAULT_BLOCKS; n] {
            k.push(format!("blocks={}", join(&self.blocks)));
            lists += 1;
        }
        let w0 = self.widths.first().copied().unwrap_or(0);
        if self.widths != doubling(w0, n) {
            k.push(format!("widths={}", join(&self.widths)));
            lists += 1;
        } else if w0 != default_w(self.block) {
            k.push(format!("w={w0}"));
        }
        if has_mids(self.block) && self.mids != default_mids(self.block, &self.widths) {
            k.push(format!("mids={}", join(&self.mids)));
            lists += 1;
        }
        if self.strides != default_strides(n) {
            k.push(format!("strides={}", join(&self.strides)));
            lists += 1;
        }
        if lists == 0 && n != DEFAULT_STAGES {
            // Nothing else says how many stages there are.
            k.insert(blocks_at, format!("blocks={}", join(&self.blocks)));
        }
        if self.shift.is_some() && !self.centre_group {
            k.push("centre=0".into());
        }
        if matches!(self.block, BlockKind::MultiShift | BlockKind::Flat) && !self.inner_residual {
            k.push("inner=0".into());
        }
        if k.is_empty() {
            family.to_string()
        } else {
            format!("{family}:{}", k.join(","))
        }
    }
}

/// A whole number from 1 to `max` for `key`.
fn number(key: &str, v: &str, max: usize) -> Result<usize, String> {
    let n: usize = v
        .parse()
        .map_err(|_| format!("{key}={v}: '{v}' is not a whole number"))?;
    if n == 0 {
        return Err(format!("{key}={v}: must be at least 1"));
    }
    if n > max {
        return Err(format!("{key}={v}: at most {max}"));
    }
    Ok(n)
}

/// `N1-N2-...`, one whole number >= 1 per stage.
fn list(key: &str, v: &str, what: &str) -> Result<Vec<usize>, String> {
    v.split('-')
        .enumerate()
        .map(|(s, x)| {
            let n: usize = x
                .parse()
                .map_err(|_| format!("{key}={v}: '{x}' is not a whole number"))?;
            if n == 0 {
                return Err(format!(
                    "{key}={v}: stage {} has zero {what}; every stage needs at least 1",
                    s + 1
                ));
            }
            Ok(n)
        })
        .collect()
}

fn flag(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("{key}={v}: expected 0 or 1")),
    }
}

fn shape(v: &str) -> Result<Shape, String> {
    let bad = || format!("in={v}: expected HxWxC, e.g. in=96x96x3");
    let p: Vec<&str> = v.split('x').collect();
    if p.len() != 3 {
        return Err(bad());
    }
    let d = p
        .iter()
        .map(|x| x.parse::<usize>().map_err(|_| bad()))
        .collect::<Result<Vec<_>, _>>()?;
    if d.contains(&0) {
        return Err(format!("in={v}: every size must be at least 1"));
    }
    if d.iter().any(|&x| x > MAX_DIM) {
        return Err(format!("in={v}: every size must be at most {MAX_DIM}"));
    }
    Ok(Shape::new(d[0], d[1], d[2]))
}

/// Parses a spec `FAMILY[:KEY=VALUE,...]` (docs/design.md, "Model specs") into its network,
/// named by its canonical spec. Any failure is one line saying why.
pub fn parse(s: &str) -> Result<Arch, ModelError> {
    let (family, knobs) = match s.split_once(':') {
        Some((f, k)) => (f, Some(k)),
        None => (s, None),
    };
    let spec_err = |why: String| ModelError::Spec {
        spec: s.to_string(),
        why,
    };
    let Some(&(_, block, shift)) = FAMILIES.iter().find(|f| f.0 == family) else {
        return Err(match knobs {
            None => ModelError::Unknown { name: s.into() },
            Some(_) => spec_err(format!(
                "unknown family '{family}' (families: {})",
                family_list()
            )),
        });
    };
    let mut given: Vec<(&str, &str)> = vec![];
    if let Some(knobs) = knobs {
        if knobs.is_empty() {
            return Err(spec_err(format!(
                "nothing after ':' (write {family} alone for the defaults)"
            )));
        }
        for kv in knobs.split(',') {
            let (k, v) = kv.split_once('=').ok_or_else(|| {
                spec_err(if kv.is_empty() {
                    "an empty item (two commas in a row, or one at the end)".into()
                } else {
                    format!("'{kv}' is not KEY=VALUE")
                })
            })?;
            if !KEYS.contains(&k) {
                return Err(spec_err(format!(
                    "unknown key '{k}' (keys: {})",
                    KEYS.join(", ")
                )));
            }
            if given.iter().any(|g| g.0 == k) {
                return Err(spec_err(format!("{k}= is given twice")));
            }
            given.push((k, v));
        }
    }
    build(family, block, shift, &given).map_err(spec_err)
}

fn build(
    family: &str,
    block: BlockKind,
    shift: Option<Neighbourhood>,
    given: &[(&str, &str)],
) -> Result<Arch, String> {
    let get = |k: &str| given.iter().find(|g| g.0 == k).map(|g| g.1);
    if shift.is_none() && get("centre").is_some() {
        return Err(format!(
            "centre= needs a shift family ({family}-4c or similar); {family} has no shift"
        ));
    }
    if !matches!(block, BlockKind::MultiShift | BlockKind::Flat) && get("inner").is_some() {
        return Err(format!(
            "inner= applies to multishift-* and flat-* only, not {family}"
        ));
    }
    if !has_mids(block) && get("mids").is_some() {
        return Err(format!(
            "mids= applies to bottleneck families only (bottleneck, noshift, shift-*, \
             multishift-*); {family} blocks are as wide inside as their output"
        ));
    }
    if get("w").is_some() && get("widths").is_some() {
        return Err("give widths= or w=, not both".into());
    }
    let input = get("in").map(shape).transpose()?.unwrap_or(DEFAULT_INPUT);
    let classes = match get("classes") {
        Some(v) => number("classes", v, MAX_DIM)?,
        None => DEFAULT_CLASSES,
    };
    if classes < 2 {
        return Err(format!("classes={classes}: a classifier needs at least 2"));
    }
    // Every list has one value per stage; the first list given fixes the number of stages.
    let mut lists: Vec<(&str, Vec<usize>)> = vec![];
    for (key, what, max) in [
        ("blocks", "blocks", 256),
        ("widths", "channels", MAX_DIM),
        ("mids", "channels", MAX_DIM),
        ("strides", "stride", 2),
    ] {
        if let Some(v) = get(key) {
            let l = list(key, v, what)?;
            if let Some(bad) = l.iter().position(|&x| x > max) {
                return Err(if key == "strides" {
                    format!(
                        "strides={v}: stage {} has stride {}; a stage's stride is 1 or 2",
                        bad + 1,
                        l[bad]
                    )
                } else {
                    format!(
                        "{key}={v}: stage {} has {} {what}, at most {max}",
                        bad + 1,
                        l[bad]
                    )
                });
            }
            if let Some((k0, l0)) = lists.first() {
                if l0.len() != l.len() {
                    return Err(format!(
                        "{k0}= has {} stages but {key}= has {}: every list needs one value per stage",
                        l0.len(),
                        l.len()
                    ));
                }
            }
            lists.push((key, l));
        }
    }
    let n = lists.first().map_or(DEFAULT_STAGES, |l| l.1.len());
    let take = |k: &str| lists.iter().find(|l| l.0 == k).map(|l| l.1.clone());
    let blocks = take("blocks").unwrap_or(vec![DEFAULT_BLOCKS; n]);
    if blocks.iter().sum::<usize>() > MAX_BLOCKS {
        return Err(format!(
            "{} blocks in all: the .skq format holds at most about {MAX_BLOCKS}",
            blocks.iter().sum::<usize>()
        ));
    }
    let widths = match (take("widths"), get("w")) {
        (Some(w), _) => w,
        (None, Some(v)) => {
            let w = number("w", v, MAX_DIM)?;
            let top = (w as u128) << (n - 1);
            if top > MAX_DIM as u128 {
                return Err(format!(
                    "w={w}: stage {n} would be {top} channels wide, at most {MAX_DIM}"
                ));
            }
            doubling(w, n)
        }
        (None, None) => doubling(default_w(block), n),
    };
    let mids = match take("mids") {
        Some(m) => m,
        None => {
            let m = default_mids(block, &widths);
            if let Some(s) = m.iter().position(|&x| x == 0) {
                return Err(format!(
                    "stage {} is {} channels wide, so its default mid width (a quarter) is 0; \
                     widen it or give mids=",
                    s + 1,
                    widths[s]
                ));
            }
            m
        }
    };
    let strides = take("strides").unwrap_or_else(|| default_strides(n));
    let stem_width = match get("stem") {
        Some(v) => number("stem", v, MAX_DIM)?,
        None => mids[0],
    };
    let stem = match get("stem-stride") {
        None | Some("1") => Stem::Conv3,
        Some("2") => Stem::Conv3s2,
        Some("4") => Stem::ImageNet,
        Some(v) => {
            return Err(format!(
                "stem-stride={v}: expected 1 (3x3 conv), 2 (3x3/2 conv) or 4 (7x7/2 conv + 3x3/2 max pool)"
            ))
        }
    };
    let centre_group = match get("centre") {
        Some(v) => flag("centre", v)?,
        None => true,
    };
    let inner_residual = matches!(block, BlockKind::MultiShift | BlockKind::Flat)
        && match get("inner") {
            Some(v) => flag("inner", v)?,
            None => true,
        };
    let mut arch = Arch {
        name: String::new(),
        input,
        classes,
        stem,
        stem_width,
        block,
        blocks,
        widths,
        mids,
        strides,
        shift,
        centre_group,
        inner_residual,
    };
    check(&arch)?;
    arch.name = arch.spec();
    Ok(arch)
}

/// The reason `arch` cannot be built, trained, quantized and run, if any: too few channels for
/// the shift groups, or an input the stride-2 steps cannot halve.
pub fn check(arch: &Arch) -> Result<(), String> {
    check_shift_channels(arch)?;
    check_input(arch)
}

fn check_shift_channels(arch: &Arch) -> Result<(), String> {
    let Some(kind) = arch.shift else {
        return Ok(());
    };
    let spec = ShiftSpec {
        kind,
        centre_group: arch.centre_group,
    };
    let min = spec.min_channels();
    let groups = format!(
        "the {min} shift groups of {} {}",
        match kind {
            Neighbourhood::C4 => "4C",
            Neighbourhood::C8 => "8C",
        },
        if arch.centre_group {
            "with a centre group"
        } else {
            "without a centre group"
        }
    );
    let short = |what: String, c: usize| {
        Err(format!(
            "{what} has {c} channels, fewer than {groups}: give it at least {min}"
        ))
    };
    // The channels every shifted conv reads, walking the blocks as `Arch::graph` builds them.
    let mut cin = (
        format!("the stem (stem={})", arch.stem_width),
        arch.stem_width,
    );
    for s in 0..arch.blocks.len() {
        let (mid, out) = (arch.mids[s], arch.widths[s]);
        let mid_what = format!("stage {}'s mid width", s + 1);
        let out_what = format!("stage {}'s width", s + 1);
        for _ in 0..arch.blocks[s] {
            let reads: Vec<(String, usize)> = match arch.block {
                BlockKind::Flat => vec![cin.clone(), (out_what.clone(), mid)],
                BlockKind::MultiShift => vec![cin.clone(), (mid_what.clone(), mid)],
                BlockKind::SingleShift => vec![(mid_what.clone(), mid)],
                BlockKind::BasicShift => vec![cin.clone(), (out_what.clone(), out)],
                _ => vec![],
            };
            for (what, c) in reads {
                if c < min {
                    return short(what, c);
                }
            }
            cin = (out_what.clone(), out);
        }
    }
    Ok(())
}

/// Where one spatial dimension stops: the stage (from 1), and whether its size there is odd (a
/// 2x2 average pool cannot halve it) rather than below 2.
#[derive(Clone, Copy)]
struct Stop {
    stage: usize,
    odd: bool,
}

/// The size the stem leaves of an input size `x`.
fn after_stem(stem: Stem, x: usize) -> usize {
    match stem {
        Stem::Conv3 => x,
        Stem::Conv3s2 => (x - 1) / 2 + 1,
        Stem::ImageNet => ((x - 1) / 2) / 2 + 1,
    }
}

/// Walks one spatial dimension of size `x` through the stem and the stages, as `Arch::graph`
/// builds them: the size entering each stage up to where it stops, and the stop if any. Shift
/// blocks halve with a 2x2 average pool (even sizes only); 3x3 blocks with a strided conv. A
/// stride-2 stage needs at least 2 pixels.
fn walk(arch: &Arch, x: usize) -> (Vec<usize>, Option<Stop>) {
    let pool = !matches!(arch.block, BlockKind::Bottleneck | BlockKind::Basic);
    let mut x = after_stem(arch.stem, x);
    let mut sizes = vec![];
    for (s, &st) in arch.strides.iter().enumerate() {
        sizes.push(x);
        if st == 2 {
            let stop = |odd| Stop { stage: s + 1, odd };
            if x < 2 {
                return (sizes, Some(stop(false)));
            }
            if pool && x % 2 == 1 {
                return (sizes, Some(stop(true)));
            }
            x = (x - 1) / 2 + 1;
        }
    }
    (sizes, None)
}

fn check_input(arch: &Arch) -> Result<(), String> {
    let i = arch.input;
    let ((hs, h), (ws, w)) = (walk(arch, i.h), walk(arch, i.w));
    // The first stage where either dimension stops, with both sizes there.
    let stop = match (h, w) {
        (None, None) => return Ok(()),
        (Some(a), Some(b)) if b.stage < a.stage => b,
        (Some(a), _) | (None, Some(a)) => a,
    };
    let (sh, sw) = (hs[stop.stage - 1], ws[stop.stage - 1]);
    let works = |x: usize| walk(arch, x).1.is_none();
    let smallest = (1..=MAX_DIM).find(|&x| works(x)).unwrap_or(MAX_DIM);
    // The nearest size above that works, rounded up to a multiple of the stem's stride when that
    // works too (a user expects 128 rather than 127).
    let above = |x: usize| {
        let y = (x..=MAX_DIM).find(|&x| works(x)).unwrap_or(x);
        let r = y.next_multiple_of(stem_stride(arch.stem));
        if works(r) {
            r
        } else {
            y
        }
    };
    let stage = stop.stage;
    if stop.odd {
        return Err(format!(
            "in={}x{}x{}: stage {stage} gets {sh}x{sw}, which its stride-2 2x2 average pool cannot \
             halve (it needs even sizes); try in={}x{}x{} (the nearest above; the smallest that \
             works is {smallest}x{smallest})",
            i.h,
            i.w,
            i.c,
            above(i.h),
            above(i.w),
            i.c,
        ));
    }
    let steps = arch.strides.iter().filter(|&&s| s == 2).count();
    let stem = match arch.stem {
        Stem::Conv3 => "",
        Stem::Conv3s2 => " after a stride-2 stem",
        Stem::ImageNet => " after a stride-4 stem",
    };
    Err(format!(
        "in={}x{}x{} is too small for {steps} stride-2 stages{stem}: stage {stage} would get \
         {sh}x{sw}; the smallest input that works is {smallest}x{smallest}",
        i.h, i.w, i.c,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::{arch, resolve, NAMES};
    use super::*;
    use crate::graph::Graph;

    fn why(s: &str) -> String {
        match parse(s) {
            Err(ModelError::Spec { why, .. }) => why,
            other => panic!("{s}: expected a spec error, got {other:?}"),
        }
    }

    /// The graph without its name, to compare networks named differently.
    fn unnamed(a: &Arch) -> Graph {
        let mut g = a.graph();
        g.name.clear();
        g
    }

    #[test]
    fn defaults() {
        let a = parse("flat-4c").unwrap();
        assert_eq!(a.name, "flat-4c");
        assert_eq!(a.input, Shape::new(32, 32, 3));
        assert_eq!(a.classes, 10);
        assert_eq!((a.stem, a.stem_width), (Stem::Conv3, 16));
        assert_eq!(a.blocks, [2, 2, 2]);
        assert_eq!(a.widths, [16, 32, 64]);
        assert_eq!(a.mids, a.widths);
        assert_eq!(a.strides, [1, 2, 2]);
        assert_eq!(a.shift, Some(Neighbourhood::C4));
        assert!(a.centre_group && a.inner_residual);
        let m = parse("multishift-8c").unwrap();
        assert_eq!(
            (m.widths.clone(), m.mids.clone()),
            (vec![64, 128, 256], vec![16, 32, 64])
        );
        assert_eq!(m.stem_width, 16);
        let b = parse("basic").unwrap();
        assert_eq!((b.shift, b.inner_residual), (None, false));
        // The number of stages follows the lists given.
        let two = parse("flat-8c:strides=2-2").unwrap();
        assert_eq!((two.blocks, two.widths), (vec![2, 2], vec![16, 32]));
        for &(f, ..) in FAMILIES {
            let a = parse(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            a.graph().validate().unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn specs_round_trip_canonically() {
        for (given, canonical) in [
            ("flat-4c:in=96x96x3,w=16,blocks=2-2-2", "flat-4c:in=96x96x3"),
            (
                "flat-8c:blocks=1-2-3-1,in=64x64x1,centre=0,stem-stride=2,w=12",
                "flat-8c:in=64x64x1,stem-stride=2,blocks=1-2-3-1,w=12,centre=0",
            ),
            (
                "multishift-4c:widths=40-80,mids=10-20,inner=0,classes=2",
                "multishift-4c:classes=2,blocks=2-2,w=40,inner=0",
            ),
            (
                "shift-8c:widths=72-96-200,mids=9-24-50,strides=2-1-2,stem=8",
                "shift-8c:stem=8,widths=72-96-200,mids=9-24-50,strides=2-1-2",
            ),
            ("basic:blocks=1-1", "basic:blocks=1-1"),
            (
                "basic-4c:stem-stride=4,in=64x64x3",
                "basic-4c:in=64x64x3,stem-stride=4",
            ),
            ("bottleneck:w=64", "bottleneck"),
            ("noshift:blocks=3-3-3,strides=1-2-2", "noshift:blocks=3-3-3"),
        ] {
            let a = parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(a.name, canonical, "{given}");
            assert_eq!(parse(&a.name).unwrap(), a, "{given}");
            assert_eq!(resolve(given).unwrap(), a, "{given}");
            a.graph()
                .validate()
                .unwrap_or_else(|e| panic!("{given}: {e}"));
        }
    }

    /// Every zoo network is a spec of its family: the spec builds the very same graph.
    #[test]
    fn every_zoo_network_is_a_spec() {
        for n in NAMES.iter().chain(&["tiny-multishift-4c", "tiny-flat-8c"]) {
            let named = arch(n).unwrap();
            let spec = named.spec();
            let a = parse(&spec).unwrap_or_else(|e| panic!("{n} as {spec}: {e}"));
            assert_eq!(a.name, spec);
            assert_eq!(unnamed(&a), unnamed(&named), "{n} as {spec}");
        }
        let mnist = "flat-4c:in=28x28x1,stem=16,w=32,strides=2-2";
        assert_eq!(arch("mnist-flat-4c").unwrap().spec(), mnist);
        let (a, b) = (
            parse(mnist).unwrap().graph(),
            arch("mnist-flat-4c").unwrap().graph(),
        );
        assert_eq!((a.param_count(), a.macs()), (b.param_count(), b.macs()));
        assert_eq!(a.peak_activation_bytes(), b.peak_activation_bytes());
        assert_eq!(arch("resnet8").unwrap().spec(), "basic:blocks=1-1-1");
        assert_eq!(
            arch("imagenet-flat-8c").unwrap().spec(),
            "flat-8c:in=224x224x3,classes=1000,stem=64,stem-stride=4,blocks=1-1-8-1,w=256"
        );
        // Names resolve as before, and keep their names.
        for n in NAMES {
            assert_eq!(resolve(n).unwrap(), arch(n).unwrap());
        }
    }

    #[test]
    fn with_classes_and_channels_rename() {
        let a = parse("flat-4c:in=96x96x3").unwrap();
        assert_eq!(a.clone().with_classes(10), a);
        let b = a.with_classes(2).with_channels(1);
        assert_eq!((b.classes, b.input.c), (2, 1));
        assert_eq!(b.name, "flat-4c:in=96x96x1,classes=2");
        assert_eq!(parse(&b.name).unwrap(), b);
        let z = arch("cifar-flat-4c").unwrap();
        assert_eq!(z.clone().with_classes(100).name, "cifar-flat-4c");
        assert_eq!(z.with_classes(10).name, "flat-4c:stem=16,blocks=4-4-4,w=64");
    }

    #[test]
    fn unknown_names_and_families() {
        assert_eq!(
            resolve("resnet9000"),
            Err(ModelError::Unknown {
                name: "resnet9000".into()
            })
        );
        let e = resolve("resnet9000").unwrap_err().to_string();
        assert!(
            e.contains("cargo xtask zoo") && e.contains("flat-4c"),
            "{e}"
        );
        assert!(why("flat-5c:w=8").starts_with("unknown family 'flat-5c' (families: bottleneck,"));
        let e = parse("flat-4c:w=x").unwrap_err().to_string();
        assert_eq!(
            e,
            "model spec 'flat-4c:w=x': w=x: 'x' is not a whole number"
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn every_error_is_one_line_saying_why() {
        for (spec, want) in [
            ("flat-4c:", "nothing after ':' (write flat-4c alone for the defaults)"),
            ("flat-4c:w=8,,", "an empty item (two commas in a row, or one at the end)"),
            ("flat-4c:w", "'w' is not KEY=VALUE"),
            ("flat-4c:depth=3", "unknown key 'depth' (keys: in, classes, stem, stem-stride, blocks, w, widths, mids, strides, centre, inner)"),
            ("flat-4c:w=8,w=16", "w= is given twice"),
            ("flat-4c:w=8,widths=8-16-32", "give widths= or w=, not both"),
            ("flat-4c:w=-3", "w=-3: '-3' is not a whole number"),
            ("flat-4c:w=0", "w=0: must be at least 1"),
            ("flat-4c:w=40000", "w=40000: stage 3 would be 160000 channels wide, at most 65535"),
            ("flat-4c:stem=1.5", "stem=1.5: '1.5' is not a whole number"),
            ("flat-4c:classes=1", "classes=1: a classifier needs at least 2"),
            ("flat-4c:classes=ten", "classes=ten: 'ten' is not a whole number"),
            ("flat-4c:in=96x96", "in=96x96: expected HxWxC, e.g. in=96x96x3"),
            ("flat-4c:in=96xax3", "in=96xax3: expected HxWxC, e.g. in=96x96x3"),
            ("flat-4c:in=0x96x3", "in=0x96x3: every size must be at least 1"),
            ("flat-4c:in=70000x8x1", "in=70000x8x1: every size must be at most 65535"),
            ("flat-4c:blocks=2-0-2", "blocks=2-0-2: stage 2 has zero blocks; every stage needs at least 1"),
            ("flat-4c:blocks=2-x", "blocks=2-x: 'x' is not a whole number"),
            ("flat-4c:blocks=2000-2000-2000", "blocks=2000-2000-2000: stage 1 has 2000 blocks, at most 256"),
            ("flat-4c:blocks=200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200-200", "4200 blocks in all: the .skq format holds at most about 4096"),
            ("flat-4c:widths=8-0", "widths=8-0: stage 2 has zero channels; every stage needs at least 1"),
            ("flat-4c:blocks=2-2-2,widths=16-32", "blocks= has 3 stages but widths= has 2: every list needs one value per stage"),
            ("multishift-4c:blocks=1-1,mids=8-8-8", "blocks= has 2 stages but mids= has 3: every list needs one value per stage"),
            ("flat-4c:strides=1-3-2", "strides=1-3-2: stage 2 has stride 3; a stage's stride is 1 or 2"),
            ("flat-4c:stem-stride=3", "stem-stride=3: expected 1 (3x3 conv), 2 (3x3/2 conv) or 4 (7x7/2 conv + 3x3/2 max pool)"),
            ("flat-4c:centre=yes", "centre=yes: expected 0 or 1"),
            ("basic:centre=0", "centre= needs a shift family (basic-4c or similar); basic has no shift"),
            ("shift-4c:inner=0", "inner= applies to multishift-* and flat-* only, not shift-4c"),
            ("flat-8c:mids=9-9-9", "mids= applies to bottleneck families only (bottleneck, noshift, shift-*, multishift-*); flat-8c blocks are as wide inside as their output"),
            ("shift-4c:w=2", "stage 1 is 2 channels wide, so its default mid width (a quarter) is 0; widen it or give mids="),
            // Channels fewer than the shift groups: 5 for 4C, 4 without the centre, 9 for 8C.
            ("flat-4c:stem=4", "the stem (stem=4) has 4 channels, fewer than the 5 shift groups of 4C with a centre group: give it at least 5"),
            ("flat-4c:stem=4,centre=0", "ok"),
            ("flat-4c:stem=3,centre=0", "the stem (stem=3) has 3 channels, fewer than the 4 shift groups of 4C without a centre group: give it at least 4"),
            ("flat-8c:w=8", "the stem (stem=8) has 8 channels, fewer than the 9 shift groups of 8C with a centre group: give it at least 9"),
            ("flat-8c:w=8,stem=9", "stage 1's width has 8 channels, fewer than the 9 shift groups of 8C with a centre group: give it at least 9"),
            ("flat-8c:w=8,stem=9,centre=0", "ok"),
            ("shift-8c:w=32", "stage 1's mid width has 8 channels, fewer than the 9 shift groups of 8C with a centre group: give it at least 9"),
            ("multishift-4c:widths=64-128,mids=16-4", "stage 2's mid width has 4 channels, fewer than the 5 shift groups of 4C with a centre group: give it at least 5"),
            ("basic-4c:widths=16-4", "stage 2's width has 4 channels, fewer than the 5 shift groups of 4C with a centre group: give it at least 5"),
            ("bottleneck:w=4,mids=1-2-4", "ok"),
            // Inputs the stride-2 steps cannot take.
            ("flat-4c:in=2x2x3", "in=2x2x3 is too small for 2 stride-2 stages: stage 3 would get 1x1; the smallest input that works is 4x4"),
            ("flat-4c:in=8x1x3", "in=8x1x3 is too small for 2 stride-2 stages: stage 2 would get 8x1; the smallest input that works is 4x4"),
            ("flat-4c:in=30x32x3", "in=30x32x3: stage 3 gets 15x16, which its stride-2 2x2 average pool cannot halve (it needs even sizes); try in=32x32x3 (the nearest above; the smallest that works is 4x4)"),
            ("flat-4c:in=96x90x3,blocks=1-1-1-1-1", "in=96x90x3: stage 3 gets 48x45, which its stride-2 2x2 average pool cannot halve (it needs even sizes); try in=96x96x3 (the nearest above; the smallest that works is 16x16)"),
            ("flat-4c:in=4x4x3,stem-stride=4", "in=4x4x3 is too small for 2 stride-2 stages after a stride-4 stem: stage 2 would get 1x1; the smallest input that works is 13x13"),
            ("flat-4c:in=12x12x3,stem-stride=4", "in=12x12x3: stage 2 gets 3x3, which its stride-2 2x2 average pool cannot halve (it needs even sizes); try in=16x16x3 (the nearest above; the smallest that works is 13x13)"),
            ("flat-4c:in=96x96x3,stem-stride=2,blocks=1-1-1-1-1-1", "in=96x96x3: stage 6 gets 3x3, which its stride-2 2x2 average pool cannot halve (it needs even sizes); try in=128x128x3 (the nearest above; the smallest that works is 63x63)"),
            ("basic:in=2x2x3", "in=2x2x3 is too small for 2 stride-2 stages: stage 3 would get 1x1; the smallest input that works is 3x3"),
            ("basic:in=3x3x3", "ok"),
        ] {
            match parse(spec) {
                Ok(a) => {
                    assert_eq!(want, "ok", "{spec} parsed");
                    a.graph()
                        .validate()
                        .unwrap_or_else(|e| panic!("{spec}: {e}"));
                }
                Err(ModelError::Spec { why, .. }) => assert_eq!(why, want, "{spec}"),
                Err(e) => panic!("{spec}: {e}"),
            }
        }
    }

    /// Every input the check lets through builds a graph that validates, over small sizes and
    /// each stem; with shift blocks (2x2 pools) and a 3x3/1 stem, those are the multiples of
    /// 2^(stride-2 stages).
    #[test]
    fn the_input_check_agrees_with_the_graph() {
        for fam in ["flat-4c:", "basic:", "bottleneck:w=16,"] {
            for stem in [1, 2, 4] {
                let mut accepted = vec![];
                for h in 1..=40 {
                    let s = format!("{fam}in={h}x{h}x1,stem-stride={stem},blocks=1-1-1-1");
                    if let Ok(a) = parse(&s) {
                        a.graph().validate().unwrap_or_else(|e| panic!("{s}: {e}"));
                        accepted.push(h);
                    }
                }
                assert!(!accepted.is_empty(), "{fam} stem-stride={stem}");
                if fam == "flat-4c:" && stem == 1 {
                    assert_eq!(accepted, [8, 16, 24, 32, 40]);
                }
                if fam == "basic:" && stem == 1 {
                    assert_eq!(accepted, (5..=40).collect::<Vec<_>>());
                }
            }
        }
    }

    /// A spec network at 96x96x3 trains: one CPU step on random data moves the loss.
    #[test]
    fn a_96x96x3_spec_network_trains_one_step() {
        use crate::backend::{Backend, CpuBackend};
        use crate::config::TrainConfig;
        use crate::model::{Model, Normalization};
        let a = resolve("flat-4c:in=96x96x3,classes=2,stem-stride=2,w=8,blocks=1-1-1").unwrap();
        let mut model = Model::new(a);
        model.init(1);
        let mom = model.params.zeros_like();
        let norm = Normalization {
            mean: vec![0.5; 3],
            std: vec![0.25; 3],
        };
        let cfg = TrainConfig {
            batch: 4,
            ..Default::default()
        };
        let mut be = CpuBackend::new(model, mom, norm, &cfg);
        let mut rng = crate::data::Rng::new(5);
        let imgs: Vec<u8> = (0..4 * 96 * 96 * 3)
            .map(|_| (rng.next_u64() >> 56) as u8)
            .collect();
        let labels = [0u8, 1, 1, 0];
        let (l0, _) = be.train_step(&imgs, &labels, 0.05).unwrap();
        let mut l = l0;
        for _ in 0..3 {
            l = be.train_step(&imgs, &labels, 0.05).unwrap().0;
        }
        assert!(l0.is_finite() && l.is_finite(), "{l0} {l}");
        assert!(l < l0, "loss {l0} -> {l} on the same batch");
    }
}
