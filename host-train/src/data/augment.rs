//! Training-time augmentation: random translation with zero fill ("pad and crop") and horizontal
//! flip, drawn from the trainer's [`Rng`].
use super::Rng;

/// Training-time augmentation for a dataset.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Augment {
    /// Random translation by `dy, dx` uniform in `[-pad_crop, pad_crop]`, zero-filled (the usual
    /// "pad by N and crop back" augmentation). 0 disables it.
    pub pad_crop: usize,
    /// Mirror left-right with probability 0.5.
    pub hflip: bool,
}

impl Augment {
    /// No augmentation.
    pub const NONE: Augment = Augment {
        pad_crop: 0,
        hflip: false,
    };
    /// MNIST: translate by up to 2 pixels, never mirror (digits are not symmetric).
    pub const MNIST: Augment = Augment {
        pad_crop: 2,
        hflip: false,
    };
    /// CIFAR: the standard pad-4 crop and horizontal flip.
    pub const CIFAR: Augment = Augment {
        pad_crop: 4,
        hflip: true,
    };
}

/// Writes an augmented copy of the HWC image `src` (`h * w * c` bytes) into `dst` (same size):
/// translation by `dy, dx` drawn uniformly from `[-pad_crop, pad_crop]` with zero fill (what
/// "pad by `pad_crop` with zeros, then crop a random `h x w` window" gives), then, if `aug.hflip`,
/// a left-right mirror with probability 0.5. Random draws, in order: `dy`, `dx` (only when
/// `pad_crop > 0`), flip (only when `hflip`).
///
/// Panics if `src` or `dst` is not `h * w * c` bytes long (a caller bug, not a data problem).
pub fn augment_into(
    src: &[u8],
    h: usize,
    w: usize,
    c: usize,
    aug: Augment,
    rng: &mut Rng,
    dst: &mut [u8],
) {
    let n = h * w * c;
    assert_eq!(src.len(), n, "augment_into: src is not h*w*c bytes");
    assert_eq!(dst.len(), n, "augment_into: dst is not h*w*c bytes");
    let (dy, dx) = if aug.pad_crop > 0 {
        let p = aug.pad_crop as isize;
        let span = 2 * aug.pad_crop + 1;
        (rng.below(span) as isize - p, rng.below(span) as isize - p)
    } else {
        (0, 0)
    };
    let flip = aug.hflip && rng.below(2) == 1;
    let (hi, wi) = (h as isize, w as isize);
    let row = w * c;
    for y in 0..h {
        let out = &mut dst[y * row..(y + 1) * row];
        let sy = y as isize + dy;
        if sy < 0 || sy >= hi {
            out.fill(0);
            continue;
        }
        let srow = &src[sy as usize * row..(sy as usize + 1) * row];
        if !flip {
            // out[x] = srow[x + dx] for 0 <= x + dx < w.
            let x0 = (-dx).clamp(0, wi) as usize;
            let x1 = (wi - dx).clamp(0, wi) as usize;
            out[..x0 * c].fill(0);
            out[x1.max(x0) * c..].fill(0);
            if x1 > x0 {
                let s0 = (x0 as isize + dx) as usize;
                out[x0 * c..x1 * c].copy_from_slice(&srow[s0 * c..(s0 + x1 - x0) * c]);
            }
        } else {
            // Mirror of the translated image: out[x] = translated[w - 1 - x].
            for x in 0..w {
                let sx = (w - 1 - x) as isize + dx;
                let o = &mut out[x * c..(x + 1) * c];
                if sx < 0 || sx >= wi {
                    o.fill(0);
                } else {
                    o.copy_from_slice(&srow[sx as usize * c..(sx as usize + 1) * c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn augment_pad0_noflip_is_identity() {
        let mut rng = Rng::new(1);
        let src: Vec<u8> = (0..5 * 4 * 3).map(|i| (i * 7 + 1) as u8).collect();
        let mut dst = vec![0xAA; src.len()];
        augment_into(&src, 5, 4, 3, Augment::NONE, &mut rng, &mut dst);
        assert_eq!(dst, src);
        assert_eq!(
            rng,
            Rng::new(1),
            "no augmentation must draw no random numbers"
        );
    }

    #[test]
    fn augment_flip_of_known_image() {
        // 2x3 image, 2 channels: pixel (y, x) = [10*y + x, 100 + 10*y + x].
        let src = [0, 100, 1, 101, 2, 102, 10, 110, 11, 111, 12, 112];
        let flipped = [2, 102, 1, 101, 0, 100, 12, 112, 11, 111, 10, 110];
        let aug = Augment {
            pad_crop: 0,
            hflip: true,
        };
        let mut rng = Rng::new(7);
        let (mut same, mut flip) = (0, 0);
        for _ in 0..200 {
            let mut dst = [0u8; 12];
            augment_into(&src, 2, 3, 2, aug, &mut rng, &mut dst);
            if dst == src {
                same += 1;
            } else {
                assert_eq!(dst, flipped);
                flip += 1;
            }
        }
        assert!(same > 60 && flip > 60, "same {same} flip {flip}");
    }

    #[test]
    fn augment_crop_is_zero_filled_translation() {
        let (h, w, c) = (3usize, 4usize, 1usize);
        let src: Vec<u8> = (1..=12).collect();
        let aug = Augment {
            pad_crop: 1,
            hflip: true,
        };
        let mut rng = Rng::new(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..400 {
            let mut dst = vec![0xEEu8; 12];
            augment_into(&src, h, w, c, aug, &mut rng, &mut dst);
            // Find the (dy, dx, flip) that explains dst.
            let mut found = None;
            for dy in -1isize..=1 {
                for dx in -1isize..=1 {
                    for f in [false, true] {
                        let ok = (0..h).all(|y| {
                            (0..w).all(|x| {
                                let tx = if f { w - 1 - x } else { x } as isize + dx;
                                let sy = y as isize + dy;
                                let want =
                                    if sy < 0 || sy >= h as isize || tx < 0 || tx >= w as isize {
                                        0
                                    } else {
                                        src[sy as usize * w + tx as usize]
                                    };
                                dst[y * w + x] == want
                            })
                        });
                        if ok {
                            found = Some((dy, dx, f));
                        }
                    }
                }
            }
            seen.insert(found.expect("output is not a zero-filled translation/flip of the input"));
        }
        assert_eq!(seen.len(), 18, "all 9 shifts x 2 flips occur");
    }
}
