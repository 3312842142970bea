//! The one error type of the ConvLens core. Messages say what was wrong and what to do.

use thiserror::Error;

/// Everything the core can fail with. Each message is one line, fit to show a user as is.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are not an image we can decode, or the image is unusable.
    #[error("cannot read the image: {0}")]
    Image(String),
    /// A weights file is malformed, truncated, of another model or of an unknown format.
    #[error("cannot use these weights: {0}")]
    Weights(String),
    /// A model architecture ConvLens cannot run (an unsupported layer or option).
    #[error("cannot use this model: {0}")]
    Model(String),
    /// A model name that ConvLens does not know.
    #[error("unknown model {0}")]
    UnknownModel(String),
    /// A layer name that the model does not have, or a layer of the wrong kind.
    #[error("{0}")]
    Layer(String),
    /// An option outside its valid range (filter index, step count, class index, ...).
    #[error("invalid option: {0}")]
    Invalid(String),
    /// The compute backend failed (device lost, out of memory, readback failure).
    #[error("compute backend failed: {0}")]
    Backend(String),
    /// The work was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// A file could not be read or written (native only).
    #[error("{0}")]
    Io(String),
}

/// Shorthand used across the core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn weights(msg: impl Into<String>) -> Self {
        Error::Weights(msg.into())
    }
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
