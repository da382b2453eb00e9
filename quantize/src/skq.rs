//! Writing the `.skq` file (byte layout in `firmware::format`): preamble, postcard-encoded
//! header, tensors and ops one record after another, zero padding, then the 16-aligned weight
//! section; CRC-32 over bytes `[16, length)`. [`read`] parses it back without validation, for
//! round-trip tests (the firmware's `Model::from_bytes` is the validating reader).
use crate::quant::QModel;
use crate::QuantError;
use firmware::format::{crc32, Header, Op, Tensor, FORMAT_VERSION, MAGIC, PREAMBLE, WEIGHT_ALIGN};

fn encode<T: serde::Serialize>(v: &T, out: &mut Vec<u8>) -> Result<(), QuantError> {
    let bytes = postcard::to_allocvec(v).map_err(|e| QuantError::Encode(e.to_string()))?;
    out.extend_from_slice(&bytes);
    Ok(())
}

pub fn to_bytes(m: &QModel) -> Result<Vec<u8>, QuantError> {
    let mut graph = Vec::new();
    encode(&m.header, &mut graph)?;
    for t in &m.tensors {
        encode(t, &mut graph)?;
    }
    for op in &m.ops {
        encode(op, &mut graph)?;
    }
    if !m.class_names.is_empty() {
        if m.class_names.len() != m.header.classes as usize {
            return Err(QuantError::Encode(format!(
                "{} class names for {} classes",
                m.class_names.len(),
                m.header.classes
            )));
        }
        if let Some(n) = m
            .class_names
            .iter()
            .find(|n| n.is_empty() || n.len() > firmware::wire::MAX_NAME)
        {
            return Err(QuantError::Encode(format!(
                "class name {n:?}: a name must be 1 to {} bytes of UTF-8",
                firmware::wire::MAX_NAME
            )));
        }
        encode(&m.class_names, &mut graph)?;
    }
    let g = graph.len();
    let w = (PREAMBLE + g).div_ceil(WEIGHT_ALIGN) * WEIGHT_ALIGN;
    let total = w + m.weights.len();
    let too_big = || {
        QuantError::Encode(format!(
            "model of {total} bytes does not fit the format's u32 length"
        ))
    };
    let total32 = u32::try_from(total).map_err(|_| too_big())?;
    let mut out = vec![0u8; total];
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    out[6..8].copy_from_slice(&0u16.to_le_bytes());
    out[8..12].copy_from_slice(&total32.to_le_bytes());
    out[16..20].copy_from_slice(&(g as u32).to_le_bytes());
    out[20..24].copy_from_slice(&(w as u32).to_le_bytes());
    out[PREAMBLE..PREAMBLE + g].copy_from_slice(&graph);
    out[w..].copy_from_slice(&m.weights);
    let crc = crc32(&out[16..]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Parses a file `to_bytes` wrote (header, tensors, ops, weight section). Checks only what it
/// needs to not panic; names and kinds come back empty.
pub fn read(bytes: &[u8]) -> Result<QModel, String> {
    let u32_at = |o: usize| -> Result<usize, String> {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| "truncated preamble".to_string())
    };
    if bytes.get(0..4) != Some(&MAGIC[..]) {
        return Err("bad magic".into());
    }
    let (len, g, w) = (u32_at(8)?, u32_at(16)?, u32_at(20)?);
    if len != bytes.len() || PREAMBLE + g > w || w > len {
        return Err("bad lengths".into());
    }
    if crc32(&bytes[16..]) as usize != u32_at(12)? {
        return Err("checksum".into());
    }
    let mut rest = &bytes[PREAMBLE..PREAMBLE + g];
    let (header, r): (Header, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| format!("header: {e}"))?;
    rest = r;
    let mut tensors = Vec::new();
    for i in 0..header.tensors {
        let (t, r): (Tensor, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| format!("tensor {i}: {e}"))?;
        tensors.push(t);
        rest = r;
    }
    let mut ops = Vec::new();
    for i in 0..header.ops {
        let (o, r): (Op, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| format!("op {i}: {e}"))?;
        ops.push(o);
        rest = r;
    }
    let class_names = if rest.is_empty() {
        vec![]
    } else {
        postcard::from_bytes(rest).map_err(|e| format!("class names: {e}"))?
    };
    Ok(QModel {
        header,
        tensors,
        ops,
        weights: bytes[w..].to_vec(),
        names: vec![],
        kinds: vec![],
        class_names,
    })
}
