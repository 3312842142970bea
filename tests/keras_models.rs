//! Keras models read from their own architecture: each fixture model of tests/fixtures/keras/
//! (made by make_keras_fixtures.py with Keras 3 on the torch backend), saved as `.keras` and as
//! `.h5`, is opened from the file alone and must match Keras: outputs to 1e-4, per-channel layer
//! means to 1e-3 relative, Grad-CAM maps at correlation ≥ 0.999. Bad files give clear errors.

mod common;
use common::{channel_means_error, correlation, floats};
use convlens::backend::{read_f32, Backend};
use convlens::open::{open, OpenOptions};
use convlens::picture::{decode, to_pixels};
use convlens::viz::gradcam::{class_activation_map, CamMethod, Score};
use convlens::Network;
use serde_json::Value;

fn dir() -> String {
    format!("{}/tests/fixtures/keras", env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/{name}", dir())).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn open_file(name: &str) -> Result<Network, String> {
    open(&read(name), &OpenOptions::default(), &Backend::Cpu.device().unwrap()).map_err(|e| e.to_string())
}

/// The reference JSON files, one per model.
fn references() -> Vec<Value> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir()).unwrap().filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.ends_with(".json")).collect();
    names.sort();
    let refs: Vec<Value> = names.iter().map(|n| serde_json::from_slice(&read(n)).unwrap()).filter(|v: &Value| v.get("model_file_keras").is_some()).collect();
    assert!(refs.len() >= 3, "expected the fixture models in {}", dir());
    refs
}

/// Compares one opened network with Keras's numbers; returns (output error, worst layer error,
/// worst Grad-CAM correlation).
fn check(net: &Network, gold: &Value) -> (f32, f32, f32) {
    let hw: Vec<usize> = gold["input_hw"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(net.input_hw().to_vec(), hw, "input size from the file");
    let photo = decode(&read(gold["input"].as_str().unwrap())).unwrap();
    let pixels = to_pixels(std::slice::from_ref(&photo), net.device()).unwrap();

    // Outputs: what model.predict gives, in ConvLens's reading of the head.
    let logits = net.forward(pixels.clone()).unwrap();
    let probs = pollster::block_on(read_f32(net.probabilities(logits.clone()))).unwrap();
    let logits = pollster::block_on(read_f32(logits)).unwrap();
    let output = floats(&gold["output"]);
    let (ours, theirs): (Vec<f32>, Vec<f32>) = match gold["head"].as_str().unwrap() {
        "sigmoid" => (vec![probs[1], 2.0 * logits[1]], vec![output[0], floats(&gold["logits"])[0]]),
        "softmax" => (probs.clone(), output.clone()),
        _ => (logits.clone(), output.clone()),
    };
    let out_err = ours.iter().zip(&theirs).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(out_err < 1e-4, "{}: outputs differ by {out_err}: ours {ours:?}, Keras {theirs:?}", gold["model_file_keras"]);

    // Every 4-D layer's per-channel means.
    let mut worst_layer = 0f32;
    let layers = gold["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).filter(|n| net.layer(n).is_ok()).collect();
    assert!(names.len() * 2 >= layers.len(), "most of Keras's layers are ConvLens layers too ({} of {})", names.len(), layers.len());
    let outputs = net.forward_many(pixels, &names).unwrap();
    for (name, out) in names.iter().zip(outputs) {
        let gold_layer = layers.iter().find(|l| l["name"] == *name).unwrap();
        let shape: Vec<usize> = gold_layer["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
        assert_eq!(net.layer(name).unwrap().shape.to_vec(), shape, "layer {name}'s shape");
        let err = channel_means_error(&pollster::block_on(read_f32(out)).unwrap(), shape[0], &floats(&gold_layer["channel_means"]));
        assert!(err < 1e-3, "layer {name}: channel means differ by {err} (relative)");
        worst_layer = worst_layer.max(err);
    }

    // Grad-CAM of the logit, at the layers and classes Keras's reference used.
    let mut worst_cam = 1f32;
    for cam in gold["gradcam"].as_array().unwrap() {
        let (layer, class) = (cam["layer"].as_str().unwrap(), cam["class"].as_u64().unwrap() as usize);
        let ours = pollster::block_on(class_activation_map(net, &photo, layer, Some(class), CamMethod::GradCam, Score::Logit)).unwrap();
        let r = correlation(&ours.map, &floats(&cam["map"]));
        assert!(r >= 0.999, "{}: Grad-CAM at {layer} for class {class}: correlation {r}", gold["model_file_keras"]);
        worst_cam = worst_cam.min(r);
    }
    (out_err, worst_layer, worst_cam)
}

#[test]
fn keras_models_match_keras_from_keras_and_h5_files() {
    for gold in references() {
        for key in ["model_file_keras", "model_file_h5"] {
            let file = gold[key].as_str().unwrap();
            let net = open_file(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(net.from_file, "{file}: read from its own architecture");
            let (o, l, c) = check(&net, &gold);
            eprintln!("{file}: {} layers, outputs ±{o:.1e}, layer means ±{l:.1e} (relative), Grad-CAM correlation ≥ {c:.6}", net.layers().len());
        }
    }
}

#[test]
fn default_cam_layer_is_the_last_spatial_layer() {
    for gold in references() {
        let net = open_file(gold["model_file_keras"].as_str().unwrap()).unwrap();
        let last = net.layers().iter().rev().find(|l| l.has_map()).unwrap();
        assert_eq!(net.default_cam_layer(), last.name);
    }
}

fn assert_error(file: &str, needles: &[&str]) {
    let err = match open_file(file) {
        Ok(_) => panic!("{file} should be refused"),
        Err(e) => e,
    };
    assert!(needles.iter().any(|n| err.contains(n)), "{file}: expected one of {needles:?} in: {err}");
    assert!(!err.contains('\n'), "{file}: one line: {err}");
}

#[test]
fn bad_keras_files_give_clear_errors() {
    assert_error("bad_unsupported_layer.keras", &["Conv2DTranspose", "UpSampling2D"]);
    assert_error("bad_unsupported_layer.keras", &["supported layers"]);
    assert_error("bad_no_weights.keras", &["model.weights.h5"]);
    assert_error("bad_nan_weights.keras", &["non-finite"]);
    assert_error("bad_shape_mismatch.keras", &["filters", "channels", "shape", "expects"]);
    // A truncated archive.
    let bytes = read(references()[0]["model_file_keras"].as_str().unwrap());
    let err =
        open(&bytes[..bytes.len() / 2], &OpenOptions::default(), &Backend::Cpu.device().unwrap()).err().expect("a truncated .keras is refused").to_string();
    assert!(!err.is_empty() && !err.contains('\n'), "{err}");
}

/// The CLI takes `--weights FILE` alone for a file that carries its architecture.
#[test]
fn cli_runs_a_keras_model_from_the_file_alone() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_convlens")).args(args).args(["--backend", "cpu"]).env("CONVLENS_QUIET", "1").output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let model = format!("{}/seq_aug_128.keras", dir());
    let photo = format!("{}/seq_aug_128_input.png", dir());
    let (ok, out, err) = run(&["predict", "--weights", &model, &photo, "--json"]);
    assert!(ok, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let gold: Value = serde_json::from_slice(&read("seq_aug_128.json")).unwrap();
    let p_dog = rows.as_array().unwrap().iter().find(|r| r["index"] == 1).unwrap()["prob"].as_f64().unwrap();
    assert!((p_dog - gold["output"][0].as_f64().unwrap()).abs() < 1e-4, "{out}");
    let (ok, out, err) = run(&["gradcam", "--weights", &model, &photo, "--json"]);
    assert!(ok, "{err}");
    let cam: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(cam["layer"], "conv_swish", "the default layer is the last one with a map");
    let (ok, out, _) = run(&["layers", "--weights", &model]);
    assert!(ok && out.contains("stem") && out.contains("128×128"), "{out}");
    let (ok, _, err) = run(&["layers", "--weights", &format!("{}/bad_unsupported_layer.keras", dir())]);
    assert!(!ok && err.contains("Conv2DTranspose") && !err.contains("panicked"), "{err}");
}

/// Forged architectures: hundreds of single-value mutations of the fixtures' configs (sizes made
/// zero, negative, huge or strings; lists emptied; keys nulled). Each must build and run, or be
/// refused with an error; none may panic (in the browser a panic kills the engine).
#[test]
fn mutated_keras_configs_never_panic() {
    use convlens::formats::keras_zip::read_keras_zip;
    use convlens::graph::keras::build;
    use convlens::network::ModelInfo;
    use convlens::preprocess::Preprocessing;

    fn leaves(v: &Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, v)| {
                path.push(k.clone());
                leaves(v, path, out);
                path.pop();
            }),
            Value::Array(a) => {
                out.push(path.clone());
                a.iter().enumerate().for_each(|(i, v)| {
                    path.push(i.to_string());
                    leaves(v, path, out);
                    path.pop();
                })
            }
            _ => out.push(path.clone()),
        }
    }
    fn at<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
        path.iter().fold(v, |v, k| match v {
            Value::Array(a) => &mut a[k.parse::<usize>().unwrap()],
            other => &mut other[k.as_str()],
        })
    }
    let replacements = [
        serde_json::json!(0),
        serde_json::json!(-1),
        serde_json::json!(1e9),
        serde_json::json!(70000),
        serde_json::json!("x"),
        Value::Null,
        serde_json::json!([]),
        serde_json::json!([0, 0]),
    ];
    let device = Backend::Cpu.device().unwrap();
    let (mut built, mut refused) = (0, 0);
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for gold in references() {
        let model = read_keras_zip(&read(gold["model_file_keras"].as_str().unwrap())).unwrap();
        let mut paths = Vec::new();
        leaves(&model.config, &mut Vec::new(), &mut paths);
        for _ in 0..150 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let path = &paths[(seed >> 33) as usize % paths.len()];
            let mut forged = model.clone();
            *at(&mut forged.config, path) = replacements[(seed >> 20) as usize % replacements.len()].clone();
            let info = ModelInfo {
                name: "forged".into(),
                title: "forged".into(),
                from_file: true,
                preprocessing: Preprocessing::Raw,
                labels: vec![],
                origin: String::new(),
                default_cam_layer: None,
                default_filter_layer: None,
            };
            match build(forged, [64, 64], &device).and_then(|g| Network::new(g.graph, info, &device)) {
                Ok(net) => {
                    let [h, w] = net.input_hw();
                    let pixels = burn::tensor::Tensor::<4>::zeros([1, 3, h, w], &device);
                    pollster::block_on(read_f32(net.forward(pixels).unwrap())).unwrap();
                    built += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
            }
        }
    }
    eprintln!("mutated configs: {built} built and ran, {refused} refused");
    assert!(built > 0 && refused > 0);
}

/// The book's convnet saved by Keras 2 (`model_config` in Keras 2's format) and by Keras 3, read
/// from its own architecture, computes what the built-in small-convnet computes on its weights.
/// The book rescales in its data generator, not in the model, so the file's own reading needs
/// `0..1` preprocessing given (the page's preprocessing menu, the CLI's `--preprocess 0..1`).
#[test]
fn keras_2_and_3_h5_architectures_equal_the_builtin() {
    let device = Backend::Cpu.device().unwrap();
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_150.png", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
    for file in ["small_convnet_tiny_keras2.h5", "small_convnet_tiny_keras3.h5"] {
        let bytes = std::fs::read(format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let unit = Some(convlens::preprocess::Preprocessing::parse("0..1").unwrap());
        let own = open(&bytes, &OpenOptions { preprocessing: unit, ..Default::default() }, &device).unwrap();
        let builtin = open(&bytes, &OpenOptions { model: Some("small-convnet".into()), ..Default::default() }, &device).unwrap();
        assert!(own.from_file && !builtin.from_file, "{file}");
        assert_eq!((own.input_hw(), own.labels.len(), builtin.labels[1].as_str()), ([150, 150], 2, "dog"));
        let logits =
            |net: &Network| pollster::block_on(read_f32(net.forward(to_pixels(std::slice::from_ref(&photo), net.device()).unwrap()).unwrap())).unwrap();
        let (a, b) = (logits(&own), logits(&builtin));
        let err = a.iter().zip(&b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(err < 1e-5, "{file}: own architecture {a:?} vs built-in {b:?}");
    }
}
