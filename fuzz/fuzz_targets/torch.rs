#![no_main]
//! PyTorch checkpoints: zip (`torch.save`) and legacy pickle `.pth`.
use convlens_fuzz::formats::torch::read_torch;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tensors) = read_torch(data) {
        convlens_fuzz::check_tensors(&tensors);
    }
});
