//! Golden tests: ConvLens against PyTorch, Keras (torch backend) and pytorch-grad-cam, on numbers
//! stored in tests/fixtures/golden_*.json by tests/fixtures/make_fixtures.py. Runs on the flex CPU
//! backend; no Python needed.

mod common;
use common::{correlation, floats, lite0, lite0_weights};
use convlens::backend::{read_f32, Backend};
use convlens::formats::WeightSet;
use convlens::network::Network;
use convlens::open::import;
use convlens::picture::{decode, to_pixels};
use convlens::viz::gradcam::{class_activation_map, CamMethod, Score};
use convlens::viz::guided::guided_gradient;
use serde_json::Value;

fn root() -> String {
    env!("CARGO_MANIFEST_DIR").to_string()
}

fn golden(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/tests/fixtures/{name}", root())).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Largest difference relative to the reference's largest magnitude (at least 1e-6).
fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    assert_eq!(ours.len(), reference.len(), "length mismatch");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    ours.iter().zip(reference).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn network(weights: &WeightSet) -> Network {
    Network::from_weights(weights.clone(), &Backend::Cpu.device().unwrap()).unwrap()
}

/// Logits and every layer's statistics within 1e-3 relative of the reference. Returns the worst
/// errors seen (logits, layers) for the report.
fn check_forward(net: &Network, gold: &Value) -> (f32, f32) {
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/{}", root(), gold["input"].as_str().unwrap())).unwrap()).unwrap();
    assert_eq!(photo.width() as usize, net.input_hw()[1], "the fixture photo is already at the input size");
    let pixels = to_pixels(&[photo], net.device()).unwrap();
    let layers: Vec<&str> = gold["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    let outputs = net.forward_many(pixels.clone(), &layers).unwrap();
    let mut worst_layer = 0f32;
    for (layer, out) in gold["layers"].as_array().unwrap().iter().zip(outputs) {
        let name = layer["name"].as_str().unwrap();
        let values = pollster::block_on(read_f32(out)).unwrap();
        let channels = net.layer(name).unwrap().shape[0];
        let per = values.len() / channels;
        let means: Vec<f32> = values.chunks(per).map(|c| c.iter().sum::<f32>() / per as f32).collect();
        let n = values.len() as f32;
        let mean = values.iter().sum::<f32>() / n;
        let std = (values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
        let max = values.iter().copied().fold(f32::MIN, f32::max);
        let zeros = values.iter().filter(|v| **v == 0.0).count() as f32 / n;
        let e_means = relative_error(&means, &floats(&layer["channel_means"]));
        let e_stats = relative_error(
            &[mean, std, max],
            &[layer["mean"].as_f64().unwrap() as f32, layer["std"].as_f64().unwrap() as f32, layer["max"].as_f64().unwrap() as f32],
        );
        assert!(e_means < 1e-3 && e_stats < 1e-3, "{name}: channel means off by {e_means:.2e}, mean/std/max by {e_stats:.2e} (relative)");
        assert!((zeros - layer["zero_fraction"].as_f64().unwrap() as f32).abs() < 0.01, "{name}: zero fraction {zeros} vs {}", layer["zero_fraction"]);
        worst_layer = worst_layer.max(e_means).max(e_stats);
    }
    let logits = pollster::block_on(read_f32(net.forward(pixels).unwrap())).unwrap();
    let reference = floats(&gold["logits"]);
    let ours = if net.name == "small-convnet" { vec![logits[1] * 2.0] } else { logits };
    let e_logits = relative_error(&ours, &reference);
    assert!(e_logits < 1e-3, "logits off by {e_logits:.2e} relative");
    (e_logits, worst_layer)
}

/// Grad-CAM family maps correlate ≥ 0.99 with the references for each target class.
fn check_cams(net: &Network, gold: &Value) -> f32 {
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/{}", root(), gold["input"].as_str().unwrap())).unwrap()).unwrap();
    let layer = gold["gradcam"]["target_layer"].as_str().unwrap();
    let mut worst = 1f32;
    for target in gold["gradcam"]["targets"].as_array().unwrap() {
        let class = target["class"].as_u64().unwrap() as usize;
        let cases = [
            (CamMethod::GradCam, Score::Probability, &target["chollet_prob"]),
            (CamMethod::GradCam, Score::Logit, &target["chollet_logit"]),
            (CamMethod::GradCam, Score::Logit, &target["gradcam"]["raw"]),
            (CamMethod::GradCamPlusPlus, Score::Logit, &target["gradcam_pp"]["raw"]),
            (CamMethod::LayerCam, Score::Logit, &target["layercam"]["raw"]),
        ];
        for (method, score, reference) in cases {
            let cam = pollster::block_on(class_activation_map(net, &photo, layer, Some(class), method, score)).unwrap();
            let reference = floats(&reference["values"]);
            if reference.iter().all(|v| *v == 0.0) {
                assert!(cam.map.iter().all(|v| *v == 0.0), "{method:?} {score:?} class {class}: reference is all zero");
                continue;
            }
            let r = correlation(&cam.map, &reference);
            assert!(r >= 0.99, "{method:?} {score:?} class {class}: correlation {r:.4}");
            worst = worst.min(r);
        }
    }
    worst
}

fn report(what: &str, (logits, layers): (f32, f32), cam: f32) {
    eprintln!("{what}: logits rel. error {logits:.2e}, worst layer statistic {layers:.2e}, worst CAM correlation {cam:.5}");
}

fn check_all_files(model: &str, gold_file: &str) {
    let gold = golden(gold_file);
    for file in gold["weights"].as_array().unwrap() {
        let bytes = std::fs::read(format!("{}/tests/fixtures/{}", root(), file.as_str().unwrap())).unwrap();
        let net = network(&import(&bytes, model).unwrap());
        let errors = check_forward(&net, &gold);
        report(file.as_str().unwrap(), errors, check_cams(&net, &gold));
    }
}

#[test]
fn vgg16_keras_layouts_match_keras() {
    check_all_files("vgg16", "golden_vgg16_tiny_keras.json");
}

#[test]
fn vgg16_torchvision_layouts_match_pytorch() {
    check_all_files("vgg16", "golden_vgg16_tiny_torchvision.json");
}

#[test]
fn small_convnet_keras2_and_keras3_match_keras() {
    check_all_files("small-convnet", "golden_small_convnet_tiny.json");
}

#[test]
fn bundled_efficientnet_lite0_matches_pytorch_and_sees_a_cat() {
    let gold = golden("golden_lite0.json");
    let net = lite0();
    let errors = check_forward(&net, &gold);
    report("efficientnet-lite0 (bundled f16)", errors, check_cams(&net, &gold));
    let photo = decode(&std::fs::read(format!("{}/www/samples/cat.jpg", root())).unwrap()).unwrap();
    let top = pollster::block_on(convlens::predict::predict(&net, &[photo], 1)).unwrap().remove(0).remove(0);
    assert!((281..=285).contains(&top.index), "top-1 on the cat photo is {} '{}'", top.index, top.label);
}

/// The wgpu backend (lavapipe in CI: `mesa-vulkan-drivers`) computes what flex computes, forward
/// and backward: logits and a Grad-CAM map on the real Lite0.
#[test]
fn wgpu_backend_agrees_with_cpu() {
    let weights = lite0_weights();
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_224.png", root())).unwrap()).unwrap();
    let run = |backend: Backend| {
        let net = Network::from_weights(weights.clone(), &backend.device().expect("a Vulkan adapter (apt-get install mesa-vulkan-drivers)")).unwrap();
        let logits = pollster::block_on(read_f32(net.forward(to_pixels(std::slice::from_ref(&photo), net.device()).unwrap()).unwrap())).unwrap();
        let cam = pollster::block_on(class_activation_map(&net, &photo, "_blocks.15", None, CamMethod::GradCam, Score::Probability)).unwrap();
        (logits, cam.map)
    };
    let (cpu_logits, cpu_cam) = run(Backend::Cpu);
    let (gpu_logits, gpu_cam) = run(Backend::Wgpu);
    let (e_logits, e_cam) = (relative_error(&gpu_logits, &cpu_logits), relative_error(&gpu_cam, &cpu_cam));
    eprintln!("wgpu vs cpu: logits rel. error {e_logits:.2e}, Grad-CAM map {e_cam:.2e}");
    assert!(e_logits < 1e-4 && e_cam < 1e-3);
}

/// Layers asked for one by one, in any order, through an `ActivationWalk` (which runs on from the
/// deepest layer it has) equal the activations of one plain forward pass.
#[test]
fn activation_walk_equals_one_forward_pass() {
    use convlens::viz::activations::{activations, spatial_layers, ActivationWalk};
    let net = lite0();
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_224.png", root())).unwrap()).unwrap();
    let names: Vec<String> = spatial_layers(&net).iter().map(|l| l.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let plain = pollster::block_on(activations(&net, &photo, &refs, true)).unwrap();
    let mut walk = ActivationWalk::new(&net, &photo).unwrap();
    for &i in &[3, 1, 9, 17, 0, 12] {
        let walked = pollster::block_on(walk.get(&net, &names[i])).unwrap();
        assert_eq!(walked.layer, plain[i].layer);
        let err = relative_error(walked.values.as_ref().unwrap(), plain[i].values.as_ref().unwrap());
        assert!(err < 1e-6, "{}: walked activation differs by {err}", names[i]);
    }
    assert!(pollster::block_on(walk.get(&net, "no_such_layer")).is_err());
}

/// The page's predictions run a pass tapped at the Grad-CAM layer and the map spends it: the
/// probabilities are the plain forward pass's, bit for bit, and the map (with and without
/// aug_smooth, whose other copies run their own passes) the one computed from scratch.
#[test]
fn tapped_pass_serves_predictions_and_the_map() {
    use convlens::predict::probabilities;
    use convlens::viz::gradcam::{class_activation_map_of_pass, smoothed_class_activation_map, Smoothing, TappedPass};
    let net = lite0();
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_224.png", root())).unwrap()).unwrap();
    let plain = pollster::block_on(probabilities(&net, std::slice::from_ref(&photo))).unwrap();
    for augment in [false, true] {
        let smoothing = Smoothing { eigen: false, augment };
        let pass = pollster::block_on(TappedPass::of_photo(&net, &photo, "_conv_head")).unwrap();
        assert_eq!(pass.layer(), "_conv_head");
        assert_eq!(pass.probabilities(), &plain[0][..], "the tapped pass changed the probabilities");
        let spent = pollster::block_on(class_activation_map_of_pass(&net, &photo, pass, None, CamMethod::GradCam, Score::Probability, smoothing)).unwrap();
        let fresh =
            pollster::block_on(smoothed_class_activation_map(&net, &photo, "_conv_head", None, CamMethod::GradCam, Score::Probability, smoothing)).unwrap();
        assert_eq!((spent.class, spent.prob), (fresh.class, fresh.prob));
        assert_eq!(spent.map, fresh.map, "aug_smooth {augment}: the map from the pass differs");
    }
    let flat = net.layers().iter().find(|l| !l.has_map()).expect("Lite0 ends in layers without a map");
    let err = pollster::block_on(TappedPass::of_photo(&net, &photo, &flat.name)).err().expect("a layer without a map cannot be tapped");
    assert!(err.to_string().contains("without a spatial map"), "{err}");
}

/// eigen_smooth and aug_smooth as pytorch-grad-cam 1.5.7 computes them (tests/fixtures/smoothing.json, from
/// tests/fixtures/make_faithfulness.py): its `get_2d_projection` on a seeded matrix (up to the
/// principal component's arbitrary sign), and its GradCAM(eigen_smooth / aug_smooth=True) on the
/// real Lite0.
#[test]
fn smoothing_matches_pytorch_grad_cam() {
    use convlens::viz::gradcam::{eigen_projection, smoothed_class_activation_map, Smoothing};
    let gold = golden("smoothing.json");
    let p = &gold["projection"];
    let (ours, theirs) = (eigen_projection(&floats(&p["values"]), 6), floats(&p["expected"]));
    let sign = if ours.iter().zip(&theirs).map(|(a, b)| a * b).sum::<f32>() < 0.0 { -1.0 } else { 1.0 };
    let worst = ours.iter().zip(&theirs).map(|(a, b)| (sign * a - b).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-4, "projection differs by {worst}: {ours:?} vs {theirs:?}");

    let net = lite0();
    let lite = &gold["lite0"];
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/{}", root(), lite["input"].as_str().unwrap())).unwrap()).unwrap();
    let class = lite["class"].as_u64().map(|c| c as usize);
    let cam = pollster::block_on(smoothed_class_activation_map(
        &net,
        &photo,
        "_conv_head",
        class,
        CamMethod::GradCam,
        Score::Probability,
        Smoothing { eigen: true, augment: false },
    ))
    .unwrap();
    let reference = floats(&lite["gradcam_eigen_smooth"]);
    let (r, err) = (correlation(&cam.map, &reference), relative_error(&cam.map, &reference));
    eprintln!("eigen_smooth vs pytorch-grad-cam: projection max |Δ| {worst:.2e}; Lite0 map r = {r:.6}, max error {err:.2e}");
    assert!(r > 0.999 && err < 1e-2, "Lite0 eigen-smoothed map: r = {r}, max error {err}");

    // aug_smooth: pytorch-grad-cam averages its min-max-normalized maps and does not renormalize;
    // ours renormalizes to a maximum of 1, so the maps compare by correlation.
    let smoothing = Smoothing { eigen: false, augment: true };
    let cam = pollster::block_on(smoothed_class_activation_map(&net, &photo, "_conv_head", class, CamMethod::GradCam, Score::Probability, smoothing)).unwrap();
    let r = correlation(&cam.map, &floats(&lite["gradcam_aug_smooth"]));
    eprintln!("aug_smooth vs pytorch-grad-cam: Lite0 map r = {r:.6}");
    assert!(r > 0.999, "Lite0 aug-smoothed map: r = {r}");
}

/// Guided backpropagation against pytorch-grad-cam 1.5.7's GuidedBackpropReLUModel on the seeded
/// tiny VGG16 (tests/fixtures/make_guided.py): the gradient at every 8th pixel.
#[test]
fn guided_backprop_matches_pytorch_grad_cam() {
    let gold = golden("guided_vgg16_tiny.json");
    let bytes = std::fs::read(format!("{}/tests/fixtures/{}", root(), gold["model"].as_str().unwrap())).unwrap();
    let net = network(&import(&bytes, "vgg16").unwrap());
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_224.png", root())).unwrap()).unwrap();
    let class = gold["class"].as_u64().unwrap() as usize;
    let (gradient, [h, w]) = pollster::block_on(guided_gradient(&net, &photo, class)).unwrap();
    let (stride, offset) = (gold["stride"].as_u64().unwrap() as usize, gold["offset"].as_u64().unwrap() as usize);
    let reference: Vec<f32> = gold["guided"].as_array().unwrap().iter().flat_map(|row| row.as_array().unwrap().iter().flat_map(floats)).collect();
    let ours: Vec<f32> = (offset..h)
        .step_by(stride)
        .flat_map(|y| (offset..w).step_by(stride).flat_map(move |x| (0..3).map(move |c| (c, y, x))))
        .map(|(c, y, x)| gradient[(c * h + y) * w + x])
        .collect();
    assert_eq!(ours.len(), reference.len());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = ours.iter().zip(&reference).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    let r = correlation(&ours, &reference);
    eprintln!("guided backprop: r = {r:.6}, max |Δ| / max |ref| = {worst:.2e}");
    assert!(r > 0.9999 && worst < 1e-3, "r = {r}, worst {worst}");
    // The guided rule matters here: the plain gradient of the same logit is another picture.
    let pixels = to_pixels(&[photo], net.device()).unwrap().require_grad();
    let grads = net.forward(pixels.clone()).unwrap().narrow(1, class, 1).sum().backward();
    let plain = pollster::block_on(read_f32(pixels.grad(&grads).unwrap())).unwrap();
    let plain: Vec<f32> = (offset..h)
        .step_by(stride)
        .flat_map(|y| (offset..w).step_by(stride).flat_map(move |x| (0..3).map(move |c| (c, y, x))))
        .map(|(c, y, x)| plain[(c * h + y) * w + x])
        .collect();
    let r_plain = correlation(&plain, &reference);
    eprintln!("plain gradient against the guided reference: r = {r_plain:.3}");
    assert!(r_plain < 0.9, "the plain gradient is as close as the guided one (r = {r_plain})");
}
