//! IDX files of unsigned bytes (MNIST's format): an images file (`0x00000803` for count x rows
//! x cols, `0x00000804` for count x h x w x c) and a labels file (`0x00000801`). Every bad file
//! is a one-line error naming it.
use std::path::Path;

/// The first `n` images and labels of an IDX pair.
#[derive(Debug)]
pub struct Images {
    /// `count * image_len` pixels, image after image (HWC).
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
    /// Bytes per image (the product of the image dimensions).
    pub image_len: usize,
    /// The image dimensions as the file states them, e.g. `[28, 28]`.
    pub dims: Vec<usize>,
}

impl Images {
    pub fn count(&self) -> usize {
        self.labels.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&[u8], u8)> {
        self.pixels
            .chunks_exact(self.image_len.max(1))
            .zip(self.labels.iter().copied())
    }
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize)
}

/// Parses an IDX header of unsigned bytes: returns (dims, header length).
fn header(path: &Path, b: &[u8]) -> Result<(Vec<usize>, usize), String> {
    let p = path.display();
    match b.get(0..4) {
        Some([0, 0, 0x08, n @ 1..=4]) => {
            let n = *n as usize;
            let dims: Option<Vec<usize>> = (0..n).map(|i| be32(b, 4 + 4 * i)).collect();
            let dims = dims.ok_or_else(|| {
                format!(
                    "{p}: truncated IDX header ({} bytes, need {})",
                    b.len(),
                    4 + 4 * n
                )
            })?;
            Ok((dims, 4 + 4 * n))
        }
        Some(m) => Err(format!(
            "{p}: not an IDX file of unsigned bytes (magic {:02x}{:02x}{:02x}{:02x}, expected 00000801..00000804)",
            m[0], m[1], m[2], m[3]
        )),
        None => Err(format!("{p}: not an IDX file ({} bytes)", b.len())),
    }
}

/// `len` bytes after an `off`-byte header, for `n` records.
fn take<'a>(
    b: &'a [u8],
    off: usize,
    len: usize,
    path: &Path,
    n: usize,
) -> Result<&'a [u8], String> {
    b.get(off..off.saturating_add(len)).ok_or_else(|| {
        format!(
            "{}: truncated: {n} records need {len} bytes after the header, the file has {}",
            path.display(),
            b.len().saturating_sub(off)
        )
    })
}

/// Reads the first `n` images (all of them if the files hold fewer) and their labels.
pub fn read(images: &Path, labels: &Path, n: usize) -> Result<Images, String> {
    let img = std::fs::read(images).map_err(|e| format!("{}: {e}", images.display()))?;
    let lab = std::fs::read(labels).map_err(|e| format!("{}: {e}", labels.display()))?;
    let (idims, ioff) = header(images, &img)?;
    let (ldims, loff) = header(labels, &lab)?;
    if idims.len() < 3 {
        return Err(format!(
            "{}: an IDX file with {} dimension(s), expected images (count x rows x cols [x channels])",
            images.display(),
            idims.len()
        ));
    }
    if ldims.len() != 1 {
        return Err(format!(
            "{}: an IDX file with {} dimensions, expected labels (one dimension)",
            labels.display(),
            ldims.len()
        ));
    }
    let dims = idims[1..].to_vec();
    let image_len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("{}: image dimensions {dims:?} overflow", images.display()))?;
    let n = n.min(idims[0]).min(ldims[0]);
    let pixels = take(&img, ioff, n.saturating_mul(image_len), images, n)?.to_vec();
    let labels = take(&lab, loff, n, labels, n)?.to_vec();
    Ok(Images {
        pixels,
        labels,
        image_len,
        dims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch folder for one test's files.
    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("jetson-idx-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 0x08, dims.len() as u8];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b.extend(data);
        b
    }

    #[test]
    fn reads_the_first_n_images_and_labels() {
        let d = scratch("ok");
        let (i, l) = (d.join("i"), d.join("l"));
        std::fs::write(&i, idx(&[3, 2, 2], &(0..12).collect::<Vec<u8>>())).unwrap();
        std::fs::write(&l, idx(&[3], &[7, 8, 9])).unwrap();
        let r = read(&i, &l, 2).unwrap();
        assert_eq!((r.count(), r.image_len, r.dims.clone()), (2, 4, vec![2, 2]));
        let v: Vec<_> = r.iter().collect();
        assert_eq!(v, vec![(&[0u8, 1, 2, 3][..], 7), (&[4u8, 5, 6, 7][..], 8)]);
        // More asked than stored: all of them.
        assert_eq!(read(&i, &l, 100).unwrap().count(), 3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn bad_files_name_the_file() {
        let d = scratch("bad");
        let (i, l) = (d.join("images"), d.join("labels"));
        std::fs::write(&l, idx(&[3], &[1, 2, 3])).unwrap();

        let e = read(&d.join("missing"), &l, 1).unwrap_err();
        assert!(
            e.starts_with(&format!("{}:", d.join("missing").display())),
            "{e}"
        );

        std::fs::write(&i, b"PK\x03\x04 not idx").unwrap();
        let e = read(&i, &l, 1).unwrap_err();
        assert!(
            e.contains("images: not an IDX file") && e.contains("504b0304"),
            "{e}"
        );

        // Header says 3 images of 2x2, the file holds 5 pixels.
        std::fs::write(&i, idx(&[3, 2, 2], &[0; 5])).unwrap();
        let e = read(&i, &l, 2).unwrap_err();
        assert!(
            e.contains("images: truncated") && e.contains("need 8 bytes"),
            "{e}"
        );

        // A labels file given as images.
        let e = read(&l, &l, 1).unwrap_err();
        assert!(e.contains("1 dimension(s), expected images"), "{e}");

        std::fs::write(&i, [0, 0, 8]).unwrap();
        let e = read(&i, &l, 1).unwrap_err();
        assert!(e.contains("not an IDX file (3 bytes)"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}
