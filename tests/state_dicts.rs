//! Known state-dict layouts map onto the built-in graphs, and tampered weights are refused.
//! timm's `vgg16.tv_in1k` layout is made here from the torchvision fixture (same numbers, timm's
//! names and shapes: `pre_logits.fc1` a 7×7 conv, `pre_logits.fc2` a 1×1 conv, `head.fc`), so the
//! two must give the same logits.

use convlens::backend::{read_f32, Backend};
use convlens::formats::{read, Contents};
use convlens::open::{open, OpenOptions};
use convlens::picture::{decode, to_pixels};
use convlens::Network;
use safetensors::tensor::{Dtype, TensorView};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn logits(net: &Network) -> Vec<f32> {
    let photo = decode(&fixture("cat_224.png")).unwrap();
    pollster::block_on(read_f32(net.forward(to_pixels(&[photo], net.device()).unwrap()).unwrap())).unwrap()
}

fn cpu() -> burn::tensor::Device {
    Backend::Cpu.device().unwrap()
}

/// Writes `tensors` (name, shape, values) as an f32 safetensors file without our metadata.
fn safetensors_file(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|(n, s, v)| (n.clone(), s.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect())).collect();
    let views: Vec<(&str, TensorView)> = bytes.iter().map(|(n, s, b)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).unwrap())).collect();
    safetensors::serialize(views, &None).unwrap()
}

#[test]
fn timm_vgg16_layout_equals_torchvision() {
    let torchvision = fixture("vgg16_tiny_torchvision.safetensors");
    let Contents::StateDict(tensors) = read(&torchvision).unwrap() else { panic!("a state dict") };
    let renamed: Vec<(String, Vec<usize>, Vec<f32>)> = tensors
        .iter()
        .map(|t| {
            let (name, shape) = match t.name.split_once('.') {
                Some(("classifier", rest)) => {
                    let (index, field) = rest.split_once('.').unwrap();
                    let timm = match index {
                        "0" => "pre_logits.fc1",
                        "3" => "pre_logits.fc2",
                        _ => "head.fc",
                    };
                    let shape = match (index, field, &t.shape[..]) {
                        ("0", "weight", [out, inputs]) => vec![*out, inputs / 49, 7, 7],
                        ("3", "weight", [out, inputs]) => vec![*out, *inputs, 1, 1],
                        _ => t.shape.clone(),
                    };
                    (format!("{timm}.{field}"), shape)
                }
                _ => (t.name.clone(), t.shape.clone()),
            };
            (name, shape, t.data.clone())
        })
        .collect();
    assert!(renamed.iter().any(|t| t.0 == "pre_logits.fc1.weight" && t.1.len() == 4));
    let timm = open(&safetensors_file(&renamed), &OpenOptions::default(), &cpu()).unwrap();
    let tv = open(&torchvision, &OpenOptions::default(), &cpu()).unwrap();
    assert_eq!((timm.name.as_str(), timm.origin.as_str()), ("vgg16", "timm"));
    let (a, b) = (logits(&timm), logits(&tv));
    let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(err < 1e-5, "timm and torchvision layouts differ by {err}");
}

#[test]
fn non_finite_weights_are_refused_with_the_tensor_name() {
    let Contents::StateDict(mut tensors) = read(&fixture("vgg16_tiny_torchvision.safetensors")).unwrap() else { panic!("a state dict") };
    let t = tensors.iter_mut().find(|t| t.name == "features.2.weight").unwrap();
    t.data[5] = f32::NAN;
    let file: Vec<(String, Vec<usize>, Vec<f32>)> = tensors.iter().map(|t| (t.name.clone(), t.shape.clone(), t.data.clone())).collect();
    let err = open(&safetensors_file(&file), &OpenOptions::default(), &cpu()).err().expect("refused").to_string();
    assert!(err.contains("non-finite") && err.contains("block1_conv2"), "{err}");
}

#[test]
fn preprocessing_and_labels_can_be_chosen() {
    let options = OpenOptions { preprocessing: Some(convlens::preprocess::Preprocessing::Caffe), ..Default::default() };
    let net = open(&fixture("vgg16_tiny_torchvision.safetensors"), &options, &cpu()).unwrap();
    assert_eq!(net.preprocessing.name(), "caffe");
    let too_few = OpenOptions { labels: Some(vec!["a".into(), "b".into()]), ..Default::default() };
    let err = open(&fixture("vgg16_tiny_torchvision.safetensors"), &too_few, &cpu()).err().expect("refused").to_string();
    assert!(err.contains("2 class names") && err.contains("1000 classes"), "{err}");
}
