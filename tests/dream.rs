//! DeepDream does what it claims: the dreamed photo, saved as PNG and fed back, drives the chosen
//! layer harder (mean square activation) than the photo did, and is still the photo.

mod common;
use common::lite0;
use convlens::backend::read_f32;
use convlens::network::Network;
use convlens::picture::{decode, to_pixels, Photo};
use convlens::viz::dream::{deep_dream, DreamOptions};

fn mean_square(net: &Network, photo: &Photo, layer: &str) -> f32 {
    let act = net.forward_until(to_pixels(std::slice::from_ref(photo), net.device()).unwrap(), layer).unwrap();
    let values = pollster::block_on(read_f32(act)).unwrap();
    values.iter().map(|v| v * v).sum::<f32>() / values.len() as f32
}

#[test]
fn the_dream_drives_its_layer_and_keeps_the_photo() {
    let net = lite0();
    let photo = decode(&std::fs::read(format!("{}/tests/fixtures/cat_224.png", env!("CARGO_MANIFEST_DIR"))).unwrap()).unwrap();
    let layer = "_blocks.4";
    let options = DreamOptions { layer: layer.into(), steps: 10, step_size: 2.0, seed: 0 };
    let mut seen = Vec::new();
    let dream = pollster::block_on(deep_dream(&net, &photo, &options, |_, _, v| {
        seen.push(v);
        true
    }))
    .unwrap();
    let dreamed = decode(&dream.to_png().unwrap()).unwrap();
    let (before, after) = (mean_square(&net, &photo, layer), mean_square(&net, &dreamed, layer));
    let change = photo.as_raw().iter().zip(dreamed.as_raw()).map(|(a, b)| (*a as f32 - *b as f32).abs()).sum::<f32>() / photo.as_raw().len() as f32;
    eprintln!("DeepDream at {layer}: mean square {before:.3} → {after:.3}; mean pixel change {change:.1} / 255; objective per step {seen:?}");
    assert!(after > 1.3 * before, "the dream did not drive {layer}: {before} → {after}");
    assert!(change > 1.0 && change < 30.0, "the dream changed the photo by {change} levels on average");
    assert!(pollster::block_on(deep_dream(&net, &photo, &DreamOptions { layer: "_fc".into(), ..options }, |_, _, _| true)).is_err());
}
