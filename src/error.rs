//! The one error type of the ConvLens core. Messages say what was wrong and what to do; where a
//! library's error is the cause it is kept as the `source` (and named at the end of the message, so
//! the one line a user sees still says it).

use thiserror::Error;

/// A lower-level error that caused one of ours (a decoder's, an archive's, a parser's).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything the core can fail with. Each message is one line, fit to show a user as is.
#[derive(Debug, Error)]
pub enum Error {
    /// The bytes are not an image we can decode, or the image is unusable.
    #[error("cannot read the image: {message}{}", Because(source))]
    Image { message: String, source: Option<Cause> },
    /// A weights file is malformed, truncated, of another model or of an unknown format.
    #[error("cannot use these weights: {message}{}", Because(source))]
    Weights { message: String, source: Option<Cause> },
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
}

/// Shorthand used across the core.
pub type Result<T> = std::result::Result<T, Error>;

/// " (the cause)" after a message, or nothing.
struct Because<'a>(&'a Option<Cause>);

impl std::fmt::Display for Because<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(cause) => write!(f, " ({})", cause.to_string().replace(['\n', '\r'], " ")),
            None => Ok(()),
        }
    }
}

impl Error {
    pub(crate) fn weights(message: impl Into<String>) -> Self {
        Error::Weights { message: message.into(), source: None }
    }
    /// Weights refused because a reader (JSON, ZIP, safetensors…) failed.
    pub(crate) fn weights_from(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Weights { message: message.into(), source: Some(cause.into()) }
    }
    pub(crate) fn image(message: impl Into<String>) -> Self {
        Error::Image { message: message.into(), source: None }
    }
    /// An image refused because the decoder or encoder failed.
    pub(crate) fn image_from(message: impl Into<String>, cause: impl Into<Cause>) -> Self {
        Error::Image { message: message.into(), source: Some(cause.into()) }
    }
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::Invalid(message.into())
    }

    /// The same error said of a part: "`context`: message" (weights and options; others as they are).
    pub(crate) fn within(self, context: &str) -> Self {
        match self {
            Error::Weights { message, source } => Error::Weights { message: format!("{context}: {message}"), source },
            Error::Invalid(message) => Error::Invalid(format!("{context}: {message}")),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_kept_and_named() {
        let cause = serde_json::from_str::<Vec<String>>("[1").unwrap_err();
        let e = Error::weights_from("the metadata's labels are not a JSON list of strings", cause);
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().starts_with("cannot use these weights: the metadata's labels are not a JSON list of strings ("), "{e}");
    }
}
