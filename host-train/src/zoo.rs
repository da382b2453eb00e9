//! The model zoo: every network of the paper (docs/paper.md) by its table name, plus edge
//! presets, and any size of their families as a spec ([`spec`]); [`resolve`] takes either.
//!
//! Names and blocks follow docs/paper.md exactly (the `zoo_counts` tests check params and MACs
//! against its table). Parameter names follow torchvision: `stem.conv`, `layer2.0.bn1`,
//! `layer2.0.shortcut.conv`, `fc`.
use crate::graph::{Graph, Neighbourhood, Op, Shape, ShiftSpec, TensorId};
use serde::{Deserialize, Serialize};

pub mod spec;
pub use spec::ModelError;

/// The residual block variants of the paper (docs/paper.md), plus the basic block of ResNet-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockKind {
    /// ResNet bottleneck with a 3x3 in the middle (stride on the 3x3, torchvision v1.5).
    Bottleneck,
    /// The 3x3 becomes shift + 1x1.
    SingleShift,
    /// The same network with the shift removed.
    NoShift,
    /// Shift before every 1x1, with the optional inner residual.
    MultiShift,
    /// Multi-shift with mid = out (no bottleneck).
    Flat,
    /// Two 3x3 convs (MLPerf Tiny ResNet-8).
    Basic,
    /// Basic block with each 3x3 replaced by shift + 1x1.
    BasicShift,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stem {
    /// 3x3/1 conv, BN, ReLU.
    Conv3,
    /// 3x3/2 conv (pad 1), BN, ReLU: specs' `stem-stride=2`.
    Conv3s2,
    /// 7x7/2 conv, BN, ReLU, 3x3/2 max pool.
    ImageNet,
}

/// Everything that defines a zoo network; `model.json` stores it so a run folder rebuilds its graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub name: String,
    pub input: Shape,
    pub classes: usize,
    pub stem: Stem,
    pub stem_width: usize,
    pub block: BlockKind,
    pub blocks: Vec<usize>,
    /// Block output width per stage.
    pub widths: Vec<usize>,
    /// Bottleneck width per stage (= widths for flat and basic blocks).
    pub mids: Vec<usize>,
    /// Stride of each stage's first block.
    pub strides: Vec<usize>,
    pub shift: Option<Neighbourhood>,
    pub centre_group: bool,
    pub inner_residual: bool,
}

/// What `cargo xtask zoo` prints for each network.
#[derive(Clone, Debug, Serialize)]
pub struct ZooEntry {
    pub name: String,
    pub params: usize,
    pub macs: u64,
    pub peak_activation_bytes: usize,
}

/// Every zoo name, in the order `zoo` lists them.
pub const NAMES: &[&str] = &[
    "cifar-resnet101",
    "cifar-resnet50",
    "cifar-shift101-4c",
    "cifar-shift101-8c",
    "cifar-multishift101-4c",
    "cifar-multishift101-8c",
    "cifar-noshift101",
    "cifar-flat-4c",
    "cifar-flat-8c",
    "imagenet-resnet50",
    "imagenet-resnet101",
    "imagenet-shift101-4c",
    "imagenet-shift101-8c",
    "imagenet-multishift101-4c",
    "imagenet-multishift101-8c",
    "imagenet-noshift101",
    "imagenet-flat-4c",
    "imagenet-flat-8c",
    "resnet8",
    "resnet8-4c",
    "mnist-flat-4c",
];

/// The network `train` uses when no `--model` is given.
pub const DEFAULT_MODEL: &str = "mnist-flat-4c";

fn neighbourhood(suffix: &str) -> Option<Neighbourhood> {
    match suffix {
        "4c" => Some(Neighbourhood::C4),
        "8c" => Some(Neighbourhood::C8),
        _ => None,
    }
}

impl Arch {
    /// The architecture of a zoo name, or `None` if there is no such network.
    pub fn by_name(name: &str) -> Option<Arch> {
        let cifar = |block, blocks: [usize; 3], shift, flat: bool| {
            let widths = vec![64, 128, 256];
            let mids = if flat {
                widths.clone()
            } else {
                vec![16, 32, 64]
            };
            Arch {
                name: name.to_string(),
                input: Shape::new(32, 32, 3),
                classes: 100,
                stem: Stem::Conv3,
                stem_width: 16,
                block,
                blocks: blocks.to_vec(),
                widths,
                mids,
                strides: vec![1, 2, 2],
                shift,
                centre_group: true,
                inner_residual: true,
            }
        };
        let imagenet = |block, blocks: [usize; 4], shift, flat: bool| {
            let widths = vec![256, 512, 1024, 2048];
            let mids = if flat {
                widths.clone()
            } else {
                vec![64, 128, 256, 512]
            };
            Arch {
                name: name.to_string(),
                input: Shape::new(224, 224, 3),
                classes: 1000,
                stem: Stem::ImageNet,
                stem_width: 64,
                block,
                blocks: blocks.to_vec(),
                widths,
                mids,
                strides: vec![1, 2, 2, 2],
                shift,
                centre_group: true,
                inner_residual: true,
            }
        };
        // Edge and test presets: 3x3 stem, centre group on, inner residual in multi-shift blocks.
        // `(h, w, c, classes, stem width)`.
        let small = |(h, w, c, classes, stem_width): (usize, usize, usize, usize, usize),
                     block: BlockKind,
                     blocks: &[usize],
                     widths: &[usize],
                     mids: &[usize],
                     strides: &[usize],
                     shift: Neighbourhood| Arch {
            name: name.to_string(),
            input: Shape::new(h, w, c),
            classes,
            stem: Stem::Conv3,
            stem_width,
            block,
            blocks: blocks.to_vec(),
            widths: widths.to_vec(),
            mids: mids.to_vec(),
            strides: strides.to_vec(),
            shift: Some(shift),
            centre_group: true,
            inner_residual: matches!(block, BlockKind::MultiShift | BlockKind::Flat),
        };
        let (family, rest) = name.split_once('-')?;
        let arch = match (family, rest) {
            ("cifar", "resnet101") => cifar(BlockKind::Bottleneck, [11, 11, 11], None, false),
            ("cifar", "resnet50") => cifar(BlockKind::Bottleneck, [5, 6, 5], None, false),
            ("cifar", "noshift101") => cifar(BlockKind::NoShift, [11, 11, 11], None, false),
            ("imagenet", "resnet50") => imagenet(BlockKind::Bottleneck, [3, 4, 6, 3], None, false),
            ("imagenet", "resnet101") => {
                imagenet(BlockKind::Bottleneck, [3, 4, 23, 3], None, false)
            }
            ("imagenet", "noshift101") => imagenet(BlockKind::NoShift, [3, 4, 23, 3], None, false),
            ("resnet8", "4c") => small(
                (32, 32, 3, 10, 16),
                BlockKind::BasicShift,
                &[1, 1, 1],
                &[16, 32, 64],
                &[16, 32, 64],
                &[1, 2, 2],
                Neighbourhood::C4,
            ),
            // Test presets (not listed in NAMES): the networks of the PyTorch golden file.
            ("tiny", "multishift-4c") => small(
                (8, 8, 3, 5, 8),
                BlockKind::MultiShift,
                &[1, 1],
                &[16, 24],
                &[8, 12],
                &[1, 2],
                Neighbourhood::C4,
            ),
            ("tiny", "flat-8c") => small(
                (8, 8, 2, 4, 9),
                BlockKind::Flat,
                &[1, 1],
                &[9, 18],
                &[9, 18],
                &[1, 2],
                Neighbourhood::C8,
            ),
            ("mnist", "flat-4c") => small(
                (28, 28, 1, 10, 16),
                BlockKind::Flat,
                &[2, 2],
                &[32, 64],
                &[32, 64],
                &[2, 2],
                Neighbourhood::C4,
            ),
            (family, rest) => {
                let (kind, n) = rest.rsplit_once('-')?;
                let n = Some(neighbourhood(n)?);
                match (family, kind) {
                    ("cifar", "shift101") => cifar(BlockKind::SingleShift, [11, 11, 11], n, false),
                    ("cifar", "multishift101") => {
                        cifar(BlockKind::MultiShift, [11, 11, 11], n, false)
                    }
                    ("cifar", "flat") => cifar(BlockKind::Flat, [4, 4, 4], n, true),
                    ("imagenet", "shift101") => {
                        imagenet(BlockKind::SingleShift, [3, 4, 23, 3], n, false)
                    }
                    ("imagenet", "multishift101") => {
                        imagenet(BlockKind::MultiShift, [3, 4, 23, 3], n, false)
                    }
                    ("imagenet", "flat") => imagenet(BlockKind::Flat, [1, 1, 8, 1], n, true),
                    _ => return None,
                }
            }
        };
        Some(arch)
    }

    /// The same network at another input resolution (ImageNet nets in fast tests).
    pub fn with_input(mut self, h: usize, w: usize) -> Arch {
        self.input.h = h;
        self.input.w = w;
        self
    }

    /// The same network with `classes` outputs (the trainer takes them from the data). When the
    /// count changes, the network is renamed by its canonical spec ([`Arch::spec`]): a zoo name
    /// or the old spec would no longer describe it.
    pub fn with_classes(mut self, classes: usize) -> Arch {
        if classes != self.classes {
            self.classes = classes;
            self.name = self.spec();
        }
        self
    }

    /// The same network taking `c` input channels (1 grey, 3 RGB), renamed like
    /// [`Arch::with_classes`] when the count changes.
    pub fn with_channels(mut self, c: usize) -> Arch {
        if c != self.input.c {
            self.input.c = c;
            self.name = self.spec();
        }
        self
    }

    /// Builds the op graph.
    pub fn graph(&self) -> Graph {
        let mut b = Builder::new(&self.name, self.input);
        let x = b.input;
        let mut x = match self.stem {
            Stem::Conv3 => {
                let t = b.conv("stem.conv", x, self.stem_width, 3, 1, 1, None);
                let t = b.bn("stem.bn", t);
                b.relu(t)
            }
            Stem::Conv3s2 => {
                let t = b.conv("stem.conv", x, self.stem_width, 3, 2, 1, None);
                let t = b.bn("stem.bn", t);
                b.relu(t)
            }
            Stem::ImageNet => {
                let t = b.conv("stem.conv", x, self.stem_width, 7, 2, 3, None);
                let t = b.bn("stem.bn", t);
                let t = b.relu(t);
                b.maxpool(t)
            }
        };
        let shift = self.shift.map(|kind| ShiftSpec {
            kind,
            centre_group: self.centre_group,
        });
        for s in 0..self.blocks.len() {
            for i in 0..self.blocks[s] {
                let stride = if i == 0 { self.strides[s] } else { 1 };
                let name = format!("layer{}.{}", s + 1, i);
                let (mid, out) = (self.mids[s], self.widths[s]);
                x = match self.block {
                    BlockKind::Bottleneck => b.bottleneck(&name, x, mid, out, stride),
                    BlockKind::SingleShift => b.single_shift(&name, x, mid, out, stride, shift),
                    BlockKind::NoShift => b.single_shift(&name, x, mid, out, stride, None),
                    BlockKind::MultiShift | BlockKind::Flat => {
                        b.multi_shift(&name, x, mid, out, stride, shift, self.inner_residual)
                    }
                    BlockKind::Basic => b.basic(&name, x, out, stride, None),
                    BlockKind::BasicShift => b.basic(&name, x, out, stride, shift),
                };
            }
        }
        let x = b.gap(x);
        let y = b.linear("fc", x, self.classes);
        b.finish(y)
    }
}

/// `Arch::by_name` + MLPerf Tiny's ResNet-8 (3x3 basic blocks).
pub fn arch(name: &str) -> Option<Arch> {
    if name == "resnet8" {
        let mut a = Arch::by_name("resnet8-4c")?;
        a.name = name.into();
        a.block = BlockKind::Basic;
        a.shift = None;
        return Some(a);
    }
    Arch::by_name(name)
}

/// The network a `--model` value names: a zoo name exactly as [`arch`] takes it, or a spec
/// `FAMILY[:KEY=VALUE,...]` ([`spec::parse`]; docs/design.md, "Model specs").
pub fn resolve(s: &str) -> Result<Arch, ModelError> {
    match arch(s) {
        Some(a) => Ok(a),
        None => spec::parse(s),
    }
}

/// An unknown name keeps the trainer's `UnknownModel` error; a spec that cannot work is its one line.
impl From<ModelError> for crate::config::TrainError {
    fn from(e: ModelError) -> Self {
        match e {
            ModelError::Unknown { name } => crate::config::TrainError::UnknownModel {
                name,
                known: format!(
                    "{}; or a spec FAMILY[:KEY=VALUE,...], FAMILY one of {}",
                    NAMES.join(", "),
                    spec::family_list()
                ),
            },
            e @ ModelError::Spec { .. } => crate::config::TrainError::Config(e.to_string()),
        }
    }
}

/// The `zoo` figures of one network, named by its `name`.
pub fn entry(arch: &Arch) -> ZooEntry {
    let g = arch.graph();
    ZooEntry {
        name: arch.name.clone(),
        params: g.param_count(),
        macs: g.macs(),
        peak_activation_bytes: g.peak_activation_bytes(),
    }
}

/// The `zoo` listing for every network.
pub fn entries() -> Vec<ZooEntry> {
    NAMES
        .iter()
        .map(|n| entry(&arch(n).expect("every NAMES entry builds")))
        .collect()
}

struct Builder {
    g: Graph,
    input: TensorId,
}

impl Builder {
    fn new(name: &str, input: Shape) -> Builder {
        let g = Graph {
            name: name.into(),
            tensors: vec![input],
            ops: vec![],
            input: 0,
            output: 0,
        };
        Builder { g, input: 0 }
    }

    fn tensor(&mut self, s: Shape) -> TensorId {
        self.g.tensors.push(s);
        self.g.tensors.len() - 1
    }

    fn shape(&self, t: TensorId) -> Shape {
        self.g.tensors[t]
    }

    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: TensorId,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
        shift: Option<ShiftSpec>,
    ) -> TensorId {
        let s = self.shape(x);
        let h = (s.h + 2 * pad - k) / stride + 1;
        let w = (s.w + 2 * pad - k) / stride + 1;
        let y = self.tensor(Shape::new(h, w, cout));
        self.g.ops.push(Op::Conv {
            name: name.into(),
            x,
            y,
            k,
            stride,
            pad,
            shift,
        });
        y
    }

    fn bn(&mut self, name: &str, x: TensorId) -> TensorId {
        let y = self.tensor(self.shape(x));
        self.g.ops.push(Op::BatchNorm {
            name: name.into(),
            x,
            y,
        });
        y
    }

    fn relu(&mut self, x: TensorId) -> TensorId {
        let y = self.tensor(self.shape(x));
        self.g.ops.push(Op::Relu { x, y });
        y
    }

    fn add(&mut self, a: TensorId, b: TensorId) -> TensorId {
        let y = self.tensor(self.shape(a));
        self.g.ops.push(Op::Add { a, b, y });
        y
    }

    fn avgpool(&mut self, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let y = self.tensor(Shape::new(s.h / 2, s.w / 2, s.c));
        self.g.ops.push(Op::AvgPool2 { x, y });
        y
    }

    fn maxpool(&mut self, x: TensorId) -> TensorId {
        let s = self.shape(x);
        let y = self.tensor(Shape::new((s.h - 1) / 2 + 1, (s.w - 1) / 2 + 1, s.c));
        self.g.ops.push(Op::MaxPool3s2 { x, y });
        y
    }

    fn gap(&mut self, x: TensorId) -> TensorId {
        let y = self.tensor(Shape::new(1, 1, self.shape(x).c));
        self.g.ops.push(Op::GlobalAvgPool { x, y });
        y
    }

    fn linear(&mut self, name: &str, x: TensorId, cout: usize) -> TensorId {
        let y = self.tensor(Shape::new(1, 1, cout));
        self.g.ops.push(Op::Linear {
            name: name.into(),
            x,
            y,
        });
        y
    }

    /// conv -> BN (-> ReLU)
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        name: &str,
        i: &str,
        x: TensorId,
        cout: usize,
        k: usize,
        stride: usize,
        shift: Option<ShiftSpec>,
        relu: bool,
    ) -> TensorId {
        let t = self.conv(&format!("{name}.conv{i}"), x, cout, k, stride, k / 2, shift);
        let t = self.bn(&format!("{name}.bn{i}"), t);
        if relu {
            self.relu(t)
        } else {
            t
        }
    }

    /// The shortcut: identity, or a projection when stride or width changes. Shift blocks
    /// downsample with a 2x2 average pool first; 3x3 baselines use a strided 1x1.
    fn shortcut(
        &mut self,
        name: &str,
        x: TensorId,
        out: usize,
        stride: usize,
        pool: bool,
    ) -> TensorId {
        if stride == 1 && self.shape(x).c == out {
            return x;
        }
        let (x, s) = if stride == 2 && pool {
            (self.avgpool(x), 1)
        } else {
            (x, stride)
        };
        let t = self.conv(&format!("{name}.shortcut.conv"), x, out, 1, s, 0, None);
        self.bn(&format!("{name}.shortcut.bn"), t)
    }

    fn finish_block(&mut self, o: TensorId, s: TensorId) -> TensorId {
        let y = self.add(o, s);
        self.relu(y)
    }

    fn bottleneck(
        &mut self,
        name: &str,
        x: TensorId,
        mid: usize,
        out: usize,
        stride: usize,
    ) -> TensorId {
        let o = self.conv_bn(name, "1", x, mid, 1, 1, None, true);
        let o = self.conv_bn(name, "2", o, mid, 3, stride, None, true);
        let o = self.conv_bn(name, "3", o, out, 1, 1, None, false);
        let s = self.shortcut(name, x, out, stride, false);
        self.finish_block(o, s)
    }

    fn single_shift(
        &mut self,
        name: &str,
        x: TensorId,
        mid: usize,
        out: usize,
        stride: usize,
        shift: Option<ShiftSpec>,
    ) -> TensorId {
        let mut o = self.conv_bn(name, "1", x, mid, 1, 1, None, true);
        if stride == 2 {
            o = self.avgpool(o);
        }
        let o = self.conv_bn(name, "2", o, mid, 1, 1, shift, true);
        let o = self.conv_bn(name, "3", o, out, 1, 1, None, false);
        let s = self.shortcut(name, x, out, stride, true);
        self.finish_block(o, s)
    }

    #[allow(clippy::too_many_arguments)]
    fn multi_shift(
        &mut self,
        name: &str,
        x: TensorId,
        mid: usize,
        out: usize,
        stride: usize,
        shift: Option<ShiftSpec>,
        inner_residual: bool,
    ) -> TensorId {
        let mut o = self.conv_bn(name, "1", x, mid, 1, 1, shift, true);
        if stride == 2 {
            o = self.avgpool(o);
        }
        let o = if inner_residual {
            let r = o;
            let t = self.conv_bn(name, "2", o, mid, 1, 1, shift, false);
            self.finish_block(t, r)
        } else {
            self.conv_bn(name, "2", o, mid, 1, 1, shift, true)
        };
        let o = self.conv_bn(name, "3", o, out, 1, 1, shift, false);
        let s = self.shortcut(name, x, out, stride, true);
        self.finish_block(o, s)
    }

    fn basic(
        &mut self,
        name: &str,
        x: TensorId,
        out: usize,
        stride: usize,
        shift: Option<ShiftSpec>,
    ) -> TensorId {
        let o = match shift {
            None => {
                let o = self.conv_bn(name, "1", x, out, 3, stride, None, true);
                self.conv_bn(name, "2", o, out, 3, 1, None, false)
            }
            Some(_) => {
                let mut o = self.conv_bn(name, "1", x, out, 1, 1, shift, true);
                if stride == 2 {
                    o = self.avgpool(o);
                }
                self.conv_bn(name, "2", o, out, 1, 1, shift, false)
            }
        };
        let s = self.shortcut(name, x, out, stride, shift.is_some());
        self.finish_block(o, s)
    }

    fn finish(mut self, y: TensorId) -> Graph {
        self.g.output = y;
        self.g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The paper's table (docs/paper.md): (name, params, MACs).
    const PAPER: &[(&str, usize, u64)] = &[
        ("cifar-resnet101", 1_078_132, 154_084_352),
        ("cifar-resnet50", 539_508, 78_324_736),
        ("cifar-shift101-4c", 605_044, 84_878_336),
        ("cifar-shift101-8c", 605_044, 84_878_336),
        ("cifar-multishift101-4c", 605_044, 84_878_336),
        ("cifar-multishift101-8c", 605_044, 84_878_336),
        ("cifar-noshift101", 605_044, 84_878_336),
        ("cifar-flat-4c", 1_067_956, 161_948_672),
        ("cifar-flat-8c", 1_067_956, 161_948_672),
        ("imagenet-resnet50", 25_557_032, 4_089_184_256),
        ("imagenet-resnet101", 44_549_160, 7_801_405_440),
        ("imagenet-shift101-4c", 25_576_488, 4_410_310_656),
        ("imagenet-shift101-8c", 25_576_488, 4_410_310_656),
        ("imagenet-multishift101-4c", 25_576_488, 4_410_310_656),
        ("imagenet-multishift101-8c", 25_576_488, 4_410_310_656),
        ("imagenet-noshift101", 25_576_488, 4_410_310_656),
        ("imagenet-flat-4c", 40_831_272, 7_724_335_104),
        ("imagenet-flat-8c", 40_831_272, 7_724_335_104),
    ];

    #[test]
    fn zoo_counts_match_paper_table() {
        let mut bad = vec![];
        for &(name, params, macs) in PAPER {
            let g = arch(name).unwrap().graph();
            if g.param_count() != params || g.macs() != macs {
                bad.push(format!(
                    "{name}: {} params, {} MACs",
                    g.param_count(),
                    g.macs()
                ));
            }
        }
        assert!(
            bad.is_empty(),
            "mismatches with docs/paper.md:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn every_zoo_graph_validates() {
        for n in NAMES {
            let g = arch(n).unwrap().graph();
            g.validate().unwrap_or_else(|e| panic!("{n}: {e}"));
        }
        assert!(arch("cifar-flat-5c").is_none());
        assert!(arch("nonsense").is_none());
    }

    #[test]
    fn default_model_fits_cortex_m4_budget() {
        let g = arch(DEFAULT_MODEL).unwrap().graph();
        let weight_bytes: usize = g
            .params()
            .iter()
            .filter(|p| p.decay)
            .map(|p| p.numel())
            .sum();
        assert!(weight_bytes <= 150 * 1024, "int8 weights {weight_bytes} B");
        let peak = g.peak_activation_bytes();
        assert!(peak <= 64 * 1024, "int8 peak activations {peak} B");
    }

    #[test]
    fn multishift_block_has_inner_residual_and_unshifted_shortcut() {
        let g = arch("cifar-multishift101-4c").unwrap().graph();
        let shifted = g
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Conv { shift: Some(_), .. }))
            .count();
        assert_eq!(shifted, 3 * 33);
        let adds = g
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Add { .. }))
            .count();
        assert_eq!(adds, 2 * 33);
        let shortcut_shifted = g.ops.iter().any(
            |op| matches!(op, Op::Conv { name, shift: Some(_), .. } if name.contains("shortcut")),
        );
        assert!(!shortcut_shifted);
    }
}
