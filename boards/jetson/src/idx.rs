//! The jetson binary's IDX input: an images file (`0x00000803` for count x rows x cols,
//! `0x00000804` for count x h x w x c) and a labels file (`0x00000801`), read with the one IDX
//! parser, `firmware::idx::Idx`. Every bad file is a one-line error naming it.
use firmware::idx::Idx;
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

/// Reads the first `n` images (all of them if the files hold fewer) and their labels.
pub fn read(images: &Path, labels: &Path, n: usize) -> Result<Images, String> {
    let img = std::fs::read(images).map_err(|e| format!("{}: {e}", images.display()))?;
    let lab = std::fs::read(labels).map_err(|e| format!("{}: {e}", labels.display()))?;
    let i = Idx::parse(&img).map_err(|e| format!("{}: {e}", images.display()))?;
    if i.dims().len() < 3 {
        return Err(format!(
            "{}: an IDX file with {} dimension(s), expected images (count x rows x cols [x channels])",
            images.display(),
            i.dims().len()
        ));
    }
    let l = Idx::parse_rank(&lab, 1).map_err(|e| format!("{}: {e}", labels.display()))?;
    let n = n.min(i.count()).min(l.count());
    Ok(Images {
        pixels: i.first(n).to_vec(),
        labels: l.first(n).to_vec(),
        image_len: i.record_len(),
        dims: i.dims()[1..].to_vec(),
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
        // Colour images (rank 4).
        std::fs::write(&i, idx(&[1, 2, 2, 3], &[5; 12])).unwrap();
        let r = read(&i, &l, 5).unwrap();
        assert_eq!((r.count(), r.image_len, r.dims), (1, 12, vec![2, 2, 3]));
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
            e.starts_with(&format!("{}: not an uncompressed IDX file", i.display()))
                && e.contains("504b0304"),
            "{e}"
        );

        // Header says 3 images of 2x2, the file holds 5 pixels.
        std::fs::write(&i, idx(&[3, 2, 2], &[0; 5])).unwrap();
        let e = read(&i, &l, 2).unwrap_err();
        assert!(
            e.starts_with(&format!("{}: truncated", i.display())) && e.contains("12 bytes"),
            "{e}"
        );

        // A labels file given as images, images given as labels.
        let e = read(&l, &l, 1).unwrap_err();
        assert!(e.contains("1 dimension(s), expected images"), "{e}");
        std::fs::write(&i, idx(&[1, 2, 2], &[0; 4])).unwrap();
        let e = read(&i, &i, 1).unwrap_err();
        assert!(e.contains("rank 3") && e.contains("expected rank 1"), "{e}");

        std::fs::write(&i, [0, 0, 8]).unwrap();
        let e = read(&i, &l, 1).unwrap_err();
        assert!(e.contains("images: truncated: 3 bytes"), "{e}");
        for e in [read(&i, &l, 1).unwrap_err(), read(&l, &l, 1).unwrap_err()] {
            assert!(!e.contains('\n'), "one line: {e}");
        }
        let _ = std::fs::remove_dir_all(&d);
    }
}
