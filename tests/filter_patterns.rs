//! Filter patterns do what they claim: each classic pattern, saved as a uint8 PNG and fed back
//! through the network, excites its own filter far above a gray-noise input, and more than it
//! excites most other filters of the layer (scale-free: each filter is compared to its own
//! response on noise).

mod common;
use common::lite0;
use convlens::backend::read_f32;
use convlens::backend::Backend;
use convlens::network::Network;
use convlens::open::import;
use convlens::picture::{decode, to_pixels, Photo};
use convlens::viz::filters::{filter_patterns, robust_objective, AscentMode, FilterOptions};

/// Mean activation of every channel of `layer` for each photo: [photo][channel].
fn channel_means(net: &Network, photos: &[Photo], layer: &str) -> Vec<Vec<f32>> {
    let act = net.forward_until(to_pixels(photos, net.device()).unwrap(), layer).unwrap();
    let [_, c, h, w] = act.dims();
    let values = pollster::block_on(read_f32(act)).unwrap();
    values.chunks(c * h * w).map(|img| img.chunks(h * w).map(|ch| ch.iter().sum::<f32>() / (h * w) as f32).collect()).collect()
}

#[test]
fn classic_patterns_excite_their_own_filters() {
    let net = lite0();
    let layer = "_blocks.1";
    let mut options = FilterOptions::book(layer);
    options.count = 8;
    options.size = 64;
    let mut steps_seen = 0;
    let patterns = pollster::block_on(filter_patterns(&net, &options, |p| {
        steps_seen = p.step;
        true
    }))
    .unwrap();
    assert_eq!(steps_seen, 40);
    // Through PNG and back, as a user would save them.
    let photos: Vec<Photo> = patterns.iter().map(|p| decode(&p.to_png().unwrap()).unwrap()).collect();
    let noise = Photo::from_fn(64, 64, |x, y| {
        let v = 128 + ((x * 7 + y * 13) % 20) as u8;
        image::Rgb([v, v, v])
    });
    let on_noise = channel_means(&net, &[noise], layer).remove(0);
    let on_patterns = channel_means(&net, &photos, layer);
    let (mut weakest, mut least_beaten) = (f32::MAX, 1f32);
    for (i, means) in on_patterns.iter().enumerate() {
        let gain = |c: usize| means[c] - on_noise[c];
        let own = gain(i);
        assert!(own > 0.5, "filter {i}: pattern raises its mean activation by only {own:.3}");
        let beaten = (0..means.len()).filter(|&c| c != i && gain(c) < own).count();
        weakest = weakest.min(own);
        least_beaten = least_beaten.min(beaten as f32 / (means.len() - 1) as f32);
        assert!(beaten * 4 >= (means.len() - 1) * 3, "filter {i}: its pattern excites {} of {} other filters more", means.len() - 1 - beaten, means.len() - 1);
    }
    eprintln!("{layer}: smallest own-filter gain over noise {weakest:.2}; each pattern beats at least {:.0}% of the other filters", least_beaten * 100.0);
}

#[test]
fn same_seed_same_pixels_and_cancel_stops() {
    let net = lite0();
    let mut options = FilterOptions::book("_conv_stem");
    options.count = 2;
    options.size = 32;
    options.steps = 3;
    options.mode = AscentMode::Regularized;
    let a = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap();
    let b = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap();
    assert_eq!(a, b);
    let err = pollster::block_on(filter_patterns(&net, &options, |p| p.step < 2)).unwrap_err();
    assert_eq!(err.to_string(), "cancelled");
}

#[test]
fn bad_options_are_refused() {
    let net = lite0();
    let mut options = FilterOptions::book("_conv_stem");
    options.first = 30;
    options.count = 8;
    let err = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
    options.first = 0;
    options.steps = 0;
    let err = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap_err().to_string();
    assert!(err.contains("steps"), "{err}");
    options.steps = 4;
    options.variants = usize::MAX / 2;
    let err = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap_err().to_string();
    assert!(err.contains("512 images"), "{err}");
    options.variants = 2;
    options.diversity = f32::NAN;
    let err = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap_err().to_string();
    assert!(err.contains("diversity"), "{err}");
    let options = FilterOptions::book("no_such_layer");
    let err = pollster::block_on(filter_patterns(&net, &options, |_| true)).unwrap_err().to_string();
    assert!(err.contains("unknown layer"), "{err}");
}

/// The neuron and class objectives (Olah et al. 2017) climb: the objective after the last step is
/// well above the first step's, and a class's image, fed back through PNG, gives that class a
/// higher probability than the gray-noise start.
#[test]
fn neuron_and_class_objectives_climb() {
    use convlens::viz::filters::Objective;
    let net = lite0();
    for objective in [Objective::Neuron, Objective::Class] {
        let layer = if objective == Objective::Class { "_conv_head" } else { "_blocks.4" };
        let options = FilterOptions { first: 1, count: 2, size: 96, steps: 12, objective, ..FilterOptions::book(layer) };
        let mut losses = Vec::new();
        let patterns = pollster::block_on(filter_patterns(&net, &options, |p| {
            losses.push(p.loss);
            true
        }))
        .unwrap();
        eprintln!("{objective:?}: objective {:.3} at step 1, {:.3} at step {}", losses[0], losses[losses.len() - 1], losses.len());
        assert!(losses[losses.len() - 1] > losses[0] + 0.5 * losses[0].abs().max(0.1), "{objective:?} did not climb: {losses:?}");
        if objective == Objective::Class {
            let photos: Vec<Photo> = patterns.iter().map(|p| decode(&p.to_png().unwrap()).unwrap()).collect();
            let probs = pollster::block_on(read_f32(net.probabilities(net.forward(to_pixels(&photos, net.device()).unwrap()).unwrap()))).unwrap();
            let classes = net.logit_count();
            for (i, class) in [1usize, 2].into_iter().enumerate() {
                eprintln!("class {class} ({}): p = {:.4} on its image", net.labels[class], probs[i * classes + class]);
                assert!(probs[i * classes + class] > 1.0 / classes as f32 * 5.0, "class {class} is not favoured by its image");
            }
        }
    }
}

/// Lucid's recipe against the book's: for a sample of channels, how much each image excites its
/// channel after Lucid's random transforms (the same draws for both), as `lucid / classic`.
fn lucid_over_classic(net: &Network, layer: &str, first: usize, count: usize, size: usize, steps: usize) -> Vec<f32> {
    let classic = FilterOptions { first, count, size, ..FilterOptions::book(layer) };
    let lucid = FilterOptions { mode: AscentMode::Lucid, steps, step_size: AscentMode::Lucid.default_step_size(), ..classic.clone() };
    let score = |o: &FilterOptions| {
        let patterns = pollster::block_on(filter_patterns(net, o, |_| true)).unwrap();
        pollster::block_on(robust_objective(net, o, &patterns, 8, 99)).unwrap()
    };
    let (c, l) = (score(&classic), score(&lucid));
    eprintln!("{layer} {first}..{}: classic {c:?}\n  lucid {l:?}", first + count);
    l.iter().zip(&c).map(|(l, c)| l / c.abs().max(1e-6)).collect()
}

#[test]
fn lucid_patterns_survive_the_transforms_better_than_classic() {
    let lite0 = lite0();
    let vgg16_bytes = std::fs::read(format!("{}/tests/fixtures/vgg16_tiny_torchvision.safetensors", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let vgg16 = Network::from_weights(import(&vgg16_bytes, "vgg16").unwrap(), &Backend::Cpu.device().unwrap()).unwrap();
    let cases = [(&lite0, "_blocks.4", 0), (&lite0, "_blocks.9", 6), (&vgg16, "block3_conv3", 0), (&vgg16, "block5_conv1", 8)];
    let ratios: Vec<f32> = cases.iter().flat_map(|&(net, layer, first)| lucid_over_classic(net, layer, first, 6, 64, 128)).collect();
    eprintln!("lucid / classic: {ratios:?}");
    let wins = ratios.iter().filter(|r| **r > 1.0).count();
    assert!(wins * 4 >= ratios.len() * 3, "lucid beat classic on only {wins} of {} channels: {ratios:?}", ratios.len());
}
