//! ONNX models read from the file alone: each fixture of tests/fixtures/onnx/ (small seeded
//! PyTorch convnets exported by both torch.onnx exporters, made by make_onnx_fixtures.py) must
//! match onnxruntime's outputs to 1e-4, PyTorch's per-channel layer means to 1e-3 relative, and
//! PyTorch autograd's Grad-CAM maps at correlation ≥ 0.999. Bad files give clear errors.

mod common;
use common::{channel_means_error, correlation, floats};
use convlens::backend::{read_f32, Backend};
use convlens::open::{open, OpenOptions};
use convlens::picture::{decode, to_pixels};
use convlens::viz::gradcam::{class_activation_map, CamMethod, Score};
use convlens::Network;
use serde_json::Value;

fn dir() -> String {
    format!("{}/tests/fixtures/onnx", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}", dir())).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn open_with(bytes: &[u8], options: &OpenOptions) -> Result<Network, String> {
    open(bytes, options, &Backend::Cpu.device().unwrap()).map_err(|e| e.to_string())
}

/// The model of a reference, with its external-data file when it has one.
fn open_fixture(gold: &Value) -> Result<Network, String> {
    let mut options = OpenOptions::default();
    if let Some(p) = gold["preprocessing"].as_str() {
        options.preprocessing = Some(convlens::preprocess::Preprocessing::parse(p).unwrap());
    }
    if let Some(data) = gold["external_data"].as_str() {
        options.companions.push((data.to_string(), read(data)));
    }
    open_with(&read(gold["model_file"].as_str().unwrap()), &options)
}

fn references() -> Vec<Value> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".json")).collect();
    names.sort();
    let refs: Vec<Value> = names.iter().map(|n| serde_json::from_slice(&read(n)).unwrap()).collect();
    assert!(refs.len() >= 7, "expected the fixture models in {}", dir());
    refs
}

#[test]
fn onnx_models_match_onnxruntime_and_pytorch() {
    let mut exporters = std::collections::BTreeSet::new();
    for gold in references() {
        let file = gold["model_file"].as_str().unwrap();
        let net = open_fixture(&gold).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(net.from_file, "{file}: read from its own graph");
        let hw: Vec<usize> = floats(&gold["input_hw"]).iter().map(|&v| v as usize).collect();
        assert_eq!(net.input_hw().to_vec(), hw, "{file}: input size from the graph");
        let photo = decode(&read(gold["input"].as_str().unwrap())).unwrap();
        let pixels = to_pixels(std::slice::from_ref(&photo), net.device()).unwrap();

        // Outputs: onnxruntime's, in ConvLens's reading of the head.
        let logits = net.forward(pixels.clone()).unwrap();
        let ours = if gold["head"] == "softmax" {
            pollster::block_on(read_f32(net.probabilities(logits))).unwrap()
        } else {
            pollster::block_on(read_f32(logits)).unwrap()
        };
        let theirs = floats(&gold["output"]);
        let out_err = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(ours.len() == theirs.len() && out_err < 1e-4, "{file}: outputs differ by {out_err}: ours {ours:?}, onnxruntime {theirs:?}");

        // Per-channel means of every conv PyTorch taps, by the ONNX node's name.
        let layers = gold["layers"].as_array().unwrap();
        let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
        let outputs = net.forward_many(pixels, &names).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut worst_layer = 0f32;
        for (layer, out) in layers.iter().zip(outputs) {
            let shape: Vec<usize> = floats(&layer["shape"]).iter().map(|&v| v as usize).collect();
            assert_eq!(net.layer(layer["name"].as_str().unwrap()).unwrap().shape.to_vec(), shape, "{file}: {}'s shape", layer["name"]);
            let err = channel_means_error(&pollster::block_on(read_f32(out)).unwrap(), shape[0], &floats(&layer["channel_means"]));
            assert!(err < 1e-3, "{file}: layer {}: channel means differ by {err} (relative)", layer["name"]);
            worst_layer = worst_layer.max(err);
        }

        // Grad-CAM of the logit, against PyTorch autograd.
        let mut worst_cam = 1f32;
        for cam in gold["gradcam"].as_array().unwrap() {
            let (layer, class) = (cam["layer"].as_str().unwrap(), cam["class"].as_u64().unwrap() as usize);
            let ours = pollster::block_on(class_activation_map(&net, &photo, layer, Some(class), CamMethod::GradCam, Score::Logit)).unwrap();
            let r = correlation(&ours.map, &floats(&cam["map"]));
            assert!(r >= 0.999, "{file}: Grad-CAM at {layer} for class {class}: correlation {r}");
            worst_cam = worst_cam.min(r);
        }
        exporters.insert(format!("{}@{}", gold["exporter"].as_str().unwrap(), gold["opset"]));
        eprintln!(
            "{file}: {} layers, outputs ±{out_err:.1e}, layer means ±{worst_layer:.1e} (relative), Grad-CAM correlation ≥ {worst_cam:.6}",
            net.layers().len()
        );
    }
    assert!(exporters.len() >= 4, "both exporters at several opsets: {exporters:?}");
}

#[test]
fn default_cam_layer_is_the_last_map_before_pooling() {
    let gold: Value = serde_json::from_slice(&read("zoo_ts17.json")).unwrap();
    let net = open_fixture(&gold).unwrap();
    // Zoo ends conv → add → relu → global pooling: the ReLU's map is what Grad-CAM looks at.
    assert_eq!(net.default_cam_layer(), "/Relu_1");
    assert!(net.layers().iter().any(|l| l.name == "/last/Conv"));
}

fn assert_error(result: Result<Network, String>, needles: &[&str]) -> String {
    let err = match result {
        Ok(_) => panic!("should be refused"),
        Err(e) => e,
    };
    assert!(needles.iter().all(|n| err.contains(n)), "expected {needles:?} in: {err}");
    assert!(!err.contains('\n') && !err.contains("panicked"), "one line: {err}");
    err
}

#[test]
fn bad_onnx_files_give_clear_errors() {
    let none = OpenOptions::default();
    // An op ConvLens does not run: named with its node and the supported list.
    assert_error(open_with(&read("bad_unsupported_op.onnx"), &none), &["Resize", "node '", "BatchNormalization", "README"]);
    // Truncated files, at several cuts.
    let bytes = read("zoo_ts17.onnx");
    for cut in [20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 7] {
        assert_error(open_with(&bytes[..cut], &none), &[]);
    }
    // External weights missing, or cut short.
    let external: Value = serde_json::from_slice(&read("view_dynamo21_external.json")).unwrap();
    let model = read(external["model_file"].as_str().unwrap());
    let data_name = external["external_data"].as_str().unwrap();
    assert_error(open_with(&model, &none), &[data_name, "together"]);
    let mut short = none.clone();
    let data = read(data_name);
    short.companions.push((data_name.to_string(), data[..data.len() - 100].to_vec()));
    assert_error(open_with(&model, &short), &["truncated"]);
    // Forced to be a built-in's weights.
    let as_vgg = OpenOptions { model: Some("vgg16".into()), ..Default::default() };
    assert_error(open_with(&bytes, &as_vgg), &["own architecture"]);
}

/// Every single-byte corruption at a spread of offsets: each opens or is refused; none panics.
#[test]
fn corrupted_onnx_bytes_never_panic() {
    let bytes = read("view_ts17.onnx");
    let step = (bytes.len() / 400).max(1);
    for at in (0..bytes.len()).step_by(step) {
        for value in [0x00u8, 0xff, 0x7f] {
            let mut b = bytes.clone();
            b[at] = value;
            let _ = std::panic::catch_unwind(|| open_with(&b, &OpenOptions::default())).unwrap_or_else(|_| panic!("a panic with byte {at} set to {value:#x}"));
        }
    }
}

/// The CLI takes `--weights model.onnx` alone, and finds the external-data file beside it.
#[test]
fn cli_runs_an_onnx_model_from_the_file_alone() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_convlens")).args(args).args(["--backend", "cpu"]).env("CONVLENS_QUIET", "1").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let gold: Value = serde_json::from_slice(&read("view_dynamo21_external.json")).unwrap();
    let model = format!("{}/{}", dir(), gold["model_file"].as_str().unwrap());
    let photo = format!("{}/{}", dir(), gold["input"].as_str().unwrap());
    let (ok, out, err) = run(&["predict", "--weights", &model, &photo, "--json", "--top", "5"]);
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let logits = floats(&gold["output"]);
    let top = logits.iter().enumerate().fold(0, |b, (i, v)| if *v > logits[b] { i } else { b });
    assert_eq!(rows[0]["index"].as_u64().unwrap() as usize, top, "{out}");
    let (ok, out, err) = run(&["gradcam", "--weights", &model, &photo, "--json", "--layer", "node_conv2d_3"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["layer"], "node_conv2d_3");
    let (ok, out, _) = run(&["layers", "--weights", &model]);
    assert!(ok && out.contains("node_conv2d_3") && out.contains("36×52") && out.contains("torch"), "{out}");
    let (ok, _, err) = run(&["layers", "--weights", &format!("{}/bad_unsupported_op.onnx", dir())]);
    assert!(!ok && err.contains("Resize") && !err.contains("panicked"), "{err}");
}
