//! Folder datasets (`--data folder:DIR`), the convention of torchvision's `ImageFolder` and
//! Keras' `image_dataset_from_directory`: `DIR/<class>/*.png`, or `DIR/train/<class>/` with
//! `DIR/test/<class>/` (or `DIR/val/`). Class names are the folder names, sorted; without split
//! folders a seeded, stratified share of each class is held out for testing.
//!
//! Images (PNG, JPEG, BMP, PGM/PPM; extensions matched case-insensitively, files in subfolders
//! of a class folder included) are decoded on every core with the `image` crate, converted to
//! grey or RGB (alpha dropped, 16-bit scaled to 8), and resized to the network's input with a
//! triangle (bilinear) filter, widened when shrinking so that it averages like an area filter.
//! [`Resize`] says how the aspect ratio is kept. The decoded u8 tensor is cached in the run
//! folder ([`CACHE_FILE`]), keyed by every file's path, size and modification time and by the
//! options, so epochs, `--resume`, quantize and eval do not decode again; a stale or
//! half-written cache is never used.
use super::rng::Rng;
use super::{DataError, Dataset};
use image::imageops::FilterType;
use image::DynamicImage;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The extensions read as images (compared lower-cased).
pub const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "bmp", "pgm", "ppm"];

/// The cache of decoded images, in the run folder.
pub const CACHE_FILE: &str = "data-cache.bin";
const CACHE_MAGIC: &[u8; 8] = b"SKFOLD01";

/// How an image whose aspect ratio differs from the input's is fitted to it.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Resize {
    /// Scale each side to the input's (the aspect ratio is not kept). Keras' default.
    #[default]
    Stretch,
    /// Scale the shorter side to the input's, then cut the centre.
    CenterCrop,
    /// Scale the longer side down to the input's (never up), then pad with black around the
    /// centre.
    Pad,
}

impl std::fmt::Display for Resize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resize::Stretch => "stretch",
            Resize::CenterCrop => "center-crop",
            Resize::Pad => "pad",
        })
    }
}

/// The options of a folder dataset (the trainer's `--val-split`, `--resize`, `--skip-bad`;
/// `train-config.json` keeps them, so quantize and eval load the same images).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct FolderOptions {
    /// Share of each class held out for testing when DIR has no split folders.
    pub val_split: f32,
    pub resize: Resize,
    /// Skip files that do not decode (counted, the first few named) instead of failing.
    pub skip_bad: bool,
    /// Seed of the held-out split.
    pub seed: u64,
}

impl Default for FolderOptions {
    fn default() -> FolderOptions {
        FolderOptions {
            val_split: 0.2,
            resize: Resize::Stretch,
            skip_bad: false,
            seed: 1,
        }
    }
}

/// The input images are converted to: `h x w x c`, `c` 1 (grey) or 3 (RGB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

/// What loading a folder found, for the one summary line.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FolderReport {
    /// Files that are not images by their extension (`.txt`, `.DS_Store`), skipped.
    pub not_images: usize,
    /// Files that did not decode, skipped under `skip_bad`.
    pub skipped_bad: usize,
    /// The first few of them ([`BAD_NAMED`]), with the decoder's reason.
    pub bad_examples: Vec<(PathBuf, String)>,
    /// Images decoded now (0 when the cache had them all).
    pub decoded: usize,
    pub from_cache: bool,
    pub seconds: f64,
}

/// One image file and its class.
#[derive(Clone, Debug)]
struct Entry {
    path: PathBuf,
    label: u8,
    test: bool,
}

/// The files of a folder dataset, before decoding.
struct Layout {
    classes: Vec<String>,
    entries: Vec<Entry>,
    /// Whether DIR has split folders (else the test split is drawn).
    split: bool,
    not_images: usize,
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn list(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        v.push(e.map_err(io)?.path());
    }
    v.sort();
    Ok(v)
}

/// Every image file under `dir` (recursively, sorted), and the count of other files.
fn images_under(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    not_images: &mut usize,
) -> Result<(), DataError> {
    for p in list(dir)? {
        if p.is_dir() {
            if !is_hidden(&p) {
                images_under(&p, out, not_images)?;
            }
        } else if is_image(&p) && !is_hidden(&p) {
            out.push(p);
        } else {
            *not_images += 1;
        }
    }
    Ok(())
}

/// The class folders of `root`, sorted by name, and the count of loose files beside them.
fn class_dirs(root: &Path) -> Result<(Vec<(String, PathBuf)>, usize), DataError> {
    let mut classes = Vec::new();
    let mut loose = 0;
    for p in list(root)? {
        if p.is_dir() && !is_hidden(&p) {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            classes.push((name, p));
        } else {
            loose += 1;
        }
    }
    Ok((classes, loose))
}

fn scan(dir: &Path) -> Result<Layout, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            hint: "expected a folder of class folders: DIR/<class>/*.png, or DIR/train/<class>/ and DIR/test/<class>/".into(),
        });
    }
    let train_dir = dir.join("train");
    let test_dir = ["test", "val"]
        .iter()
        .map(|s| dir.join(s))
        .find(|p| p.is_dir());
    let split = train_dir.is_dir();
    let (root, test_root) = if split {
        let Some(t) = test_dir else {
            return Err(DataError::Folder {
                path: dir.to_path_buf(),
                what: "has a train/ folder but no test/ or val/ folder beside it (add one, or put the class folders directly in it for a held-out split)".into(),
            });
        };
        (train_dir, Some(t))
    } else {
        (dir.to_path_buf(), None)
    };
    let (classes, mut not_images) = class_dirs(&root)?;
    if classes.is_empty() {
        return Err(DataError::Folder {
            path: root,
            what: "holds no class folders; expected <class>/*.png (or .jpg, .jpeg, .bmp, .pgm, .ppm), one folder per class".into(),
        });
    }
    if classes.len() == 1 {
        return Err(DataError::Folder {
            path: root,
            what: format!(
                "holds one class folder ({}); a classifier needs at least two",
                classes[0].0
            ),
        });
    }
    if classes.len() > 256 {
        return Err(DataError::Folder {
            path: root,
            what: format!(
                "holds {} class folders; at most 256 are supported",
                classes.len()
            ),
        });
    }
    let mut entries = Vec::new();
    let mut add = |dirs: &[(String, PathBuf)],
                   test: bool,
                   not: &mut usize|
     -> Result<(), DataError> {
        for (name, p) in dirs {
            let label =
                classes
                    .iter()
                    .position(|c| &c.0 == name)
                    .ok_or_else(|| DataError::Folder {
                        path: p.clone(),
                        what: format!(
                            "is a class the training folder does not have (its classes: {})",
                            classes
                                .iter()
                                .map(|c| c.0.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
            let mut files = Vec::new();
            images_under(p, &mut files, not)?;
            if files.is_empty() {
                return Err(DataError::Folder {
                    path: p.clone(),
                    what: format!(
                        "class folder `{name}` holds no images (.png, .jpg, .jpeg, .bmp, .pgm, .ppm)"
                    ),
                });
            }
            entries.extend(files.into_iter().map(|path| Entry {
                path,
                label: label as u8,
                test,
            }));
        }
        Ok(())
    };
    add(&classes, false, &mut not_images)?;
    if let Some(t) = test_root {
        let (test_classes, loose) = class_dirs(&t)?;
        not_images += loose;
        if test_classes.is_empty() {
            return Err(DataError::Folder {
                path: t,
                what: "holds no class folders".into(),
            });
        }
        add(&test_classes, true, &mut not_images)?;
    }
    Ok(Layout {
        classes: classes.into_iter().map(|c| c.0).collect(),
        entries,
        split,
        not_images,
    })
}

/// Why one image cannot be used.
enum Bad {
    /// The file cannot be read (always fatal, even with `skip_bad`).
    Io(std::io::Error),
    Decode(String),
    /// (width, height) of an image smaller than the input needs without upscaling.
    TooSmall(u32, u32),
}

/// The smallest (width, height) an image may have for `t` without upscaling.
fn min_size(t: Target, resize: Resize, w: u32, h: u32) -> bool {
    let (tw, th) = (t.w as u32, t.h as u32);
    match resize {
        Resize::Stretch => w >= tw && h >= th,
        // The shorter side is scaled to the input's: the scale must be <= 1 on both.
        Resize::CenterCrop => {
            let s = (tw as f64 / w as f64).max(th as f64 / h as f64);
            s <= 1.0
        }
        Resize::Pad => true,
    }
}

/// Decodes one file into `t.h * t.w * t.c` bytes, HWC.
fn decode(path: &Path, t: Target, resize: Resize) -> Result<Vec<u8>, Bad> {
    let img = image::ImageReader::open(path)
        .map_err(Bad::Io)?
        .with_guessed_format()
        .map_err(|e| Bad::Decode(e.to_string()))?
        .decode()
        .map_err(|e| Bad::Decode(e.to_string()))?;
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(Bad::Decode("the image is empty (0 pixels)".into()));
    }
    if !min_size(t, resize, w, h) {
        return Err(Bad::TooSmall(w, h));
    }
    let img = match t.c {
        1 => DynamicImage::ImageLuma8(img.to_luma8()),
        _ => DynamicImage::ImageRgb8(img.to_rgb8()),
    };
    let (tw, th) = (t.w as u32, t.h as u32);
    let fitted = match resize {
        Resize::Stretch => fit(&img, tw, th),
        Resize::CenterCrop => {
            let s = (tw as f64 / w as f64).max(th as f64 / h as f64);
            let (sw, sh) = (
                ((w as f64 * s).round() as u32).max(tw),
                ((h as f64 * s).round() as u32).max(th),
            );
            let scaled = fit(&img, sw, sh);
            scaled.crop_imm((sw - tw) / 2, (sh - th) / 2, tw, th)
        }
        Resize::Pad => {
            let s = (tw as f64 / w as f64).min(th as f64 / h as f64).min(1.0);
            let (sw, sh) = (
                ((w as f64 * s).round() as u32).clamp(1, tw),
                ((h as f64 * s).round() as u32).clamp(1, th),
            );
            let scaled = fit(&img, sw, sh);
            let mut canvas = match t.c {
                1 => DynamicImage::new_luma8(tw, th),
                _ => DynamicImage::new_rgb8(tw, th),
            };
            image::imageops::overlay(
                &mut canvas,
                &scaled,
                ((tw - sw) / 2) as i64,
                ((th - sh) / 2) as i64,
            );
            canvas
        }
    };
    Ok(match t.c {
        1 => fitted.to_luma8().into_raw(),
        _ => fitted.to_rgb8().into_raw(),
    })
}

/// One image file as the network's input (`t.h * t.w * t.c` bytes, HWC), decoded, converted
/// and resized exactly as the folder loader does: what `predict` and `deploy --data folder:`
/// feed the engine.
pub fn decode_image(path: &Path, t: Target, resize: Resize) -> Result<Vec<u8>, DataError> {
    decode(path, t, resize).map_err(|bad| match bad {
        Bad::Io(source) => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        Bad::Decode(why) => DataError::Decode {
            path: path.to_path_buf(),
            why,
        },
        Bad::TooSmall(w, h) => DataError::TooSmall {
            path: path.to_path_buf(),
            size: format!("{w}x{h}"),
            count: 1,
            need: format!("{}x{}", t.w, t.h),
            resize: resize.to_string(),
        },
    })
}

/// `img` at exactly `w x h` (a copy when it already is).
fn fit(img: &DynamicImage, w: u32, h: u32) -> DynamicImage {
    if img.width() == w && img.height() == h {
        img.clone()
    } else {
        img.resize_exact(w, h, FilterType::Triangle)
    }
}

/// FNV-1a, 64 bits: the cache key over paths, sizes, times and options.
struct Fnv(u64);
impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that ("ab", "c") and ("a", "bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
    fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
}

fn cache_key(
    dir: &Path,
    layout: &Layout,
    t: Target,
    opts: &FolderOptions,
) -> Result<u64, DataError> {
    let mut k = Fnv::new();
    for v in [t.h, t.w, t.c] {
        k.u64(v as u64);
    }
    k.bytes(opts.resize.to_string().as_bytes());
    k.u64(opts.skip_bad as u64);
    for c in &layout.classes {
        k.bytes(c.as_bytes());
    }
    for e in &layout.entries {
        let rel = e.path.strip_prefix(dir).unwrap_or(&e.path);
        k.bytes(rel.to_string_lossy().as_bytes());
        k.u64(e.label as u64 | (e.test as u64) << 8);
        let meta = std::fs::metadata(&e.path).map_err(|source| DataError::Io {
            path: e.path.clone(),
            source,
        })?;
        k.u64(meta.len());
        let mtime = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        k.u64(mtime);
    }
    Ok(k.0)
}

/// The cache's bytes: magic, key, file count, image length, one status byte per file (1 used,
/// 0 skipped as bad), then the used images' bytes in file order.
fn cache_bytes(key: u64, image_len: usize, images: &[Option<Vec<u8>>]) -> Vec<u8> {
    let used = images.iter().flatten().count();
    let mut b = Vec::with_capacity(32 + images.len() + used * image_len);
    b.extend_from_slice(CACHE_MAGIC);
    b.extend_from_slice(&key.to_le_bytes());
    b.extend_from_slice(&(images.len() as u64).to_le_bytes());
    b.extend_from_slice(&(image_len as u64).to_le_bytes());
    b.extend(images.iter().map(|i| i.is_some() as u8));
    for i in images.iter().flatten() {
        b.extend_from_slice(i);
    }
    b
}

/// The cached images if `bytes` is a whole cache for `key`; `None` for anything else.
fn read_cache(
    bytes: &[u8],
    key: u64,
    files: usize,
    image_len: usize,
) -> Option<Vec<Option<Vec<u8>>>> {
    let field = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
    };
    if bytes.get(..8)? != CACHE_MAGIC
        || field(8)? != key
        || field(16)? != files as u64
        || field(24)? != image_len as u64
    {
        return None;
    }
    let status = bytes.get(32..32 + files)?;
    let used = status.iter().filter(|&&s| s == 1).count();
    let mut pixels = bytes.get(32 + files..)?;
    if pixels.len() != used.checked_mul(image_len)? || status.iter().any(|&s| s > 1) {
        return None;
    }
    let mut out = Vec::with_capacity(files);
    for &s in status {
        if s == 1 {
            let (img, rest) = pixels.split_at(image_len);
            out.push(Some(img.to_vec()));
            pixels = rest;
        } else {
            out.push(None);
        }
    }
    Some(out)
}

fn write_cache(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = path.with_extension("bin.tmp");
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| DataError::Io { path: p, source }
    };
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// How many bad files a `skip_bad` summary names.
pub const BAD_NAMED: usize = 3;

/// Loads the folder dataset at `dir` at the input `t`: (train, test, class names, report).
/// `cache_dir` is the run folder the decoded images are cached in (`None`: no cache).
pub fn load_folder(
    dir: &Path,
    t: Target,
    opts: &FolderOptions,
    cache_dir: Option<&Path>,
    quiet: bool,
) -> Result<(Dataset, Dataset, Vec<String>, FolderReport), DataError> {
    if !(1..=4096).contains(&t.h) || !(1..=4096).contains(&t.w) || !matches!(t.c, 1 | 3) {
        return Err(DataError::BadSpec(format!(
            "folder:{}: the input must be 1..4096 pixels a side with 1 (grey) or 3 (RGB) channels, not {}x{}x{}",
            dir.display(),
            t.h,
            t.w,
            t.c
        )));
    }
    if !(0.0..1.0).contains(&opts.val_split) {
        return Err(DataError::BadSpec(format!(
            "--val-split {}: expected a share in [0, 1), e.g. 0.2",
            opts.val_split
        )));
    }
    let start = std::time::Instant::now();
    let layout = scan(dir)?;
    let image_len = t.h * t.w * t.c;
    let key = cache_key(dir, &layout, t, opts)?;
    let cache = cache_dir.map(|d| d.join(CACHE_FILE));
    let cached = cache
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| read_cache(&b, key, layout.entries.len(), image_len));
    let mut report = FolderReport {
        not_images: layout.not_images,
        ..FolderReport::default()
    };
    let images = match cached {
        Some(images) => {
            report.from_cache = true;
            images
        }
        None => {
            let images = decode_all(&layout, t, opts, quiet, &mut report)?;
            if let Some(p) = &cache {
                write_cache(p, &cache_bytes(key, image_len, &images))?;
            }
            images
        }
    };
    report.skipped_bad = images.iter().filter(|i| i.is_none()).count();
    if report.from_cache {
        report.bad_examples = layout
            .entries
            .iter()
            .zip(&images)
            .filter(|(_, img)| img.is_none())
            .take(BAD_NAMED)
            .map(|(e, _)| {
                (
                    e.path.clone(),
                    "did not decode when the cache was written".into(),
                )
            })
            .collect();
    } else {
        report.decoded = layout.entries.len();
    }
    let (train, test) = split(&layout, images, t, opts);
    for (name, ds) in [("training", &train), ("test", &test)] {
        if ds.is_empty() {
            return Err(DataError::Folder {
                path: dir.to_path_buf(),
                what: format!("leaves no {name} images (too few images, or --val-split too small)"),
            });
        }
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok((train, test, layout.classes, report))
}

/// Decodes every file on every core, with a progress bar; fails on the first bad or too-small
/// image (in file order) unless `skip_bad`, which skips bad ones (too small still fails).
fn decode_all(
    layout: &Layout,
    t: Target,
    opts: &FolderOptions,
    quiet: bool,
    report: &mut FolderReport,
) -> Result<Vec<Option<Vec<u8>>>, DataError> {
    let bar = (!quiet).then(|| {
        let bar = indicatif::ProgressBar::new(layout.entries.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "decode [{bar:30}] {pos}/{len} images ({per_sec}, {eta})",
            )
            .expect("static template")
            .progress_chars("=> "),
        );
        bar
    });
    let results: Vec<Result<Vec<u8>, Bad>> = layout
        .entries
        .par_iter()
        .map(|e| {
            let r = decode(&e.path, t, opts.resize);
            if let Some(b) = &bar {
                b.inc(1);
            }
            r
        })
        .collect();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let small: Vec<(usize, u32, u32)> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Err(Bad::TooSmall(w, h)) => Some((i, *w, *h)),
            _ => None,
        })
        .collect();
    if let Some(&(i, w, h)) = small.first() {
        return Err(DataError::TooSmall {
            path: layout.entries[i].path.clone(),
            size: format!("{w}x{h}"),
            count: small.len(),
            need: format!("{}x{}", t.w, t.h),
            resize: opts.resize.to_string(),
        });
    }
    let mut out = Vec::with_capacity(results.len());
    for (e, r) in layout.entries.iter().zip(results) {
        match r {
            Ok(img) => out.push(Some(img)),
            Err(Bad::Decode(why)) if opts.skip_bad => {
                if report.bad_examples.len() < BAD_NAMED {
                    report.bad_examples.push((e.path.clone(), why));
                }
                out.push(None);
            }
            Err(Bad::Decode(why)) => {
                return Err(DataError::Decode {
                    path: e.path.clone(),
                    why,
                })
            }
            Err(Bad::Io(source)) => {
                return Err(DataError::Io {
                    path: e.path.clone(),
                    source,
                })
            }
            Err(Bad::TooSmall(..)) => unreachable!("refused above"),
        }
    }
    Ok(out)
}

/// The train and test sets: the split folders, or per class a seeded `val_split` share of the
/// images (at least one of a class of two or more) held out.
fn split(
    layout: &Layout,
    images: Vec<Option<Vec<u8>>>,
    t: Target,
    opts: &FolderOptions,
) -> (Dataset, Dataset) {
    let classes = layout.classes.len();
    let empty = || Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        h: t.h,
        w: t.w,
        c: t.c,
        classes,
    };
    let (mut train, mut test) = (empty(), empty());
    let mut is_test: Vec<bool> = layout.entries.iter().map(|e| e.test).collect();
    if !layout.split {
        let mut rng = Rng::new(opts.seed ^ 0x5eed_f01d);
        for class in 0..classes {
            let mut idx: Vec<usize> = (0..layout.entries.len())
                .filter(|&i| layout.entries[i].label as usize == class && images[i].is_some())
                .collect();
            rng.shuffle(&mut idx);
            let mut n = (idx.len() as f64 * opts.val_split as f64).round() as usize;
            if opts.val_split > 0.0 && n == 0 && idx.len() >= 2 {
                n = 1;
            }
            for &i in &idx[..n.min(idx.len())] {
                is_test[i] = true;
            }
        }
    }
    for ((e, img), test_one) in layout.entries.iter().zip(images).zip(is_test) {
        let Some(img) = img else { continue };
        let ds = if test_one { &mut test } else { &mut train };
        ds.images.extend_from_slice(&img);
        ds.labels.push(e.label);
    }
    (train, test)
}

/// The one line a folder load prints: classes, images per split, what was skipped, and whether
/// the images were decoded now (and how fast) or read from the cache.
pub fn summary(
    dir: &Path,
    train: &Dataset,
    test: &Dataset,
    names: &[String],
    opts: &FolderOptions,
    r: &FolderReport,
) -> String {
    let mut s = format!(
        "folder {}: {} classes ({}), {} training and {} test images at {}x{}x{} (resize {})",
        dir.display(),
        names.len(),
        preview(names),
        train.len(),
        test.len(),
        train.h,
        train.w,
        train.c,
        opts.resize
    );
    if r.not_images > 0 {
        s.push_str(&format!(
            "; {} files that are not images skipped",
            r.not_images
        ));
    }
    if r.skipped_bad > 0 {
        let named: Vec<String> = r
            .bad_examples
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        s.push_str(&format!(
            "; {} files that do not decode skipped (--skip-bad), e.g. {}",
            r.skipped_bad,
            named.join(", ")
        ));
    }
    if r.from_cache {
        s.push_str(&format!("; read from the cache in {:.2} s", r.seconds));
    } else {
        s.push_str(&format!(
            "; decoded in {:.1} s ({:.0} images/s)",
            r.seconds,
            r.decoded as f64 / r.seconds.max(1e-9)
        ));
    }
    s
}

/// The first few class names, then "..".
fn preview(names: &[String]) -> String {
    let mut v: Vec<&str> = names.iter().take(6).map(String::as_str).collect();
    if names.len() > 6 {
        v.push("..");
    }
    v.join(", ")
}

/// Writes every image of `ds` (grey, `c` = 1) as `DIR/<label>/NNNNN.EXT` (`png`, `jpg` at
/// `quality`, or `bmp`), grey or with the grey value in three channels (`rgb`); returns the count.
/// The folder tests, `examples/idx_to_folder.rs` and the decoding benchmark write their folders
/// with it.
pub fn write_folder(
    dir: &Path,
    ds: &Dataset,
    ext: &str,
    rgb: bool,
    quality: u8,
) -> Result<usize, DataError> {
    use image::{codecs::jpeg::JpegEncoder, ExtendedColorType, ImageEncoder};
    let err = |path: &Path, e: &dyn std::fmt::Display| DataError::Folder {
        path: path.to_path_buf(),
        what: format!("cannot write: {e}"),
    };
    for (i, (&label, img)) in ds
        .labels
        .iter()
        .zip(ds.images.chunks_exact(ds.image_len()))
        .enumerate()
    {
        let class = dir.join(label.to_string());
        std::fs::create_dir_all(&class).map_err(|e| err(&class, &e))?;
        let path = class.join(format!("{i:05}.{ext}"));
        let (w, h) = (ds.w as u32, ds.h as u32);
        let pixels: Vec<u8> = if rgb && ds.c == 1 {
            img.iter().flat_map(|&v| [v, v, v]).collect()
        } else {
            img.to_vec()
        };
        let color = if rgb || ds.c == 3 {
            ExtendedColorType::Rgb8
        } else {
            ExtendedColorType::L8
        };
        let written = if ext == "jpg" {
            let f = std::fs::File::create(&path).map_err(|e| err(&path, &e))?;
            JpegEncoder::new_with_quality(std::io::BufWriter::new(f), quality)
                .write_image(&pixels, w, h, color)
        } else {
            image::save_buffer(&path, &pixels, w, h, color)
        };
        written.map_err(|e| err(&path, &e))?;
    }
    Ok(ds.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    const T8: Target = Target { h: 8, w: 8, c: 1 };

    /// A grey PNG of `w x h` whose pixels depend on `seed`.
    fn png(path: &Path, w: u32, h: u32, seed: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        GrayImage::from_fn(w, h, |x, y| {
            Luma([(x as u8 * 13 + y as u8 * 7).wrapping_add(seed)])
        })
        .save(path)
        .unwrap();
    }

    fn opts() -> FolderOptions {
        FolderOptions::default()
    }

    fn err(dir: &Path, t: Target, o: &FolderOptions) -> String {
        match load_folder(dir, t, o, None, true) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{} loaded", dir.display()),
        }
    }

    #[test]
    fn class_folders_load_sorted_with_a_stratified_split() {
        let d = TempDir::new("folder-split");
        for (class, n) in [("zebra", 10), ("apple", 5), ("mango", 3)] {
            for i in 0..n {
                png(&d.0.join(class).join(format!("{i}.PNG")), 8, 8, i as u8);
            }
        }
        std::fs::write(d.0.join("apple").join("notes.txt"), "x").unwrap();
        std::fs::write(d.0.join(".DS_Store"), "x").unwrap();
        let (train, test, names, r) = load_folder(&d.0, T8, &opts(), None, true).unwrap();
        assert_eq!(names, ["apple", "mango", "zebra"]);
        assert_eq!(r.not_images, 2);
        // 20% of each class, at least one: 1 of 5, 1 of 3, 2 of 10.
        assert_eq!((train.len(), test.len()), (14, 4));
        let count = |ds: &Dataset, l: u8| ds.labels.iter().filter(|&&x| x == l).count();
        assert_eq!(
            [count(&test, 0), count(&test, 1), count(&test, 2)],
            [1, 1, 2]
        );
        assert_eq!(train.images.len(), 14 * 64);
        // The same seed gives the same split; another seed another one.
        let again = load_folder(&d.0, T8, &opts(), None, true).unwrap();
        assert_eq!(again.1, test);
        let other = FolderOptions { seed: 7, ..opts() };
        let moved = load_folder(&d.0, T8, &other, None, true).unwrap();
        assert_eq!(moved.1.len(), 4);
    }

    #[test]
    fn split_folders_and_rgb_pad() {
        let d = TempDir::new("folder-train-test");
        for (split, n) in [("train", 3), ("val", 1)] {
            for class in ["cat", "dog"] {
                for i in 0..n {
                    let p = d.0.join(split).join(class).join(format!("{i}.png"));
                    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                    RgbImage::from_fn(12, 6, |x, _| Rgb([x as u8 * 20, 100, 200]))
                        .save(&p)
                        .unwrap();
                }
            }
        }
        let t = Target { h: 8, w: 8, c: 3 };
        let o = FolderOptions {
            resize: Resize::Pad,
            ..opts()
        };
        let (train, test, names, _) = load_folder(&d.0, t, &o, None, true).unwrap();
        assert_eq!(names, ["cat", "dog"]);
        assert_eq!((train.len(), test.len()), (6, 2));
        // 12x6 scaled to 8x4, centred: rows 0-1 and 6-7 are black padding.
        let img = train.image(0);
        assert!(img[..2 * 8 * 3].iter().all(|&v| v == 0));
        assert!(img[2 * 8 * 3..6 * 8 * 3]
            .chunks(3)
            .all(|p| p[1] == 100 && p[2] == 200));
    }

    #[test]
    fn bad_input_fails_naming_the_file_or_folder() {
        let d = TempDir::new("folder-bad");
        let e = err(&d.0.join("missing"), T8, &opts());
        assert!(e.contains("missing: not found"), "{e}");
        let e = err(&d.0, T8, &opts());
        assert!(e.contains("holds no class folders"), "{e}");
        png(&d.0.join("one").join("a.png"), 8, 8, 0);
        let e = err(&d.0, T8, &opts());
        assert!(e.contains("holds one class folder (one)"), "{e}");
        std::fs::create_dir_all(d.0.join("two")).unwrap();
        std::fs::write(d.0.join("two").join("readme.txt"), "x").unwrap();
        let e = err(&d.0, T8, &opts());
        assert!(e.contains("class folder `two` holds no images"), "{e}");
        std::fs::write(d.0.join("two").join("broken.png"), b"not a png").unwrap();
        let e = err(&d.0, T8, &opts());
        assert!(e.contains("broken.png: cannot decode this image"), "{e}");
        assert!(e.contains("--skip-bad"), "{e}");
        // --skip-bad counts and names it, and loads the rest.
        png(&d.0.join("two").join("b.png"), 8, 8, 1);
        png(&d.0.join("two").join("c.png"), 8, 8, 2);
        png(&d.0.join("one").join("d.png"), 8, 8, 3);
        let skip = FolderOptions {
            skip_bad: true,
            ..opts()
        };
        let (train, test, _, r) = load_folder(&d.0, T8, &skip, None, true).unwrap();
        assert_eq!((train.len() + test.len(), r.skipped_bad), (4, 1));
        assert!(r.bad_examples[0].0.ends_with("broken.png"));
        // Too small for the input without upscaling: one named, all counted.
        std::fs::remove_file(d.0.join("two").join("broken.png")).unwrap();
        png(&d.0.join("one").join("small.png"), 4, 8, 0);
        png(&d.0.join("two").join("small.png"), 8, 5, 0);
        let e = err(&d.0, T8, &opts());
        assert!(
            e.contains("one/small.png: 4x8 is smaller than the 8x8 input (with --resize stretch), and 2 image(s) in all are"),
            "{e}"
        );
        // --resize pad never scales up, so they load.
        let pad = FolderOptions {
            resize: Resize::Pad,
            ..opts()
        };
        assert!(load_folder(&d.0, T8, &pad, None, true).is_ok());
        // A train/ folder without test/ or val/.
        let s = TempDir::new("folder-bad-split");
        png(&s.0.join("train").join("a").join("0.png"), 8, 8, 0);
        let e = err(&s.0, T8, &opts());
        assert!(
            e.contains("has a train/ folder but no test/ or val/"),
            "{e}"
        );
    }

    /// The first `n` images of `ds` as a dataset.
    fn first(ds: &Dataset, n: usize) -> Dataset {
        Dataset {
            images: ds.images[..n * ds.image_len()].to_vec(),
            labels: ds.labels[..n].to_vec(),
            ..ds.clone()
        }
    }

    /// (label, image) pairs, stably sorted by label: the order the folder loader lists files
    /// written by `write_folder` in (class by class, each class in its file-name = IDX order).
    fn pairs(ds: &Dataset) -> Vec<(u8, Vec<u8>)> {
        let mut v: Vec<(u8, Vec<u8>)> = (0..ds.len())
            .map(|i| (ds.labels[i], ds.image(i).to_vec()))
            .collect();
        v.sort_by_key(|p| p.0);
        v
    }

    #[test]
    fn bundled_digits_written_as_png_load_back_exactly_and_as_jpeg_closely() {
        let mnist = crate::data::load(&crate::data::DataSpec::BundledMnist).unwrap();
        let (train, test) = (first(&mnist.train, 300), first(&mnist.test, 100));
        let t = Target { h: 28, w: 28, c: 1 };
        for (ext, rgb) in [("png", false), ("jpg", false), ("png", true)] {
            let d = TempDir::new(&format!("folder-mnist-{ext}-{rgb}"));
            write_folder(&d.0.join("train"), &train, ext, rgb, 90).unwrap();
            write_folder(&d.0.join("test"), &test, ext, rgb, 90).unwrap();
            let (tr, te, names, _) = load_folder(&d.0, t, &opts(), None, true).unwrap();
            assert_eq!(names, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
            assert_eq!((tr.len(), te.len()), (300, 100));
            let (a, b) = (pairs(&tr), pairs(&train));
            if ext == "png" {
                // Lossless, and grey replicated into RGB reads back as the same grey.
                assert_eq!(a, b, "{ext} rgb={rgb}");
            } else {
                let diff: u64 = a
                    .iter()
                    .zip(&b)
                    .flat_map(|(x, y)| x.1.iter().zip(&y.1))
                    .map(|(&p, &q)| (p as i64 - q as i64).unsigned_abs())
                    .sum();
                let mean = diff as f64 / (300.0 * 784.0);
                assert!(
                    mean < 3.0,
                    "JPEG q90 differs by {mean:.2} per pixel on average"
                );
                assert!(a.iter().zip(&b).all(|(x, y)| x.0 == y.0));
            }
            // As RGB input: three equal channels.
            if rgb {
                let t3 = Target { c: 3, ..t };
                let (tr3, ..) = load_folder(&d.0, t3, &opts(), None, true).unwrap();
                assert!(tr3.images.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
            }
        }
    }

    #[test]
    fn the_cache_is_used_rebuilt_on_change_and_never_half_read() {
        let d = TempDir::new("folder-cache");
        let data = d.0.join("data");
        for class in ["a", "b"] {
            for i in 0..3 {
                png(&data.join(class).join(format!("{i}.png")), 8, 8, i);
            }
        }
        let run = d.0.join("run");
        std::fs::create_dir_all(&run).unwrap();
        let first = load_folder(&data, T8, &opts(), Some(&run), true).unwrap();
        assert!(!first.3.from_cache);
        let cache = run.join(CACHE_FILE);
        let full = std::fs::read(&cache).unwrap();
        let second = load_folder(&data, T8, &opts(), Some(&run), true).unwrap();
        assert!(second.3.from_cache);
        assert_eq!((&second.0, &second.1), (&first.0, &first.1));
        // Another input size is another key.
        let t = Target { h: 4, w: 4, c: 1 };
        assert!(
            !load_folder(&data, t, &opts(), Some(&run), true)
                .unwrap()
                .3
                .from_cache
        );
        load_folder(&data, T8, &opts(), Some(&run), true).unwrap();
        // A half-written cache is not used (and is rewritten whole).
        std::fs::write(&cache, &full[..full.len() - 10]).unwrap();
        let third = load_folder(&data, T8, &opts(), Some(&run), true).unwrap();
        assert!(!third.3.from_cache);
        assert_eq!(std::fs::read(&cache).unwrap(), full);
        // A changed file rebuilds it, with the new pixels.
        std::thread::sleep(std::time::Duration::from_millis(20));
        png(&data.join("a").join("0.png"), 8, 8, 99);
        let fourth = load_folder(&data, T8, &opts(), Some(&run), true).unwrap();
        assert!(!fourth.3.from_cache);
        assert_ne!(std::fs::read(&cache).unwrap(), full);
    }
}
