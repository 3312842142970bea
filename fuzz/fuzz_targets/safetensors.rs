#![no_main]
//! ConvLens `.safetensors` and foreign (state dict) safetensors, through the format dispatcher.
use convlens_fuzz::formats::{read, Contents, WeightSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = WeightSet::from_safetensors(data) {
        for name in set.names() {
            let (shape, values) = set.values(name).expect("listed");
            assert_eq!(shape.iter().product::<usize>(), values.len());
        }
    }
    if let Ok(Contents::StateDict(tensors)) = read(data) {
        convlens_fuzz::check_tensors(&tensors);
    }
});
