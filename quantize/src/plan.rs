//! The memory plan: the op order and every tensor's byte offset in one arena, with in-place
//! ops where `firmware::plan_rules` allows them.
//!
//! - Lifetimes: a tensor lives from the op that writes it to the last op that reads it (the model
//!   output to the end), both ends included. A shift is never a tensor: it is the 1x1 conv's
//!   input indexing.
//! - In place: when op `i` reads a tensor `x` for the last time and may write its output `y` over
//!   it ([`plan_rules`]: a residual add over an input, a stride-1 1x1 conv or a 2x2 average pool
//!   `lag` bytes below its input), `y` may be tied to `x` at that relative offset. Ties chain
//!   (`x -> y -> z`, each one op apart) into rigid groups whose members never live at the same
//!   time except as tied pairs. A long chain drifts downwards and makes packing worse, so only
//!   the ties at ops where memory is tight are taken, several thresholds are tried.
//! - Reuse: groups are placed one by one, each at the lowest offset where none of its members
//!   overlaps a placed tensor it lives together with (first fit), in several orders (largest
//!   first, as TFLite Micro's greedy planner; by first use; longest lived first); the smallest
//!   arena wins, and [`check`] verifies it against the rules.
//! - Order ([`schedule`], before calibration, so the folded network and the file share it): ops
//!   move to where the bytes live at the worst op ([`live_peak`], a lower bound of any placement)
//!   are smallest, e.g. a downsampling block pools its shortcut input before its first conv,
//!   which then runs in place over the block input.
use crate::fold::{FOp, Folded};
use crate::QuantError;
use firmware::format::{AddMultipliers, Op, Requant, Shift, Span, Tensor};
use firmware::plan_rules::{self, InPlace};
use host_train::graph::Neighbourhood;

/// First and last op index at which each tensor is live (`first = usize::MAX`: never written;
/// the output lives to `ops.len()`).
pub fn lifetimes(n: usize, ops: &[Op], output: usize) -> (Vec<usize>, Vec<usize>) {
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (i, op) in ops.iter().enumerate() {
        let y = op.output() as usize;
        first[y] = first[y].min(i);
        last[y] = last[y].max(i);
        for x in op.inputs().into_iter().flatten() {
            last[x as usize] = last[x as usize].max(i);
        }
    }
    last[output] = ops.len();
    (first, last)
}

/// `y` is written over `x` with `offset(y) = offset(x) - delta`.
#[derive(Clone, Copy, Debug)]
struct Tie {
    x: usize,
    y: usize,
    delta: i64,
}

/// The in-place ties the rules allow: op `i` reads `x` for the last time and may write its
/// output over it. For an add whose two inputs both die, `prefer_second` picks which one the
/// output is tied to.
fn ties(
    tensors: &[Tensor],
    ops: &[Op],
    input: usize,
    last: &[usize],
    prefer_second: bool,
) -> Vec<Tie> {
    let mut out = vec![];
    for (i, op) in ops.iter().enumerate() {
        let y = op.output() as usize;
        let dies = |x: usize| x != input && x != y && last[x] == i;
        let mut ins: Vec<usize> = op.inputs().into_iter().flatten().map(usize::from).collect();
        if prefer_second {
            ins.reverse();
        }
        if ins.len() == 2 && ins[0] == ins[1] {
            continue;
        }
        let tie = ins.into_iter().filter(|&x| dies(x)).find_map(|x| {
            let delta = match plan_rules::in_place(op, &tensors[x], &tensors[y])? {
                InPlace::Exact => 0,
                InPlace::Below { lag } => lag as i64,
            };
            Some(Tie { x, y, delta })
        });
        out.extend(tie);
    }
    out
}

fn same_ties(a: &[Tie], b: &[Tie]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(s, t)| (s.x, s.y) == (t.x, t.y))
}

/// Bytes live at each op without in-place ops: every tensor alive there, its output included.
fn pressure(
    tensors: &[Tensor],
    ops: &[Op],
    input: usize,
    first: &[usize],
    last: &[usize],
) -> Vec<usize> {
    let mut at = vec![0usize; ops.len()];
    for t in (0..tensors.len()).filter(|&t| t != input && first[t] != usize::MAX) {
        for a in &mut at[first[t]..=last[t].min(ops.len() - 1)] {
            *a += tensors[t].bytes();
        }
    }
    at
}

/// One placement: the arena size and every placed tensor's offset.
struct Placement {
    arena: usize,
    offsets: Vec<(usize, usize)>,
}

/// Places `live` tensors, grouped by `ties`, in group order `order_key` (smallest key first).
fn place(
    tensors: &[Tensor],
    live: &[usize],
    first: &[usize],
    last: &[usize],
    ties: &[Tie],
    order_key: impl Fn(&[(usize, i64)]) -> (i64, i64),
) -> Placement {
    // Group of each tensor (the first tensor of its chain) and offsets relative to it.
    let n = tensors.len();
    let mut root: Vec<usize> = (0..n).collect();
    let mut rel = vec![0i64; n];
    // Ties come in op order, so a chain's earlier member is resolved before a later one.
    for t in ties {
        root[t.y] = root[t.x];
        rel[t.y] = rel[t.x] - t.delta;
    }
    let mut groups: Vec<Vec<(usize, i64)>> = vec![];
    let mut group_of = vec![usize::MAX; n];
    for &t in live {
        let r = root[t];
        if group_of[r] == usize::MAX {
            group_of[r] = groups.len();
            groups.push(vec![]);
        }
        groups[group_of[r]].push((t, rel[t]));
    }
    for g in &mut groups {
        let lo = g.iter().map(|&(_, r)| r).min().unwrap_or(0);
        g.iter_mut().for_each(|m| m.1 -= lo);
    }
    groups.sort_by_key(|g| order_key(g));

    let size = |t: usize| tensors[t].bytes();
    let meets = |t: usize, u: usize| first[t] <= last[u] && first[u] <= last[t];
    let mut placed: Vec<(usize, usize)> = vec![]; // (tensor, offset)
    let mut arena = 0usize;
    for g in &groups {
        // Placed tensors that live together with a member.
        let near: Vec<(usize, usize)> = placed
            .iter()
            .copied()
            .filter(|&(u, _)| g.iter().any(|&(t, _)| meets(t, u)))
            .collect();
        let mut bases: Vec<usize> = vec![0];
        for &(u, o) in &near {
            for &(_, r) in g {
                if let Some(b) = (o + size(u)).checked_sub(r as usize) {
                    bases.push(b);
                }
            }
        }
        bases.sort_unstable();
        bases.dedup();
        let fits = |base: usize| {
            g.iter().all(|&(t, r)| {
                let (o, e) = (base + r as usize, base + r as usize + size(t));
                near.iter().all(|&(u, ou)| {
                    !meets(t, u) || e <= ou || ou + size(u) <= o || size(t) == 0 || size(u) == 0
                })
            })
        };
        // The largest base is past every neighbour's end, so one always fits.
        let base = bases.into_iter().find(|&b| fits(b)).unwrap_or(arena);
        for &(t, r) in g {
            let o = base + r as usize;
            placed.push((t, o));
            arena = arena.max(o + size(t));
        }
    }
    Placement {
        arena,
        offsets: placed,
    }
}

/// Writes every tensor's `offset` and returns the arena size in bytes.
pub fn plan(
    tensors: &mut [Tensor],
    ops: &[Op],
    input: usize,
    output: usize,
) -> Result<usize, QuantError> {
    let (first, last) = lifetimes(tensors.len(), ops, output);
    let live: Vec<usize> = (0..tensors.len())
        .filter(|&t| t != input && first[t] != usize::MAX)
        .collect();
    // Ties make groups rigid, and a long chain of them drifts (each conv or pool tie puts the
    // next tensor lower): they pay only where memory is tight. Tie sets: the ties at ops whose
    // live bytes without ties exceed a share of the in-place bound, from only the necessary ones
    // to all of them, and none.
    let order: Vec<usize> = (0..ops.len()).collect();
    let (bound, _) = live_peak(tensors, ops, &order, input, output);
    let pressure = pressure(tensors, ops, input, &first, &last);
    let mut tie_sets: Vec<Vec<Tie>> = vec![vec![]];
    for prefer_second in [false, true] {
        let all = ties(tensors, ops, input, &last, prefer_second);
        for share in [1.0, 0.9, 0.75, 0.0] {
            let limit = (share * bound as f64) as usize;
            let set: Vec<Tie> = all
                .iter()
                .copied()
                .filter(|t| pressure[first[t.y]] > limit)
                .collect();
            if !tie_sets.iter().any(|s| same_ties(s, &set)) {
                tie_sets.push(set);
            }
        }
    }
    // Group measures: extent (bytes from its lowest to its highest member end), first and last
    // op, largest member.
    let extent = |g: &[(usize, i64)]| {
        g.iter()
            .map(|&(t, r)| r + tensors[t].bytes() as i64)
            .max()
            .unwrap_or(0)
    };
    let start = |g: &[(usize, i64)]| g.iter().map(|&(t, _)| first[t] as i64).min().unwrap_or(0);
    let end = |g: &[(usize, i64)]| g.iter().map(|&(t, _)| last[t] as i64).max().unwrap_or(0);
    let biggest = |g: &[(usize, i64)]| {
        g.iter()
            .map(|&(t, _)| tensors[t].bytes() as i64)
            .max()
            .unwrap_or(0)
    };
    type OrderKey<'k> = &'k dyn Fn(&[(usize, i64)]) -> (i64, i64);
    let orders: [OrderKey; 5] = [
        &|g| (-extent(g), start(g)),
        &|g| (start(g), -extent(g)),
        &|g| (-biggest(g), start(g)),
        &|g| (-(end(g) - start(g)), -extent(g)),
        &|g| (-(end(g) - start(g) + 1) * extent(g), start(g)),
    ];
    let mut best: Option<Placement> = None;
    for ties in &tie_sets {
        for order in orders {
            let p = place(tensors, &live, &first, &last, ties, order);
            if best.as_ref().is_none_or(|b| p.arena < b.arena) {
                best = Some(p);
            }
        }
    }
    let best = best.unwrap_or(Placement {
        arena: 0,
        offsets: vec![],
    });
    for &(t, o) in &best.offsets {
        tensors[t].offset = u32::try_from(o)
            .map_err(|_| QuantError::Unsupported(format!("arena offset {o} exceeds u32")))?;
    }
    check(tensors, ops, input, output, best.arena).map_err(|e| {
        QuantError::Unsupported(format!("the memory plan breaks its own rules: {e}"))
    })?;
    Ok(best.arena)
}

/// Checks a plan: every tensor inside the arena, and two tensors that live together share no
/// byte unless they are an op's input read for the last time and its output, placed as
/// [`plan_rules::output_may_overlap`] allows.
pub fn check(
    tensors: &[Tensor],
    ops: &[Op],
    input: usize,
    output: usize,
    arena: usize,
) -> Result<(), String> {
    let (first, last) = lifetimes(tensors.len(), ops, output);
    let live: Vec<usize> = (0..tensors.len())
        .filter(|&t| t != input && first[t] != usize::MAX)
        .collect();
    for &t in &live {
        let e = tensors[t].offset as usize + tensors[t].bytes();
        if e > arena {
            return Err(format!("tensor {t} ends at {e} > arena {arena}"));
        }
    }
    for &t in &live {
        for &u in &live {
            if u <= t || !(first[u] <= last[t] && first[t] <= last[u]) {
                continue;
            }
            if tensors[t].bytes() == 0
                || tensors[u].bytes() == 0
                || !plan_rules::overlaps(&tensors[t], &tensors[u])
            {
                continue;
            }
            // Only an op's output over an input it reads for the last time.
            let (x, y) = if first[u] > first[t] { (t, u) } else { (u, t) };
            let i = first[y];
            let op = &ops[i];
            let ins: Vec<u16> = op.inputs().into_iter().flatten().collect();
            let allowed = last[x] == i
                && ins.iter().enumerate().any(|(slot, &id)| {
                    let other = ins.get(1 - slot.min(1)).filter(|_| ins.len() == 2);
                    id as usize == x
                        && plan_rules::output_may_overlap(
                            op,
                            slot,
                            &tensors[x],
                            other.map(|&o| &tensors[o as usize]),
                            &tensors[y],
                        )
                });
            if !allowed {
                return Err(format!(
                    "tensors {t} and {u} live together (ops {}..={} and {}..={}) and overlap",
                    first[t], last[t], first[u], last[u]
                ));
            }
        }
    }
    Ok(())
}

/// The smallest arena any placement of `ops` in this order could have with the in-place ties:
/// the largest sum, over ops, of the bytes live at that op, where a tie pair counts its joint
/// footprint. Also returns the sum over ops (a tie-break that prefers smaller live sets
/// everywhere). `order` lists op indices.
pub fn live_peak(
    tensors: &[Tensor],
    ops: &[Op],
    order: &[usize],
    input: usize,
    output: usize,
) -> (usize, usize) {
    let n = tensors.len();
    let mut last = vec![0usize; n];
    for (pos, &i) in order.iter().enumerate() {
        for x in ops[i].inputs().into_iter().flatten() {
            last[x as usize] = pos;
        }
    }
    last[output] = usize::MAX;
    let size = |t: usize| if t == input { 0 } else { tensors[t].bytes() };
    let (mut live, mut peak, mut sum) = (0usize, 0usize, 0usize);
    for (pos, &i) in order.iter().enumerate() {
        let op = &ops[i];
        let y = op.output() as usize;
        let mut ins: Vec<usize> = op.inputs().into_iter().flatten().map(usize::from).collect();
        ins.dedup();
        let saving = ins
            .iter()
            .filter(|&&x| x != input && last[x] == pos)
            .filter_map(|&x| {
                let (sx, sy) = (size(x), size(y));
                Some(match plan_rules::in_place(op, &tensors[x], &tensors[y])? {
                    InPlace::Exact => sy,
                    InPlace::Below { lag } => (sx + sy).saturating_sub((lag as usize + sx).max(sy)),
                })
            })
            .max()
            .unwrap_or(0);
        let at = live + size(y) - saving;
        peak = peak.max(at);
        sum += at;
        live += size(y);
        for &x in &ins {
            if last[x] == pos {
                live -= size(x);
            }
        }
    }
    (peak, sum)
}

/// An execution order of `ops` with a small in-place bound ([`live_peak`]): starting from the
/// given order, each op is moved to the position (between the ops that write its inputs and
/// the ops that read its output) that lowers (peak, sum of live bytes) the most, until no move
/// helps. It finds, for instance, that a downsampling block should pool its shortcut input
/// first (so the block input dies at the main branch's first conv, which then runs in place)
/// and run the shortcut conv last. Returns op indices in execution order.
pub fn schedule(tensors: &[Tensor], ops: &[Op], input: usize, output: usize) -> Vec<usize> {
    let n = ops.len();
    let mut producer = vec![usize::MAX; tensors.len()];
    let mut readers: Vec<Vec<usize>> = vec![vec![]; tensors.len()];
    for (i, op) in ops.iter().enumerate() {
        producer[op.output() as usize] = i;
        for x in op.inputs().into_iter().flatten() {
            readers[x as usize].push(i);
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut best = live_peak(tensors, ops, &order, input, output);
    for _pass in 0..50 {
        let mut improved = false;
        for op in 0..n {
            let mut pos = vec![0usize; n];
            for (p, &o) in order.iter().enumerate() {
                pos[o] = p;
            }
            let at = pos[op];
            let lo = ops[op]
                .inputs()
                .into_iter()
                .flatten()
                .filter_map(|x| producer.get(x as usize).filter(|&&p| p != usize::MAX))
                .map(|&p| pos[p] + 1)
                .max()
                .unwrap_or(0);
            let hi = readers[ops[op].output() as usize]
                .iter()
                .map(|&r| pos[r])
                .min()
                .unwrap_or(n)
                .saturating_sub(1)
                .min(n - 1);
            let mut choice: Option<(Vec<usize>, (usize, usize))> = None;
            for to in lo..=hi {
                if to == at {
                    continue;
                }
                let mut cand = order.clone();
                let o = cand.remove(at);
                cand.insert(to, o);
                let cost = live_peak(tensors, ops, &cand, input, output);
                let bar = choice.as_ref().map_or(best, |c| c.1);
                if cost < bar {
                    choice = Some((cand, cost));
                }
            }
            if let Some((cand, cost)) = choice {
                order = cand;
                best = cost;
                improved = true;
            }
        }
        if !improved {
            break;
        }
    }
    order
}

/// The int8 tensors and ops of a folded network with placeholder constants: enough for the
/// memory plans, which look only at shapes, op kinds and shifts.
pub fn skeleton(f: &Folded) -> Result<(Vec<Tensor>, Vec<Op>), QuantError> {
    let mut tensors = vec![];
    for (t, ft) in f.tensors.iter().enumerate() {
        let s = ft.shape;
        let dim = |d: usize| {
            u16::try_from(d).map_err(|_| {
                QuantError::Unsupported(format!("tensor {t}: dimension {d} exceeds u16"))
            })
        };
        tensors.push(Tensor {
            h: dim(s.h)?,
            w: dim(s.w)?,
            c: dim(s.c)?,
            scale: 1.0,
            zero_point: 0,
            offset: 0,
        });
    }
    let none = Span {
        offset: 0,
        count: 0,
    };
    let requant = Requant {
        multiplier: none,
        shift: none,
        act_min: -128,
        act_max: 127,
    };
    let id = |t: usize| t as u16;
    let ops = f
        .ops
        .iter()
        .map(|op| match op {
            FOp::Conv {
                x,
                y,
                k,
                stride,
                pad,
                shift,
                ..
            } => Op::Conv {
                x: id(*x),
                y: id(*y),
                k: *k as u8,
                stride: *stride as u8,
                pad: *pad as u8,
                shift: match shift {
                    None => Shift::None,
                    Some(s) => match s.kind {
                        Neighbourhood::C4 => Shift::C4 {
                            centre: s.centre_group,
                        },
                        Neighbourhood::C8 => Shift::C8 {
                            centre: s.centre_group,
                        },
                    },
                },
                weights: none,
                bias: none,
                requant,
                pad_value: none,
            },
            FOp::Add { a, b, y, .. } => Op::Add {
                a: id(*a),
                b: id(*b),
                y: id(*y),
                left_shift: 0,
                multipliers: AddMultipliers {
                    a_multiplier: 0,
                    a_shift: 0,
                    b_multiplier: 0,
                    b_shift: 0,
                    out_multiplier: 0,
                    out_shift: 0,
                },
                act_min: -128,
                act_max: 127,
            },
            FOp::AvgPool2 { x, y, .. } => Op::AvgPool2 {
                x: id(*x),
                y: id(*y),
            },
            FOp::MaxPool3s2 { x, y, .. } => Op::MaxPool3s2 {
                x: id(*x),
                y: id(*y),
            },
            FOp::GlobalAvgPool { x, y, .. } => Op::GlobalAvgPool {
                x: id(*x),
                y: id(*y),
            },
            FOp::Fc { x, y, .. } => Op::FullyConnected {
                x: id(*x),
                y: id(*y),
                weights: none,
                bias: none,
                requant,
            },
        })
        .collect();
    Ok((tensors, ops))
}

/// Reorders `f`'s ops by [`schedule`] if that gives a smaller planned arena than the order
/// they are in (tensor ids stay; only the execution order changes).
pub fn schedule_folded(f: &mut Folded) -> Result<(), QuantError> {
    let (tensors, ops) = skeleton(f)?;
    let order = schedule(&tensors, &ops, f.input, f.output);
    let arena_of = |ops: &[Op]| plan(&mut tensors.clone(), ops, f.input, f.output);
    let reordered: Vec<Op> = order.iter().map(|&i| ops[i]).collect();
    if arena_of(&reordered)? < arena_of(&ops)? {
        let mut old: Vec<Option<FOp>> = std::mem::take(&mut f.ops).into_iter().map(Some).collect();
        f.ops = order.iter().filter_map(|&i| old[i].take()).collect();
    }
    Ok(())
}
