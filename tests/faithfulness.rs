//! Faithfulness metrics against pytorch-grad-cam 1.5.7 (tests/fixtures/faithfulness_lite0.json,
//! written by tests/fixtures/make_faithfulness.py): ROAD and the confidence change on the bundled
//! EfficientNet-Lite0, for the same 7×7 Grad-CAM map; and the shape of the deletion / insertion
//! curves. No Python needed.

mod common;
use common::{floats, lite0};
use convlens::network::Network;
use convlens::picture::{decode, Photo};
use convlens::viz::faithfulness::{faithfulness, MetricOptions};
use convlens::viz::gradcam::{class_activation_map, Cam, CamMethod, Score};
use serde_json::Value;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn road_and_confidence_change_match_pytorch_grad_cam() {
    let gold: Value = serde_json::from_str(&std::fs::read_to_string(fixture("faithfulness_lite0.json")).unwrap()).unwrap();
    let net = lite0();
    let photo = decode(&std::fs::read(fixture(gold["input"].as_str().unwrap())).unwrap()).unwrap();
    let class = gold["class"].as_u64().unwrap() as usize;
    let cam = Cam { layer: "_conv_head".into(), class, label: String::new(), prob: 0.0, height: 7, width: 7, map: floats(&gold["map"]["values"]) };
    let options = MetricOptions { steps: 4, noise: 0.0, ..MetricOptions::default() };
    let m = pollster::block_on(faithfulness(&net, &photo, &cam, &options)).unwrap();

    let prob = gold["prob"].as_f64().unwrap() as f32;
    assert!((m.prob - prob).abs() < 1e-4, "probability {} vs {prob}", m.prob);
    let worst = |ours: &[f32], theirs: &[f32]| ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let morf = worst(&m.road.most_relevant_first, &floats(&gold["road_most_relevant_first"]));
    let lerf = worst(&m.road.least_relevant_first, &floats(&gold["road_least_relevant_first"]));
    let combined = (m.road.combined - gold["road_combined"].as_f64().unwrap() as f32).abs();
    let confidence = (m.confidence_change - gold["confidence_change"].as_f64().unwrap() as f32).abs();
    eprintln!("vs pytorch-grad-cam: ROAD MoRF max |Δ| {morf:.2e}, LeRF {lerf:.2e}, combined {combined:.2e}; confidence change {confidence:.2e}");
    assert!(morf < 5e-3 && lerf < 5e-3 && combined < 2e-3, "ROAD differs: MoRF {morf}, LeRF {lerf}, combined {combined}");
    assert!(confidence < 1e-3, "confidence change differs by {confidence}");

    // The curves start (deletion) and end (insertion) at the unchanged photo's probability, and a
    // map that knows where the cat is deletes it faster than a random one.
    assert!((m.deletion.scores[0] - m.prob).abs() < 1e-5 && (m.insertion.scores[4] - m.prob).abs() < 1e-5);
    assert!(m.deletion.fractions.windows(2).all(|w| w[0] < w[1]));
    assert!(m.deletion.auc < m.random_deletion.auc, "deletion AUC {} vs random {}", m.deletion.auc, m.random_deletion.auc);
}

/// The real Lite0, the cat, and its Grad-CAM map of the top class at `_conv_head`.
fn lite0_cat_gradcam() -> (Network, Photo, Cam) {
    let net = lite0();
    let photo = decode(&std::fs::read(fixture("cat_224.png")).unwrap()).unwrap();
    let cam = pollster::block_on(class_activation_map(&net, &photo, "_conv_head", None, CamMethod::GradCam, Score::Probability)).unwrap();
    (net, photo, cam)
}

/// The sanity check (Adebayo et al. 2018) on the real Lite0: re-initializing the layers above
/// `_conv_head` changes the Grad-CAM map; re-initializing nothing (above the output) does not.
#[test]
fn sanity_check_notices_a_randomized_head() {
    use convlens::viz::faithfulness::sanity_check;
    let (net, photo, cam) = lite0_cat_gradcam();
    let check = pollster::block_on(sanity_check(&net, &photo, &cam, CamMethod::GradCam, Default::default(), 0)).unwrap();
    eprintln!("sanity check, Grad-CAM at _conv_head, head re-initialized: rank correlation {:.3}", check.rank_correlation);
    assert!(check.rank_correlation < 0.9, "the map did not change with a random head: {}", check.rank_correlation);
    let last = net.layers().last().unwrap().name.clone();
    let untouched = net.randomized_after(&last, &mut || 1.0).unwrap();
    let same = pollster::block_on(class_activation_map(&untouched, &photo, "_conv_head", Some(cam.class), CamMethod::GradCam, Score::Probability)).unwrap();
    assert_eq!(same.map, cam.map, "re-initializing nothing changed the map");
}

/// The cascading randomization on the real Lite0: one step per conv or dense layer, top down,
/// starting with the classifier; the map decorrelates and stays decorrelated further down.
#[test]
fn cascading_sanity_goes_top_down_through_every_weighted_layer() {
    use convlens::graph::LayerKind;
    use convlens::viz::faithfulness::cascading_sanity;
    let (net, photo, cam) = lite0_cat_gradcam();
    let steps = pollster::block_on(cascading_sanity(&net, &photo, &cam, CamMethod::GradCam, Default::default(), 0)).unwrap();
    let weighted: Vec<&str> = net.layers().iter().filter(|l| matches!(l.kind, LayerKind::Conv | LayerKind::Dense)).map(|l| l.name.as_str()).rev().collect();
    let names: Vec<&str> = steps.iter().map(|s| s.randomized_from.as_str()).collect();
    assert_eq!(names, weighted);
    let r: Vec<f32> = steps.iter().map(|s| s.rank_correlation).collect();
    eprintln!("cascade (Grad-CAM, Lite0): first steps {:?}, max below the head {:.3}", &r[..4], r[2..].iter().fold(f32::MIN, |m, v| m.max(*v)));
    assert!(r[0] < 0.9, "re-initializing the classifier left the map as it was: {}", r[0]);
    assert!(r[1..].iter().all(|v| *v < 0.5), "the map came back with more layers randomized: {r:?}");
}
