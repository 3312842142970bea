#![no_main]
//! Keras `.h5` files: weights-only and whole-model (with `model_config`).
use convlens_fuzz::formats::keras_h5::{read_all_datasets, read_keras_h5_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = read_keras_h5_file(data) {
        for layer in &file.layers {
            convlens_fuzz::check_tensors(&layer.weights);
        }
    }
    if let Ok(tensors) = read_all_datasets(data) {
        convlens_fuzz::check_tensors(&tensors);
    }
});
