//! Writes a small folder dataset of real RGB images of three shapes, `OUT/<class>/NNNN.png`
//! with classes `circle`, `square` and `triangle`: each shape at a random place, size and
//! colour on a random background with noise, at 120x100 pixels (so that training resizes them).
//! A stand-in for a user's camera images in the folder-dataset demo.
//!
//! ```sh
//! cargo run --release -p host-train --example shapes_folder -- OUT [PER_CLASS]
//! ```
use host_train::data::Rng;
use image::{Rgb, RgbImage};
use std::path::PathBuf;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: shapes_folder OUT [PER_CLASS]"));
    let per_class: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let (w, h) = (120u32, 100u32);
    let mut rng = Rng::new(7);
    for (k, class) in ["circle", "square", "triangle"].iter().enumerate() {
        let dir = out.join(class);
        std::fs::create_dir_all(&dir).expect("create the class folder");
        for i in 0..per_class {
            let bg = [
                rng.below(256) as u8,
                rng.below(256) as u8,
                rng.below(256) as u8,
            ];
            // A shape colour far from the background in at least one channel.
            let fg = bg.map(|c| c.wrapping_add(96 + rng.below(64) as u8));
            let r = 14.0 + rng.below(22) as f32;
            let cx = r + rng.below((w as f32 - 2.0 * r) as usize) as f32;
            let cy = r + rng.below((h as f32 - 2.0 * r) as usize) as f32;
            let mut img = RgbImage::new(w, h);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                let inside = match k {
                    0 => dx * dx + dy * dy <= r * r,
                    1 => dx.abs() <= r * 0.8 && dy.abs() <= r * 0.8,
                    // Apex up: the half-width grows from 0 at the top to r at the bottom.
                    _ => dy >= -r && dy <= r && dx.abs() <= (dy + r) * 0.5,
                };
                let base = if inside { fg } else { bg };
                let noise = rng.below(25) as i32 - 12;
                *p = Rgb(base.map(|c| (c as i32 + noise).clamp(0, 255) as u8));
            }
            img.save(dir.join(format!("{i:04}.png")))
                .expect("write a PNG");
        }
    }
    println!(
        "{}: 3 classes x {per_class} images, {w}x{h} RGB",
        out.display()
    );
}
