//! ONNX files: the protobuf messages ConvLens reads, decoded by a small zero-copy wire reader
//! (tensors' raw bytes stay slices of the file until they are converted), and their tensors
//! decoded to host arrays, including weights kept in an external-data file (`model.onnx` +
//! `model.onnx.data`). Field numbers are onnx.proto's. What the nodes mean is `graph::onnx`'s work.
//!
//! Why not `prost`: its derive macro's host dependencies change the features of crates the
//! CubeCL macros share, which rebuilds the whole Burn stack (native and wasm) for ~100 lines of
//! message structs; the wire format itself is five cases.

use std::collections::HashMap;

use crate::error::{Error, Result};

fn malformed(what: &str) -> Error {
    Error::weights(format!("not a valid ONNX file ({what}); truncated?"))
}

/// One field of a protobuf message.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

fn varint(buf: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first().ok_or_else(|| malformed("a number runs past the end"))?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed("a number longer than 10 bytes"))
}

/// The first `n` bytes, moving past them.
fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
    if buf.len() < n {
        return Err(malformed("a field runs past the end"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// The next field of a message, moving past it.
fn field<'a>(buf: &mut &'a [u8]) -> Result<(u32, Wire<'a>)> {
    let key = varint(buf)?;
    let number = u32::try_from(key >> 3).map_err(|_| malformed("a field number out of range"))?;
    let wire = match key & 7 {
        0 => Wire::Varint(varint(buf)?),
        1 => Wire::Fixed64(u64::from_le_bytes(take(buf, 8)?.try_into().unwrap_or([0; 8]))),
        2 => {
            let len = usize::try_from(varint(buf)?).map_err(|_| malformed("a length out of range"))?;
            Wire::Bytes(take(buf, len)?)
        }
        5 => Wire::Fixed32(u32::from_le_bytes(take(buf, 4)?.try_into().unwrap_or([0; 4]))),
        _ => return Err(malformed("an unknown wire type")),
    };
    Ok((number, wire))
}

/// The fields of a message, in order: (field number, value).
fn fields(mut buf: &[u8]) -> impl Iterator<Item = Result<(u32, Wire<'_>)>> {
    std::iter::from_fn(move || {
        if buf.is_empty() {
            return None;
        }
        let item = field(&mut buf);
        if item.is_err() {
            buf = &[];
        }
        Some(item)
    })
}

/// A singular field of a message (the last one written wins, as protobuf says).
fn last_field(buf: &[u8], number: u32) -> Result<Option<Wire<'_>>> {
    let mut found = None;
    for f in fields(buf) {
        let (n, w) = f?;
        if n == number {
            found = Some(w);
        }
    }
    Ok(found)
}

impl<'a> Wire<'a> {
    fn bytes(self) -> Result<&'a [u8]> {
        match self {
            Wire::Bytes(b) => Ok(b),
            _ => Err(malformed("a message field of the wrong type")),
        }
    }

    fn string(self) -> Result<String> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    fn int(self) -> Result<i64> {
        match self {
            Wire::Varint(v) | Wire::Fixed64(v) => Ok(v as i64),
            _ => Err(malformed("a number field of the wrong type")),
        }
    }

    fn float(self) -> Result<f32> {
        match self {
            Wire::Fixed32(v) => Ok(f32::from_bits(v)),
            _ => Err(malformed("a float field of the wrong type")),
        }
    }

    /// A repeated integer field, packed (one length-delimited run) or not (one value).
    fn ints_into(self, out: &mut Vec<i64>) -> Result<()> {
        match self {
            Wire::Bytes(mut b) => {
                while !b.is_empty() {
                    out.push(varint(&mut b)? as i64);
                }
                Ok(())
            }
            other => {
                out.push(other.int()?);
                Ok(())
            }
        }
    }

    /// A repeated float (`width` 4) or double (8) field, packed or not.
    fn floats_into(self, width: usize, out: &mut Vec<f64>) -> Result<()> {
        match self {
            Wire::Bytes(b) if b.len() % width == 0 => {
                out.extend(b.chunks_exact(width).map(|c| {
                    if width == 4 {
                        f32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as f64
                    } else {
                        f64::from_le_bytes(c.try_into().unwrap_or([0; 8]))
                    }
                }));
                Ok(())
            }
            Wire::Fixed32(v) => {
                out.push(f32::from_bits(v) as f64);
                Ok(())
            }
            Wire::Fixed64(v) => {
                out.push(f64::from_bits(v));
                Ok(())
            }
            _ => Err(malformed("a packed float field of the wrong length")),
        }
    }
}

/// ModelProto: the graph, what made it, its opsets.
#[derive(Debug, Clone, Default)]
pub struct ModelProto<'a> {
    pub producer_name: String,
    pub producer_version: String,
    pub graph: Option<GraphProto<'a>>,
    /// (domain, version) of each imported opset.
    pub opset_import: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Default)]
pub struct GraphProto<'a> {
    pub node: Vec<NodeProto>,
    pub name: String,
    pub initializer: Vec<TensorProto<'a>>,
    pub input: Vec<ValueInfo>,
    pub output: Vec<ValueInfo>,
}

#[derive(Debug, Clone, Default)]
pub struct NodeProto {
    pub input: Vec<String>,
    pub output: Vec<String>,
    pub name: String,
    pub op_type: String,
    pub attribute: Vec<AttributeProto>,
    pub domain: String,
}

#[derive(Debug, Clone, Default)]
pub struct AttributeProto {
    pub name: String,
    pub f: f32,
    pub i: i64,
    pub s: Vec<u8>,
    /// A tensor value (a Constant's), decoded.
    pub t: Option<Array>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

/// A graph input or output: its name and, for tensors, its dimensions (None: symbolic).
#[derive(Debug, Clone, Default)]
pub struct ValueInfo {
    pub name: String,
    pub dims: Option<Vec<Option<i64>>>,
}

#[derive(Debug, Clone, Default)]
pub struct TensorProto<'a> {
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub name: String,
    pub raw_data: &'a [u8],
    pub float_data: Vec<f64>,
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<f64>,
    pub external_data: Vec<(String, String)>,
    /// 1: the values are in an external file.
    pub data_location: i32,
}

impl<'a> ModelProto<'a> {
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut m = Self::default();
        for f in fields(buf) {
            match f? {
                (2, w) => m.producer_name = w.string()?,
                (3, w) => m.producer_version = w.string()?,
                (7, w) => m.graph = Some(GraphProto::decode(w.bytes()?)?),
                (8, w) => {
                    let (mut domain, mut version) = (String::new(), 0);
                    for f in fields(w.bytes()?) {
                        match f? {
                            (1, w) => domain = w.string()?,
                            (2, w) => version = w.int()?,
                            _ => {}
                        }
                    }
                    m.opset_import.push((domain, version));
                }
                _ => {}
            }
        }
        Ok(m)
    }
}

impl<'a> GraphProto<'a> {
    fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut g = Self::default();
        for f in fields(buf) {
            match f? {
                (1, w) => g.node.push(NodeProto::decode(w.bytes()?)?),
                (2, w) => g.name = w.string()?,
                (5, w) => g.initializer.push(TensorProto::decode(w.bytes()?)?),
                (11, w) => g.input.push(ValueInfo::decode(w.bytes()?)?),
                (12, w) => g.output.push(ValueInfo::decode(w.bytes()?)?),
                _ => {}
            }
        }
        Ok(g)
    }
}

impl NodeProto {
    fn decode(buf: &[u8]) -> Result<Self> {
        let mut n = Self::default();
        for f in fields(buf) {
            match f? {
                (1, w) => n.input.push(w.string()?),
                (2, w) => n.output.push(w.string()?),
                (3, w) => n.name = w.string()?,
                (4, w) => n.op_type = w.string()?,
                (5, w) => n.attribute.push(AttributeProto::decode(w.bytes()?)?),
                (7, w) => n.domain = w.string()?,
                _ => {}
            }
        }
        Ok(n)
    }
}

impl AttributeProto {
    fn decode(buf: &[u8]) -> Result<Self> {
        let mut a = Self::default();
        let mut floats = Vec::new();
        for f in fields(buf) {
            match f? {
                (1, w) => a.name = w.string()?,
                (2, w) => a.f = w.float()?,
                (3, w) => a.i = w.int()?,
                (4, w) => a.s = w.bytes()?.to_vec(),
                (5, w) => a.t = Some(decode_tensor(&TensorProto::decode(w.bytes()?)?, &|_| None)?),
                (7, w) => w.floats_into(4, &mut floats)?,
                (8, w) => w.ints_into(&mut a.ints)?,
                _ => {}
            }
        }
        a.floats = floats.into_iter().map(|v| v as f32).collect();
        Ok(a)
    }
}

impl ValueInfo {
    fn decode(buf: &[u8]) -> Result<Self> {
        let mut v = Self::default();
        for f in fields(buf) {
            match f? {
                (1, w) => v.name = w.string()?,
                // TypeProto → tensor_type (1) → shape (2) → dim (1)* → dim_value (1) | dim_param (2)
                (2, w) => {
                    let shape = match last_field(w.bytes()?, 1)? {
                        Some(tensor_type) => last_field(tensor_type.bytes()?, 2)?,
                        None => None,
                    };
                    if let Some(shape) = shape {
                        let mut dims = Vec::new();
                        for f in fields(shape.bytes()?) {
                            if let (1, dim) = f? {
                                dims.push(last_field(dim.bytes()?, 1)?.map(Wire::int).transpose()?);
                            }
                        }
                        v.dims = Some(dims);
                    }
                }
                _ => {}
            }
        }
        Ok(v)
    }
}

impl<'a> TensorProto<'a> {
    fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut t = Self::default();
        for f in fields(buf) {
            match f? {
                (1, w) => w.ints_into(&mut t.dims)?,
                (2, w) => t.data_type = w.int()? as i32,
                (4, w) => w.floats_into(4, &mut t.float_data)?,
                (5, w) => w.ints_into(&mut t.int32_data)?,
                (7, w) => w.ints_into(&mut t.int64_data)?,
                (8, w) => t.name = w.string()?,
                (9, w) => t.raw_data = w.bytes()?,
                (10, w) => w.floats_into(8, &mut t.double_data)?,
                (13, w) => {
                    let (mut key, mut value) = (String::new(), String::new());
                    for f in fields(w.bytes()?) {
                        match f? {
                            (1, w) => key = w.string()?,
                            (2, w) => value = w.string()?,
                            _ => {}
                        }
                    }
                    t.external_data.push((key, value));
                }
                (14, w) => t.data_location = w.int()? as i32,
                _ => {}
            }
        }
        Ok(t)
    }
}

/// ONNX element types ConvLens reads (TensorProto.DataType).
mod dtype {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const BFLOAT16: i32 = 16;
}

/// The opsets ConvLens was written against (the range; later ones are tried too, and
/// an op that changed meaning is caught by the op's own checks).
pub const OPSETS: std::ops::RangeInclusive<i64> = 13..=21;

/// An array on the host: float weights, or integers (shapes, axes, pads) that the importer folds.
#[derive(Debug, Clone, PartialEq)]
pub enum Array {
    Float(Vec<usize>, Vec<f32>),
    Int(Vec<usize>, Vec<i64>),
}

impl Array {
    pub fn shape(&self) -> &[usize] {
        match self {
            Array::Float(s, _) | Array::Int(s, _) => s,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Array::Float(_, v) => v.len(),
            Array::Int(_, v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as floats (integers converted).
    pub fn floats(&self) -> Vec<f32> {
        match self {
            Array::Float(_, v) => v.clone(),
            Array::Int(_, v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as integers (floats truncated, as ONNX's Cast does).
    pub fn ints(&self) -> Vec<i64> {
        match self {
            Array::Float(_, v) => v.iter().map(|&x| x as i64).collect(),
            Array::Int(_, v) => v.clone(),
        }
    }
}

/// A parsed ONNX file: its graph's nodes, inputs and outputs, its opset, and every initializer
/// decoded.
#[derive(Debug)]
pub struct OnnxModel {
    pub name: String,
    pub nodes: Vec<NodeProto>,
    pub inputs: Vec<ValueInfo>,
    pub outputs: Vec<ValueInfo>,
    pub opset: i64,
    pub producer: String,
    pub initializers: HashMap<String, Array>,
}

/// Whether the bytes look like an ONNX ModelProto: field 1 (ir_version, a small varint) first,
/// as every exporter writes it. Only a cheap test: `read_onnx` decides.
pub fn is_onnx(bytes: &[u8]) -> bool {
    bytes.len() > 16 && bytes[0] == 0x08 && (3..=20).contains(&bytes[1])
}

/// Reads an ONNX model from its bytes; `external` gives the bytes of a companion file by the
/// name the model's tensors point to (`location`), for weights stored outside the model.
pub fn read_onnx<'f>(bytes: &[u8], external: &dyn Fn(&str) -> Option<&'f [u8]>) -> Result<OnnxModel> {
    let model = ModelProto::decode(bytes)?;
    let graph = model.graph.ok_or_else(|| Error::weights("this ONNX file holds no graph"))?;
    let opset = model.opset_import.iter().find(|(domain, _)| domain.is_empty() || domain == "ai.onnx").map(|o| o.1).unwrap_or(0);
    if opset < *OPSETS.start() {
        return Err(Error::Model(format!(
            "this ONNX file uses opset {opset}; ConvLens reads opsets {} to {} (re-export with a newer opset_version)",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let mut initializers = HashMap::new();
    for t in &graph.initializer {
        initializers.insert(t.name.clone(), decode_tensor(t, external)?);
    }
    let producer = format!("{} {}", model.producer_name, model.producer_version).trim().to_string();
    Ok(OnnxModel { name: graph.name, nodes: graph.node, inputs: graph.input, outputs: graph.output, opset, producer, initializers })
}

/// The external-data file names a model's tensors point to (what must be given beside it).
pub fn external_files(bytes: &[u8]) -> Vec<String> {
    let Ok(model) = ModelProto::decode(bytes) else { return Vec::new() };
    let mut names: Vec<String> = model
        .graph
        .iter()
        .flat_map(|g| &g.initializer)
        .filter(|t| t.data_location == 1)
        .filter_map(|t| t.external_data.iter().find(|(key, _)| key == "location").map(|(_, value)| value.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One tensor's values as a host array.
pub fn decode_tensor<'f>(t: &TensorProto, external: &dyn Fn(&str) -> Option<&'f [u8]>) -> Result<Array> {
    let name = &t.name;
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::weights(format!("tensor '{name}' has a negative dimension {d}"))))
        .collect::<Result<Vec<usize>>>()?;
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| Error::weights(format!("tensor '{name}' is impossibly large")))?;
    let raw: Option<&[u8]> = if t.data_location == 1 {
        Some(external_slice(t, external)?)
    } else if !t.raw_data.is_empty() || count == 0 {
        Some(t.raw_data)
    } else {
        None
    };
    let width = match t.data_type {
        dtype::FLOAT | dtype::INT32 => 4,
        dtype::INT64 | dtype::DOUBLE => 8,
        dtype::FLOAT16 | dtype::BFLOAT16 => 2,
        dtype::UINT8 | dtype::INT8 | dtype::BOOL => 1,
        other => {
            return Err(Error::Model(format!("tensor '{name}' has ONNX element type {other}, which ConvLens does not read (f32, f16, bf16, f64 and integers)")))
        }
    };
    if let Some(raw) = raw {
        if raw.len() != count * width {
            return Err(Error::weights(format!("tensor '{name}' of shape {shape:?} has {} bytes, expected {} (a truncated file?)", raw.len(), count * width)));
        }
    }
    let floats = |v: Vec<f32>| -> Result<Array> {
        if v.len() != count {
            return Err(Error::weights(format!("tensor '{name}' of shape {shape:?} holds {} values", v.len())));
        }
        Ok(Array::Float(shape.clone(), v))
    };
    let ints = |v: Vec<i64>| -> Result<Array> {
        if v.len() != count {
            return Err(Error::weights(format!("tensor '{name}' of shape {shape:?} holds {} values", v.len())));
        }
        Ok(Array::Int(shape.clone(), v))
    };
    let chunks = |n: usize| raw.unwrap_or_default().chunks_exact(n);
    match (t.data_type, raw.is_some()) {
        (dtype::FLOAT, true) => floats(chunks(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        (dtype::FLOAT, false) => floats(t.float_data.iter().map(|&v| v as f32).collect()),
        (dtype::FLOAT16, true) => floats(chunks(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        (dtype::BFLOAT16, true) => floats(chunks(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect()),
        // f16/bf16 without raw bytes are stored as their bit patterns in int32_data.
        (dtype::FLOAT16, false) => floats(t.int32_data.iter().map(|&b| half::f16::from_bits(b as u16).to_f32()).collect()),
        (dtype::BFLOAT16, false) => floats(t.int32_data.iter().map(|&b| half::bf16::from_bits(b as u16).to_f32()).collect()),
        (dtype::DOUBLE, true) => floats(chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect()),
        (dtype::DOUBLE, false) => floats(t.double_data.iter().map(|&v| v as f32).collect()),
        (dtype::INT64, true) => ints(chunks(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect()),
        (dtype::INT64, false) => ints(t.int64_data.clone()),
        (dtype::INT32, true) => ints(chunks(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64).collect()),
        (dtype::UINT8 | dtype::BOOL, true) => ints(chunks(1).map(|b| b[0] as i64).collect()),
        (dtype::INT8, true) => ints(chunks(1).map(|b| b[0] as i8 as i64).collect()),
        (_, false) => ints(t.int32_data.clone()),
        _ => Err(Error::weights(format!("tensor '{name}': unreadable values"))),
    }
}

/// The bytes of a tensor stored in an external-data file.
fn external_slice<'f>(t: &TensorProto, external: &dyn Fn(&str) -> Option<&'f [u8]>) -> Result<&'f [u8]> {
    let field = |key: &str| t.external_data.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let location = field("location").ok_or_else(|| Error::weights(format!("tensor '{}' is stored outside the file but names no location", t.name)))?;
    let file = external(location)
        .ok_or_else(|| Error::weights(format!("this model keeps its weights in a separate file '{location}': give it together with the .onnx file")))?;
    let number = |key: &str| -> Result<Option<usize>> {
        field(key)
            .map(|v| v.parse::<usize>().map_err(|_| Error::weights(format!("tensor '{}': external-data {key} '{v}' is not a number", t.name))))
            .transpose()
    };
    let offset = number("offset")?.unwrap_or(0);
    let length = number("length")?.unwrap_or(file.len().saturating_sub(offset));
    offset.checked_add(length).and_then(|end| file.get(offset..end)).ok_or_else(|| {
        Error::weights(format!("tensor '{}' lies at bytes {offset}..+{length} of '{location}', which has {} bytes (truncated?)", t.name, file.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: i32, dims: Vec<i64>, raw: &[u8]) -> TensorProto<'_> {
        TensorProto { name: "t".into(), data_type, dims, raw_data: raw, ..Default::default() }
    }

    #[test]
    fn raw_floats_and_ints_decode() {
        let none = |_: &str| -> Option<&[u8]> { None };
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode_tensor(&tensor(dtype::FLOAT, vec![2], &bytes), &none).unwrap(), Array::Float(vec![2], vec![1.5, -2.0]));
        let bytes = (-1i64).to_le_bytes();
        assert_eq!(decode_tensor(&tensor(dtype::INT64, vec![1], &bytes), &none).unwrap(), Array::Int(vec![1], vec![-1]));
        let short = tensor(dtype::FLOAT, vec![3], &[0; 8]);
        assert!(decode_tensor(&short, &none).unwrap_err().to_string().contains("expected 12"));
    }

    #[test]
    fn external_data_is_found_by_location_and_bounds_checked() {
        let mut t = tensor(dtype::FLOAT, vec![1], &[]);
        t.data_location = 1;
        t.external_data = [("location", "w.bin"), ("offset", "4"), ("length", "4")].map(|(k, v)| (k.to_string(), v.to_string())).to_vec();
        let file: Vec<u8> = [0f32, 3.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let given = |n: &str| (n == "w.bin").then_some(file.as_slice());
        assert_eq!(decode_tensor(&t, &given).unwrap(), Array::Float(vec![1], vec![3.0]));
        let missing = decode_tensor(&t, &|_| None).unwrap_err().to_string();
        assert!(missing.contains("w.bin") && missing.contains("together"), "{missing}");
        let short = &file[..6];
        assert!(decode_tensor(&t, &|_| Some(short)).is_err());
    }

    #[test]
    fn the_wire_reader_refuses_cut_messages() {
        // A ModelProto with producer_name "ab" (field 2), cut inside the string.
        assert!(ModelProto::decode(&[0x12, 0x02, b'a', b'b']).is_ok());
        assert!(ModelProto::decode(&[0x12, 0x05, b'a']).is_err());
        assert!(ModelProto::decode(&[0x08, 0xff, 0xff]).is_err());
    }
}
