//! A tensor as read from a foreign checkpoint: a name, a shape in the file's own layout, f32 values.
//! Importers produce these; the per-model key maps turn them into ConvLens tensors.

/// A tensor on the host in ConvLens's layout, as networks are built from it: shape, values.
pub type HostTensor = (Vec<usize>, Vec<f32>);

/// One named array from a checkpoint, in the layout the file stores it (Keras HWIO, torch OIHW, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl RawTensor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { name: name.into(), shape, data }
    }
}
