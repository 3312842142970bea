//! ConvLens's readers (`src/formats`) and the two modules they use, compiled alone for fuzzing.
//! Every reader must return `Ok` or `Err` on any bytes: in the browser a panic is a trap that
//! kills the engine, so a fuzz-found panic is a bug even where native code would catch it.

#[path = "../../src/error.rs"]
pub mod error;
#[path = "../../src/formats/mod.rs"]
pub mod formats;
#[path = "../../src/preprocess.rs"]
pub mod preprocess;

pub use error::{Error, Result};

use formats::raw::RawTensor;

/// What every successful read must satisfy: each tensor's values fill its shape.
pub fn check_tensors(tensors: &[RawTensor]) {
    for t in tensors {
        let numel = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        assert_eq!(numel, Some(t.data.len()), "{}: shape {:?} with {} values", t.name, t.shape, t.data.len());
    }
}
