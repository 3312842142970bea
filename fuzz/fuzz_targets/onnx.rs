#![no_main]
//! ONNX files: the protobuf messages and every tensor's values (inline and external data).
use convlens_fuzz::formats::onnx::{external_files, read_onnx, Array};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The second half of the input stands in for an external-data file.
    let external = &data[data.len() / 2..];
    let _ = external_files(data);
    if let Ok(model) = read_onnx(data, &|_| Some(external)) {
        for array in model.initializers.values() {
            let count = array.shape().iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            assert_eq!(count, Some(array.len()), "shape {:?} with {} values", array.shape(), array.len());
            if let Array::Float(_, v) = array {
                let _ = v.iter().sum::<f32>();
            }
        }
    }
});
