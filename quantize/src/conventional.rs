//! The arena a conventional engine would need for the same int8 network, to compare our plan
//! with: TFLite Micro, where a shift is not a view but real ops. A shifted 1x1 conv over `x`
//! (h x w x c) becomes
//!
//! ```text
//! P  = Pad(x, 1 pixel of zero point each side)          (h+2) x (w+2) x c
//! S_g = Slice(P, rows 1-dh.., cols 1-dw.., channels g)  h x w x c_g, one per channel group
//! X' = Concat(S_1 .. S_G, channels)                     h x w x c
//! y  = Conv1x1(X')
//! ```
//!
//! every other op as in our file, no op in place, and tensors placed by TFLite Micro's
//! `GreedyMemoryPlanner`: largest first, each at the lowest offset where it overlaps no placed
//! tensor whose lifetime (first writer to last reader, both included) meets its own. The figure
//! leaves out what TFLite Micro adds on top (the input tensor, which it also keeps in the arena;
//! 16-byte alignment of every buffer; scratch buffers; its persistent structures), so it is a
//! lower bound of that engine's arena, and our saving against it is a lower bound too.
use crate::fold::fold_graph;
use crate::plan;
use crate::QuantError;
use firmware::format::{shift_groups, Op, Shift, Tensor};
use host_train::graph::Graph;

/// Both arena figures of one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arenas {
    /// Our plan (in place, shift as a view).
    pub ours: usize,
    /// The conventional Pad + Slice + Concat graph under TFLite Micro's greedy planner.
    pub conventional: usize,
}

impl Arenas {
    /// Percent of the conventional arena our plan saves.
    pub fn saving_percent(&self) -> f64 {
        100.0 * (1.0 - self.ours as f64 / self.conventional.max(1) as f64)
    }
}

/// The conventional engine's memory for one network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conventional {
    /// The arena TFLite Micro's greedy planner gives.
    pub arena: usize,
    /// The most bytes live at one op: what a perfect planner without in-place ops would need.
    pub live_peak: usize,
}

/// The conventional arena of the int8 graph `tensors`/`ops` (offsets are ignored).
pub fn arena(tensors: &[Tensor], ops: &[Op], input: usize, output: usize) -> usize {
    conventional(tensors, ops, input, output).arena
}

/// [`arena`] and the live peak of the conventional graph.
pub fn conventional(tensors: &[Tensor], ops: &[Op], input: usize, output: usize) -> Conventional {
    // The conventional graph: tensor sizes and ops as (inputs, output).
    let mut size: Vec<usize> = tensors.iter().map(|t| t.bytes()).collect();
    let mut graph: Vec<(Vec<usize>, usize)> = vec![];
    for op in ops {
        let ins: Vec<usize> = op.inputs().into_iter().flatten().map(usize::from).collect();
        let y = op.output() as usize;
        match *op {
            Op::Conv { x, shift, .. } if shift != Shift::None => {
                let t = tensors[x as usize];
                let (h, w, c) = (t.h as usize, t.w as usize, t.c as usize);
                size.push((h + 2) * (w + 2) * c);
                let padded = size.len() - 1;
                graph.push((vec![x as usize], padded));
                let mut g = [(0, 0, 0, 0); 9];
                let n = shift_groups(shift, c, &mut g);
                let mut slices = vec![];
                for &(_, _, c0, c1) in &g[..n] {
                    size.push(h * w * (c1 - c0));
                    slices.push(size.len() - 1);
                    graph.push((vec![padded], size.len() - 1));
                }
                size.push(h * w * c);
                let concat = size.len() - 1;
                graph.push((slices, concat));
                graph.push((vec![concat], y));
            }
            _ => graph.push((ins, y)),
        }
    }
    let n = size.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, (ins, y)) in graph.iter().enumerate() {
        first[*y] = first[*y].min(i);
        last[*y] = last[*y].max(i);
        for &x in ins {
            last[x] = last[x].max(i);
        }
    }
    last[output] = graph.len();
    let mut order: Vec<usize> = (0..n)
        .filter(|&t| t != input && first[t] != usize::MAX)
        .collect();
    let live_peak = (0..graph.len())
        .map(|i| {
            let live = order.iter().filter(|&&t| first[t] <= i && i <= last[t]);
            live.map(|&t| size[t]).sum::<usize>()
        })
        .max()
        .unwrap_or(0);
    order.sort_by_key(|&t| (std::cmp::Reverse(size[t]), first[t]));
    let mut placed: Vec<(usize, usize)> = vec![]; // (offset, end)
    let mut placed_t: Vec<usize> = vec![];
    let mut arena = 0usize;
    for &t in &order {
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .zip(&placed_t)
            .filter(|&(_, &u)| first[u] <= last[t] && first[t] <= last[u])
            .map(|(&r, _)| r)
            .collect();
        busy.sort_unstable();
        let mut offset = 0usize;
        for (o, e) in busy {
            if offset + size[t] <= o {
                break;
            }
            offset = offset.max(e);
        }
        placed.push((offset, offset + size[t]));
        placed_t.push(t);
        arena = arena.max(offset + size[t]);
    }
    Conventional { arena, live_peak }
}

/// The conventional engine's figures for a float graph, in the graph's own op order (the order
/// a converter writes and TFLite Micro runs).
pub fn of_graph(g: &Graph) -> Result<Conventional, QuantError> {
    let f = fold_graph(g)?;
    let (tensors, ops) = plan::skeleton(&f)?;
    Ok(conventional(&tensors, &ops, f.input, f.output))
}

/// Our arena (scheduled and planned exactly as `quantize` does) and the conventional one for a
/// float graph (a zoo network), without weights.
pub fn arenas_of_graph(g: &Graph) -> Result<Arenas, QuantError> {
    let conventional = of_graph(g)?.arena;
    let mut f = fold_graph(g)?;
    plan::schedule_folded(&mut f)?;
    let (mut tensors, ops) = plan::skeleton(&f)?;
    let ours = plan::plan(&mut tensors, &ops, f.input, f.output)?;
    Ok(Arenas { ours, conventional })
}
