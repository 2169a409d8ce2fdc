//! Reading f32 tensors from safetensors files, with file-level errors, and writing safetensors
//! bytes that are the same for the same content (`serialize_sorted`).
//!
//! `read_f32` loads every tensor of a file as `(shape, values)`, values row-major in the file's
//! own layout (PyTorch conv weights stay OIHW). Any failure — missing file, truncated or corrupt
//! header, a tensor that is not F32 — is an `Error::File` naming the path. `take` then removes one
//! tensor by name and checks its shape, so a model builder reads
//! `take(&mut map, path, "fc.weight", &[1000, 1280])?`.

use crate::error::{Error, Result};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// Tensors by name: shape and row-major values.
pub type F32Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Read every tensor of a safetensors file; all of them must be F32.
pub fn read_f32(path: impl AsRef<Path>) -> Result<F32Tensors> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Error::file(&shown, format!("cannot read: {e}")))?;
    parse_f32(&bytes).map_err(|msg| Error::file(&shown, msg))
}

/// Parse an in-memory safetensors file (e.g. one embedded in the binary). Errors are messages
/// without a path; `read_f32` adds it.
pub fn parse_f32(bytes: &[u8]) -> std::result::Result<F32Tensors, String> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| format!("not a valid safetensors file ({} bytes): {e}", bytes.len()))?;
    let mut out = HashMap::with_capacity(st.len());
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F32 {
            return Err(format!(
                "tensor {name}: dtype {:?}, expected F32",
                view.dtype()
            ));
        }
        let shape = view.shape().to_vec();
        let count: usize = shape.iter().product();
        let data = view.data();
        if data.len() != count * 4 {
            return Err(format!(
                "tensor {name}: {} bytes for shape {shape:?} (expected {})",
                data.len(),
                count * 4
            ));
        }
        let values = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name.to_string(), (shape, values));
    }
    Ok(out)
}

/// Remove tensor `name` from `map`, checking that its shape is `shape`. `path` is only used in
/// the error message.
pub fn take(
    map: &mut F32Tensors,
    path: impl std::fmt::Display,
    name: &str,
    shape: &[usize],
) -> Result<Vec<f32>> {
    match map.remove(name) {
        None => Err(Error::file(
            path,
            format!("missing tensor {name} (expected shape {shape:?})"),
        )),
        Some((s, _)) if s != shape => Err(Error::file(
            path,
            format!("tensor {name} has shape {s:?}, expected {shape:?}"),
        )),
        Some((_, v)) => Ok(v),
    }
}

/// `safetensors::serialize` with the JSON header's keys sorted, metadata included: the crate
/// writes the metadata map in hash order, so the same model saved twice differed in its header.
/// The tensor bytes and their offsets are unchanged (offsets count from the end of the header).
pub fn serialize_sorted(
    views: Vec<(String, TensorView<'_>)>,
    metadata: HashMap<String, String>,
) -> std::result::Result<Vec<u8>, String> {
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| e.to_string())?;
    let (len, rest) = bytes.split_at(8);
    let n = u64::from_le_bytes(len.try_into().map_err(|_| "no header length")?) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(rest.get(..n).ok_or("short header")?).map_err(|e| e.to_string())?;
    let mut sorted = header.to_string().into_bytes();
    sorted.resize(sorted.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + sorted.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(sorted.len() as u64).to_le_bytes());
    out.extend_from_slice(&sorted);
    out.extend_from_slice(&rest[n..]);
    Ok(out)
}
