#![no_main]
//! Keras 3 `.keras` archives (ZIP of config.json, metadata.json, model.weights.h5).
use convlens_fuzz::formats::keras_zip::{read_keras_zip, KerasWeights};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = read_keras_zip(data) {
        if let KerasWeights::ByPath(tensors) = &model.weights {
            convlens_fuzz::check_tensors(tensors);
        }
    }
});
