//! The ConvLens side of `make bench` (driven by bench/run_bench.py; the PyTorch side is
//! bench/peer_torch.py). One process measures one thing and prints one JSON line:
//!
//! ```sh
//! cargo run --example bench -- seed-vgg16 bench/.cache/vgg16_seeded.safetensors
//! cargo run --example bench -- run --case gradcam --backend cpu --weights W --photo www/samples/cat.jpg
//! cargo run --example bench -- run --case filters --backend wgpu --weights W --layer block3_conv1 --filters 64 --steps 40 --mode single
//! cargo run --example bench -- run --case activations --backend cpu --weights W --photo P
//! cargo run --example bench -- run --case load --backend cpu --weights W
//! cargo run --example bench -- profile --case filters|gradcam|activations --backend cpu --weights W …
//! ```
//!
//! `run` times the weights load (file read, parse, network build; device start separately), then
//! the operation twice: the first includes shader compilation / autotuning on wgpu, the second is
//! the steady state. Peak memory is the process's VmHWM. `profile` runs the same operations again,
//! rebuilt from the public API with a device sync between phases, and prints where the time goes.

use std::collections::HashMap;
use std::time::Instant;

use burn::tensor::activation::softmax;
use burn::tensor::{Tensor, TensorData};
use clap::{Args, Parser, ValueEnum};
use convlens::backend::{read_f32, Backend};
use convlens::formats::{Meta, WeightSet};
use convlens::models::{imagenet_labels, vgg16};
use convlens::network::Network;
use convlens::picture::{decode, squash, to_pixels, Colormap, Photo};
use convlens::preprocess::Preprocessing;
use convlens::random::SplitMix;
use convlens::viz::activations::{activations, layer_grid, spatial_layers, LayerActivation, LayerStats};
use convlens::viz::filters::{filter_patterns, FilterOptions};
use convlens::viz::gradcam::{class_activation_map, CamMethod, Score};
use serde_json::{json, Value};

/// Seed of the benchmark's VGG16 weights (the file is regenerated bit for bit from it).
const VGG16_SEED: u64 = 20_261_128;
/// VGG16 conv widths per block (Keras `VGG16`).
const VGG16_WIDTHS: [usize; 5] = [64, 128, 256, 512, 512];

/// The layers the activations case draws: every layer with a map, as the peers list them
/// (EfficientNet's blocks, not the convs inside them, `_blocks.N._expand_conv`…, which the graph
/// also names), so the case measures the same work as before the graph executor.
fn peer_layers(net: &Network) -> Vec<&convlens::LayerInfo> {
    spatial_layers(net).into_iter().filter(|l| !l.name.contains("._")).collect()
}

#[derive(Parser)]
#[command(about = "The ConvLens side of `make bench`: one measurement, one JSON line")]
enum Cli {
    /// Write the seeded full-size VGG16 (ConvLens f16 format).
    SeedVgg16 { out: String },
    /// A photo squashed to 224×224 by ConvLens, as PNG (both sides start from the same pixels).
    Squash { photo: String, out: String },
    /// Time one case.
    Run(Options),
    /// Where one case's time goes, phase by phase.
    Profile(Options),
}

fn main() {
    convlens::backend::retain_freed_memory();
    let result = match Cli::parse() {
        Cli::SeedVgg16 { out } => seed_vgg16(&out),
        Cli::Squash { photo, out } => squash_photo(&photo, &out),
        Cli::Run(o) => run(&o),
        Cli::Profile(o) => profile(&o),
    };
    if let Err(e) = result {
        eprintln!("bench: {e}");
        std::process::exit(1);
    }
}

type Res<T> = std::result::Result<T, String>;

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

// ------------------------------------------------------------------------------------------------
// Seeded VGG16
// ------------------------------------------------------------------------------------------------

/// SplitMix64 with Box–Muller in f64: standard normal values, the same on every machine.
struct Normal(SplitMix);

impl Normal {
    fn uniform(&mut self) -> f64 {
        self.0.uniform_f64()
    }

    /// `n` values of N(0, std²), two per Box–Muller draw.
    fn fill(&mut self, n: usize, std: f64) -> Vec<f32> {
        let mut out = Vec::with_capacity(n + 1);
        while out.len() < n {
            let (u1, u2) = (1.0 - self.uniform(), self.uniform());
            let r = (-2.0 * u1.ln()).sqrt() * std;
            let t = std::f64::consts::TAU * u2;
            out.push((r * t.cos()) as f32);
            out.push((r * t.sin()) as f32);
        }
        out.truncate(n);
        out
    }
}

/// Full-size VGG16 with He-normal weights (std √(2/fan_in)) and zero biases from `VGG16_SEED`,
/// in our format (f16, caffe preprocessing, ImageNet labels). Conv weights are OIHW, dense weights
/// [in, out] with the channels-first flatten.
fn seed_vgg16(out: &str) -> Res<()> {
    let meta = Meta {
        model: vgg16::MODEL.name.to_string(),
        preprocessing: Preprocessing::Caffe,
        origin: format!("convlens bench: He-normal weights, zero biases, SplitMix64 seed {VGG16_SEED}"),
        labels: imagenet_labels(),
    };
    let mut set = WeightSet::new(meta);
    let mut rng = Normal(SplitMix(VGG16_SEED));
    let mut cin = 3;
    for ((block, convs), width) in vgg16::BLOCKS.into_iter().zip(VGG16_WIDTHS) {
        for i in 1..=convs {
            let fan_in = cin * 9;
            set.insert(format!("block{block}_conv{i}.weight"), vec![width, cin, 3, 3], rng.fill(width * fan_in, (2.0 / fan_in as f64).sqrt()));
            set.insert(format!("block{block}_conv{i}.bias"), vec![width], vec![0.0; width]);
            cin = width;
        }
    }
    for (name, inputs, outputs) in [("fc1", 512 * 7 * 7, 4096), ("fc2", 4096, 4096), ("predictions", 4096, 1000)] {
        set.insert(format!("{name}.weight"), vec![inputs, outputs], rng.fill(inputs * outputs, (2.0 / inputs as f64).sqrt()));
        set.insert(format!("{name}.bias"), vec![outputs], vec![0.0; outputs]);
    }
    let bytes = set.to_safetensors(true).map_err(err)?;
    if let Some(dir) = std::path::Path::new(out).parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(out, &bytes).map_err(|e| format!("{out}: {e}"))?;
    eprintln!("wrote {out} ({} values, {} bytes)", set.value_count(), bytes.len());
    Ok(())
}

/// The photo squashed to 224×224 by ConvLens (`picture::squash`), saved as PNG, so that both sides
/// of the benchmark start from the same pixels (PIL's bilinear resize differs in the last bits).
fn squash_photo(input: &str, out: &str) -> Res<()> {
    let photo = decode(&std::fs::read(input).map_err(|e| format!("{input}: {e}"))?).map_err(err)?;
    squash(&photo, [224, 224]).save(out).map_err(|e| format!("{out}: {e}"))
}

// ------------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------------

#[derive(Args)]
struct Options {
    #[arg(long, value_enum)]
    case: Case,
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    #[arg(long)]
    weights: String,
    #[arg(long, default_value = "www/samples/cat.jpg")]
    photo: String,
    #[arg(long)]
    layer: Option<String>,
    #[arg(long, default_value_t = 64)]
    filters: usize,
    #[arg(long, default_value_t = 40)]
    steps: usize,
    /// The filter grid as one batch, or one filter per call.
    #[arg(long, value_enum, default_value_t = Mode::Batched)]
    mode: Mode,
    /// off: build the network on the plain device (no autodiff wrapper), for forward-only profiles.
    #[arg(long, value_enum, default_value_t = Switch::On)]
    autodiff: Switch,
    /// `run`: calls after the first (a profiler's sample); `second_s` is their median.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Case {
    Load,
    Gradcam,
    Filters,
    Activations,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Batched,
    Single,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Switch {
    On,
    Off,
}

impl Options {
    fn filter_options(&self, net: &Network, first: usize, count: usize) -> Res<FilterOptions> {
        let layer = self.layer.clone().ok_or("--layer is required for the filters case")?;
        net.layer(&layer).map_err(err)?;
        Ok(FilterOptions { first, count, steps: self.steps, ..FilterOptions::book(&layer) })
    }
}

// ------------------------------------------------------------------------------------------------
// run: one measurement, one JSON line
// ------------------------------------------------------------------------------------------------

/// A /proc/self/status field in MiB (VmHWM: peak resident set; VmRSS: current).
fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim_start_matches(':').trim().strip_suffix("kB")?.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Loaded {
    net: Network,
    timings: Value,
}

/// Device start, then file read, parse and network build, each timed.
fn load(o: &Options) -> Res<Loaded> {
    let t = Instant::now();
    let mut device = o.backend.device().map_err(err)?;
    if o.autodiff == Switch::Off {
        device = device.without_autodiff();
    }
    let device_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let bytes = std::fs::read(&o.weights).map_err(|e| format!("{}: {e}", o.weights))?;
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let set = WeightSet::from_safetensors(&bytes).map_err(err)?;
    let parse_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    drop(bytes);
    let net = Network::from_weights(set, &device).map_err(err)?;
    device.sync().map_err(|e| format!("{e:?}"))?;
    let build_s = t.elapsed().as_secs_f64();
    let adapter = device.identity().map(|id| id.name).unwrap_or_else(|| "flex (CPU)".into());
    Ok(Loaded {
        net,
        timings: json!({
            "device_s": device_s, "read_s": read_s, "parse_s": parse_s, "build_s": build_s,
            "load_s": read_s + parse_s + build_s, "rss_after_load_mib": status_mib("VmRSS"), "adapter": adapter,
        }),
    })
}

fn photo(o: &Options) -> Res<Photo> {
    decode(&std::fs::read(&o.photo).map_err(|e| format!("{}: {e}", o.photo))?).map_err(err)
}

/// The operation of `o.case`, once; returns a small result to compare with the peer.
fn operation(o: &Options, net: &Network, photo: &Photo) -> Res<Value> {
    match o.case {
        Case::Load => Ok(json!({})),
        Case::Gradcam => {
            let layer = o.layer.clone().unwrap_or_else(|| net.default_cam_layer().to_string());
            let cam = pollster::block_on(class_activation_map(net, photo, &layer, None, CamMethod::GradCam, Score::Logit)).map_err(err)?;
            Ok(json!({"class": cam.class, "layer": layer, "shape": [cam.height, cam.width], "map": cam.map}))
        }
        Case::Filters => {
            let mut losses = Vec::new();
            if o.mode == Mode::Single {
                for i in 0..o.filters {
                    let mut last = 0.0;
                    pollster::block_on(filter_patterns(net, &o.filter_options(net, i, 1)?, |p| {
                        last = p.loss;
                        true
                    }))
                    .map_err(err)?;
                    losses.push(last);
                }
            } else {
                let mut last = 0.0;
                pollster::block_on(filter_patterns(net, &o.filter_options(net, 0, o.filters)?, |p| {
                    last = p.loss;
                    true
                }))
                .map_err(err)?;
                losses.push(last);
            }
            Ok(json!({"final_loss": losses.iter().sum::<f32>() / losses.len() as f32}))
        }
        Case::Activations => {
            let names: Vec<String> = peer_layers(net).iter().map(|l| l.name.clone()).collect();
            let layers: Vec<&str> = names.iter().map(String::as_str).collect();
            let acts = pollster::block_on(activations(net, photo, &layers, true)).map_err(err)?;
            let mut pixels = 0usize;
            for a in &acts {
                pixels += layer_grid(a, Colormap::Viridis).map_err(err)?.data.len() / 4;
            }
            let means: Vec<f32> = acts.iter().map(|a| a.stats.mean).collect();
            Ok(json!({"layers": layers.len(), "grid_pixels": pixels, "layer_means": means}))
        }
    }
}

fn run(o: &Options) -> Res<()> {
    let loaded = load(o)?;
    let photo = photo(o)?;
    let mut times = Vec::new();
    let mut check = Value::Null;
    if o.case != Case::Load {
        for _ in 0..1 + o.repeat.max(1) {
            let t = Instant::now();
            check = operation(o, &loaded.net, &photo)?;
            times.push(t.elapsed().as_secs_f64());
        }
    } else {
        operation(o, &loaded.net, &photo)?;
    }
    let line = json!({
        "impl": format!("convlens-{}", o.backend.name()),
        "load": loaded.timings,
        "first_s": times.first(),
        "second_s": median_of(times.get(1..).unwrap_or_default()),
        "peak_rss_mib": status_mib("VmHWM"),
        "check": check,
    });
    println!("{line}");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// profile: where the time of one operation goes
// ------------------------------------------------------------------------------------------------

/// Accumulated wall time per phase, each phase closed by a device sync.
struct Phases {
    device: burn::tensor::Device,
    order: Vec<&'static str>,
    totals: HashMap<&'static str, f64>,
    mark: Instant,
}

impl Phases {
    fn new(device: &burn::tensor::Device) -> Self {
        Self { device: device.clone(), order: Vec::new(), totals: HashMap::new(), mark: Instant::now() }
    }

    /// Ends the phase `name` (waiting for the device) and starts the next.
    fn end(&mut self, name: &'static str) {
        let _ = self.device.sync();
        let now = Instant::now();
        if !self.totals.contains_key(name) {
            self.order.push(name);
        }
        *self.totals.entry(name).or_default() += (now - self.mark).as_secs_f64();
        self.mark = now;
    }

    fn report(&self) -> Value {
        let total: f64 = self.totals.values().sum();
        let rows: Vec<Value> = self.order.iter().map(|n| json!({"phase": n, "s": self.totals[n], "share": self.totals[n] / total})).collect();
        json!({"total_s": total, "phases": rows})
    }
}

fn profile(o: &Options) -> Res<()> {
    let loaded = load(o)?;
    let net = &loaded.net;
    let photo = photo(o)?;
    // Warm-up (kernel compilation / autotune on wgpu), then the profiled run.
    operation(o, net, &photo)?;
    let device = net.device().clone();
    let mut p = Phases::new(&device);
    match o.case {
        Case::Gradcam => {
            let layer = net.default_cam_layer();
            p.end("(start)");
            let pixels = to_pixels(&[squash(&photo, net.input_hw())], &device).map_err(err)?;
            p.end("squash + upload");
            let (activation, logits) = net.forward_tapped(pixels, layer).map_err(err)?;
            p.end("forward (tapped at the layer)");
            let probs = read_f32(softmax(logits.clone(), 1)).await_blocking()?;
            p.end("softmax + read-back of probabilities");
            let class = (0..probs.len()).max_by(|&a, &b| probs[a].total_cmp(&probs[b])).unwrap_or(0);
            let grads = logits.narrow(1, class, 1).sum().backward();
            p.end("backward to the layer");
            let gradient = activation.grad(&grads).ok_or("no gradient")?;
            let a = read_f32(activation.inner()).await_blocking()?;
            let g = read_f32(gradient).await_blocking()?;
            p.end("read-back of activation + gradient");
            std::hint::black_box((a, g));
        }
        Case::Filters => {
            let count = if o.mode == Mode::Single { 1 } else { o.filters };
            let fo = o.filter_options(net, 0, count)?;
            let layer = fo.layer.as_str();
            let channels = net.layer(layer).map_err(err)?.shape[0];
            let (b, s) = (count, fo.size);
            let calls = if o.mode == Mode::Single { o.filters } else { 1 };
            p.end("(start)");
            for call in 0..calls {
                let noise: Vec<f32> = (0..b * 3 * s * s).map(|i| ((i * 7919) % 20) as f32 + 128.0).collect();
                let mut x = Tensor::<4>::from_data(TensorData::new(noise, [b, 3, s, s]), &device);
                let mut select = vec![0f32; b * channels];
                (0..b).for_each(|i| select[i * channels + call + i] = 1.0);
                let select = Tensor::<4>::from_data(TensorData::new(select, [b, channels, 1, 1]), &device);
                p.end("noise + select upload");
                for _ in 0..fo.steps {
                    let leaf = x.clone().detach().require_grad();
                    let activation = net.forward_until(leaf.clone(), layer).map_err(err)?;
                    p.end("forward (preprocess + layers)");
                    let [_, _, h, w] = activation.dims();
                    let per_image = (activation * select.clone()).sum_dims(&[1, 2, 3]).div_scalar((h * w) as f32);
                    let loss = per_image.clone().sum();
                    p.end("loss (one-hot select + mean)");
                    let grads = loss.backward();
                    p.end("backward to the input");
                    let grad = leaf.grad(&grads).ok_or("no gradient")?;
                    let rms = grad.clone().square().mean_dims(&[1, 2, 3]).sqrt().add_scalar(1e-5);
                    x = (x + (grad / rms).mul_scalar(fo.step_size)).detach();
                    p.end("normalize + step");
                    std::hint::black_box(read_f32(per_image.inner()).await_blocking()?);
                    p.end("per-step loss read-back");
                }
                std::hint::black_box(read_f32(x.inner()).await_blocking()?);
                p.end("final image read-back");
            }
        }
        Case::Activations => {
            let infos: Vec<_> = peer_layers(net).into_iter().cloned().collect();
            let layers: Vec<&str> = infos.iter().map(|l| l.name.as_str()).collect();
            p.end("(start)");
            let pixels = to_pixels(&[squash(&photo, net.input_hw())], &device).map_err(err)?;
            p.end("squash + upload");
            let outputs = net.forward_many(pixels, &layers).map_err(err)?;
            p.end("forward to the last spatial layer");
            let mut acts = Vec::new();
            for (info, t) in infos.iter().zip(outputs) {
                let values = read_f32(t).await_blocking()?;
                let stats = LayerStats { sparsity: 0.0, mean: 0.0, max: 0.0, channel_means: vec![], channel_maxes: vec![] };
                acts.push(LayerActivation { layer: info.name.clone(), shape: info.shape, values: Some(values), stats });
            }
            p.end("read-back of every layer");
            for a in &acts {
                std::hint::black_box(layer_grid(a, Colormap::Viridis).map_err(err)?);
            }
            p.end("layer_grid for every layer (standardize, colormap, tile)");
        }
        Case::Load => return Err("no profile for the load case: `run` times it".into()),
    }
    let mut report = p.report();
    report["impl"] = json!(format!("convlens-{}", o.backend.name()));
    report["case"] = json!(convlens::choice::name(&o.case));
    println!("{report}");
    Ok(())
}

/// `pollster::block_on` for `read_f32` with the error as a string.
trait BlockOn<T> {
    fn await_blocking(self) -> Res<T>;
}

impl<T, F: std::future::Future<Output = convlens::Result<T>>> BlockOn<T> for F {
    fn await_blocking(self) -> Res<T> {
        pollster::block_on(self).map_err(err)
    }
}

/// The median of `times` (none when empty).
fn median_of(times: &[f64]) -> Option<f64> {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}
