//! Training batches from a file (`onnx-ac train --data batches.npz`, issue #15): a numpy `.npz`
//! archive (`numpy.savez`/`savez_compressed`) with one array per data input of the step, named
//! as the input, whose leading axis is the batch index (array `x` of shape `[B, 8, 32]` for an
//! input `x` of shape `[8, 32]` holds B batches). Step k uses batch k mod B.
//!
//! The file is untrusted input: it is opened with [`crate::safefs::open_input`], each `.npy`
//! header is parsed by the strict reader below (little-endian or byte types, C order, at most
//! [`HEADER_LIMIT`] bytes, no pickled objects), sizes are computed with checked arithmetic, and
//! what is decompressed is bounded by the sizes the headers declare and by [`DATA_LIMIT`] in
//! all, so a compression bomb cannot grow past them. Every error names the array at fault.

use crate::runtime::HostTensor;
use onnx_ac_passes::ir::{DType, Graph};
use std::io::Read;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The largest `.npy` header read (numpy writes a few hundred bytes; its reader's default
/// limit is 10000).
pub const HEADER_LIMIT: usize = 65536;

/// The most batch data held in memory (all arrays together).
pub const DATA_LIMIT: u64 = 2 << 30;

/// At most this many arrays in an archive.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{}: cannot read the batches: {reason}", .path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{}: array {array}: {reason}", .path.display())]
    Array {
        path: PathBuf,
        array: String,
        reason: String,
    },
}

/// One data input of the step: its name, element type and static shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInput {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<i64>,
    /// For an integer input the graph indexes with (labels, token ids): its values must be
    /// in `[0, bound)` (a negative index would silently count from the end in ONNX Runtime).
    pub bound: Option<i64>,
}

/// The data inputs of a step: its graph inputs without a default. Their shapes must be static
/// (bind symbolic dimensions with `--dim`).
pub fn data_inputs(g: &Graph) -> Result<Vec<DataInput>, String> {
    g.inputs
        .iter()
        .filter(|&&i| g.value(i).initializer.is_none())
        .map(|&i| {
            let v = g.value(i);
            let dims = v
                .shape
                .as_ref()
                .and_then(|s| onnx_ac_passes::ir::static_dims(s))
                .ok_or_else(|| {
                    format!(
                        "input {}: its shape {} is not static; bind symbolic dims with --dim NAME=VALUE",
                        v.name,
                        onnx_ac_passes::ir::shape_string(v.shape.as_ref())
                    )
                })?;
            let dtype = v
                .dtype
                .ok_or_else(|| format!("input {}: its element type is unknown", v.name))?;
            let bound = match crate::profile::input_kind(g, i) {
                crate::profile::InputKind::Below(b) => Some(b),
                _ => None,
            };
            Ok(DataInput {
                name: v.name.clone(),
                dtype,
                dims,
                bound,
            })
        })
        .collect()
}

/// The batches of a file: one array per data input, `count` batches each.
#[derive(Debug, Clone)]
pub struct Batches {
    inputs: Vec<DataInput>,
    /// Each input's whole array (C order): batch b is the b-th of `count` equal slices.
    arrays: Vec<Vec<u8>>,
    pub count: usize,
}

impl Batches {
    /// The feeds of step `k` (batch `k mod count`).
    pub fn batch(&self, k: usize) -> Vec<HostTensor> {
        let b = k % self.count;
        self.inputs
            .iter()
            .zip(&self.arrays)
            .map(|(i, a)| {
                let n = a.len() / self.count;
                HostTensor {
                    name: i.name.clone(),
                    dtype: i.dtype,
                    dims: i.dims.clone(),
                    data: a[b * n..(b + 1) * n].to_vec(),
                }
            })
            .collect()
    }
}

/// The `.npy` type code of an element type (little-endian).
fn descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::Float => "<f4",
        DType::Double => "<f8",
        DType::Float16 => "<f2",
        DType::Int8 => "|i1",
        DType::Int16 => "<i2",
        DType::Int32 => "<i4",
        DType::Int64 => "<i8",
        DType::Uint8 => "|u1",
        DType::Uint16 => "<u2",
        DType::Uint32 => "<u4",
        DType::Uint64 => "<u8",
        DType::Bool => "|b1",
        _ => return None,
    })
}

/// Every value of an index input (little-endian `dtype`) within `[0, bound)`.
fn check_indices(data: &[u8], dtype: DType, bound: i64) -> Result<(), String> {
    let w = match dtype {
        DType::Int64 | DType::Uint64 => 8,
        DType::Int32 | DType::Uint32 => 4,
        DType::Int16 | DType::Uint16 => 2,
        DType::Int8 | DType::Uint8 => 1,
        _ => return Ok(()),
    };
    for (i, c) in data.chunks_exact(w).enumerate() {
        let v: i128 = match dtype {
            DType::Int64 => i64::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Uint64 => u64::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Int32 => i32::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Uint32 => u32::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Int16 => i16::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Uint16 => u16::from_le_bytes(c.try_into().unwrap()).into(),
            DType::Int8 => i8::from_le_bytes(c.try_into().unwrap()).into(),
            _ => c[0].into(),
        };
        if !(0..i128::from(bound)).contains(&v) {
            return Err(format!(
                "value {v} at flat index {i} is outside [0, {bound}): the step indexes with \
                 this input (labels or ids)"
            ));
        }
    }
    Ok(())
}

/// A parsed `.npy` header.
#[derive(Debug, PartialEq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// Reads and parses an `.npy` header from `r`, leaving `r` at the data.
fn read_npy_header(r: &mut impl Read) -> Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| format!("not an .npy array: {e}"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err("not an .npy array (no \\x93NUMPY magic)".into());
    }
    let len = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|e| e.to_string())?;
            u32::from_le_bytes(b) as usize
        }
        v => {
            return Err(format!(
                ".npy format version {v} is not supported (1 to 3 are)"
            ))
        }
    };
    if len > HEADER_LIMIT {
        return Err(format!(
            "its .npy header has {len} bytes, above onnx-ac's limit of {HEADER_LIMIT} (refused)"
        ));
    }
    let mut h = vec![0u8; len];
    r.read_exact(&mut h)
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    let text = String::from_utf8(h).map_err(|_| "its .npy header is not text".to_string())?;
    parse_npy_dict(&text)
}

/// Parses the Python dict literal numpy writes: `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }`. Anything else (a structured dtype, an unknown key) is refused.
fn parse_npy_dict(text: &str) -> Result<NpyHeader, String> {
    let bad = |what: &str| format!("unreadable .npy header ({what}): {}", text.trim());
    let body = text
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or_else(|| bad("not a dict"))?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    let mut rest = body.trim_start();
    while !rest.is_empty() {
        let key_end = rest[1..].find('\'').ok_or_else(|| bad("a key"))? + 1;
        if !rest.starts_with('\'') {
            return Err(bad("a key"));
        }
        let key = &rest[1..key_end];
        rest = rest[key_end + 1..]
            .trim_start()
            .strip_prefix(':')
            .ok_or_else(|| bad("':'"))?
            .trim_start();
        match key {
            "descr" => {
                let s = rest.strip_prefix('\'').ok_or_else(|| {
                    bad("descr is not a string: structured arrays are not supported")
                })?;
                let end = s.find('\'').ok_or_else(|| bad("descr"))?;
                descr = Some(s[..end].to_string());
                rest = &s[end + 1..];
            }
            "fortran_order" => {
                if let Some(s) = rest.strip_prefix("False") {
                    fortran = Some(false);
                    rest = s;
                } else if let Some(s) = rest.strip_prefix("True") {
                    fortran = Some(true);
                    rest = s;
                } else {
                    return Err(bad("fortran_order"));
                }
            }
            "shape" => {
                let s = rest.strip_prefix('(').ok_or_else(|| bad("shape"))?;
                let end = s.find(')').ok_or_else(|| bad("shape"))?;
                let dims = s[..end]
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| d.trim_end_matches('L').parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| bad("shape"))?;
                shape = Some(dims);
                rest = &s[end + 1..];
            }
            _ => return Err(bad("unknown key")),
        }
        rest = rest.trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Ok(NpyHeader {
        descr: descr.ok_or_else(|| bad("no descr"))?,
        fortran_order: fortran.ok_or_else(|| bad("no fortran_order"))?,
        shape: shape.ok_or_else(|| bad("no shape"))?,
    })
}

/// Reads the batches of the `.npz` at `path` for the data inputs `inputs`.
pub fn read_npz(path: &Path, inputs: &[DataInput]) -> Result<Batches, DataError> {
    let read_err = |reason: String| DataError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let arr_err = |array: &str, reason: String| DataError::Array {
        path: path.to_path_buf(),
        array: array.to_string(),
        reason,
    };
    let file = crate::safefs::open_input(path).map_err(|e| read_err(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| read_err(format!("not an .npz (zip) archive: {e}")))?;
    if zip.len() > MAX_ENTRIES {
        return Err(read_err(format!(
            "{} entries, above onnx-ac's limit of {MAX_ENTRIES}",
            zip.len()
        )));
    }
    let mut arrays: Vec<Option<Vec<u8>>> = vec![None; inputs.len()];
    let mut count: Option<(usize, String)> = None;
    let mut total = 0u64;
    for i in 0..zip.len() {
        let mut entry = zip
            .by_index(i)
            .map_err(|e| read_err(format!("entry {i}: {e}")))?;
        let entry_name = entry.name().to_string();
        let name = entry_name.strip_suffix(".npy").unwrap_or(&entry_name);
        let Some(slot) = inputs.iter().position(|d| d.name == name) else {
            return Err(arr_err(
                name,
                format!(
                    "the step has no data input of that name (its data inputs: {})",
                    inputs
                        .iter()
                        .map(|d| d.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if arrays[slot].is_some() {
            return Err(arr_err(name, "given twice".into()));
        }
        let want = &inputs[slot];
        let h = read_npy_header(&mut entry).map_err(|r| arr_err(name, r))?;
        let want_descr = descr(want.dtype).ok_or_else(|| {
            arr_err(
                name,
                format!("the step's input is {}, which .npy cannot hold", want.dtype),
            )
        })?;
        // numpy writes `|b1`, `|i1`, `|u1` for byte types and `<` for the rest on
        // little-endian machines.
        if h.descr != want_descr {
            return Err(arr_err(
                name,
                format!(
                    "element type '{}', the step's input {} needs '{want_descr}' ({}; \
                     little-endian)",
                    h.descr, want.name, want.dtype
                ),
            ));
        }
        if h.fortran_order {
            return Err(arr_err(
                name,
                "Fortran order: save a C-ordered array (numpy.ascontiguousarray)".into(),
            ));
        }
        let want_dims: Vec<u64> = want.dims.iter().map(|&d| d as u64).collect();
        if h.shape.len() != want_dims.len() + 1 || h.shape[1..] != want_dims[..] || h.shape[0] == 0
        {
            return Err(arr_err(
                name,
                format!(
                    "shape {:?}: the step's input {} has shape {:?}, so the array must be \
                     [BATCHES, {}] with BATCHES >= 1",
                    h.shape,
                    want.name,
                    want.dims,
                    want.dims
                        .iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let b =
            usize::try_from(h.shape[0]).map_err(|_| arr_err(name, "too many batches".into()))?;
        match &count {
            None => count = Some((b, name.to_string())),
            Some((c, other)) if *c != b => {
                return Err(arr_err(
                    name,
                    format!(
                        "{b} batches, but array {other} has {c}: every array needs the same count"
                    ),
                ))
            }
            _ => {}
        }
        let bytes = h
            .shape
            .iter()
            .try_fold(want.dtype.size_bytes().unwrap_or(1), |n, &d| {
                n.checked_mul(d)
            })
            .filter(|&n| total.saturating_add(n) <= DATA_LIMIT)
            .ok_or_else(|| {
                arr_err(
                    name,
                    format!(
                        "shape {:?} makes the batches larger than onnx-ac's limit of {} in all",
                        h.shape,
                        crate::size::human_bytes(DATA_LIMIT)
                    ),
                )
            })?;
        total += bytes;
        let mut data = vec![0u8; bytes as usize];
        entry
            .read_exact(&mut data)
            .map_err(|e| arr_err(name, format!("truncated data ({e})")))?;
        let mut extra = [0u8; 1];
        if entry
            .read(&mut extra)
            .map_err(|e| arr_err(name, e.to_string()))?
            != 0
        {
            return Err(arr_err(name, "more data than its shape holds".into()));
        }
        if let Some(bound) = want.bound {
            check_indices(&data, want.dtype, bound).map_err(|r| arr_err(name, r))?;
        }
        arrays[slot] = Some(data);
    }
    let arrays = inputs
        .iter()
        .zip(arrays)
        .map(|(d, a)| {
            a.ok_or_else(|| {
                arr_err(
                    &d.name,
                    "missing: the archive needs one array per data input of the step".into(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batches {
        inputs: inputs.to_vec(),
        arrays,
        count: count.map_or(0, |c| c.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_numpy_writes_parse() {
        let h = parse_npy_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n")
            .unwrap();
        assert_eq!(
            h,
            NpyHeader {
                descr: "<f4".into(),
                fortran_order: false,
                shape: vec![3, 4]
            }
        );
        let h = parse_npy_dict("{'descr': '|b1', 'fortran_order': True, 'shape': (5,), }").unwrap();
        assert_eq!(h.shape, vec![5]);
        assert!(h.fortran_order);
        assert_eq!(
            parse_npy_dict("{'descr': '<i8', 'fortran_order': False, 'shape': (), }")
                .unwrap()
                .shape,
            Vec::<u64>::new()
        );
    }

    #[test]
    fn other_headers_are_refused() {
        for h in [
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }",
            "{'descr': '<f4', 'shape': (3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-3,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'x': 1}",
            "['descr']",
        ] {
            assert!(parse_npy_dict(h).is_err(), "{h}");
        }
        let mut big = b"\x93NUMPY\x02\x00".to_vec();
        big.extend_from_slice(&(u32::MAX).to_le_bytes());
        let e = read_npy_header(&mut big.as_slice()).unwrap_err();
        assert!(e.contains("above onnx-ac's limit"), "{e}");
    }
}
