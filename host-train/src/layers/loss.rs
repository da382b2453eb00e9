//! Softmax cross-entropy, mean over the batch.

/// logits: dense (n, classes). Returns the mean loss and writes `dlogits = (softmax - onehot) / n`.
/// Also returns how many argmax predictions equal the label.
pub fn softmax_xent(
    dlogits: &mut [f32],
    logits: &[f32],
    labels: &[u8],
    classes: usize,
) -> (f32, usize) {
    let n = labels.len();
    let mut loss = 0.0f64;
    let mut correct = 0;
    for i in 0..n {
        let z = &logits[i * classes..(i + 1) * classes];
        let d = &mut dlogits[i * classes..(i + 1) * classes];
        let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = z.iter().map(|v| ((v - max) as f64).exp()).sum();
        let y = labels[i] as usize;
        loss += sum.ln() - (z[y] - max) as f64;
        for (k, dv) in d.iter_mut().enumerate() {
            let p = ((z[k] - max) as f64).exp() / sum;
            *dv = ((p - f64::from(u8::from(k == y))) / n as f64) as f32;
        }
        if argmax(z) == y {
            correct += 1;
        }
    }
    ((loss / n as f64) as f32, correct)
}

/// Index of the largest value (first one on ties).
pub fn argmax(z: &[f32]) -> usize {
    let mut best = 0;
    for (k, v) in z.iter().enumerate() {
        if *v > z[best] {
            best = k;
        }
    }
    best
}
