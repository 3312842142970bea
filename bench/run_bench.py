#!/usr/bin/env python3
"""Runs ConvLens and its PyTorch peer side by side and writes bench/RESULTS.md.

    python3 bench/run_bench.py --python bench/.venv/bin/python [--quick] [--runs 5]

Standard library only (the peer itself runs under --python). Every measurement is a fresh
process (examples/bench.rs or bench/peer_torch.py) that prints one JSON line: load timings, the
operation timed twice (first: with kernel compilation / autotune; second: steady state) and its
peak RSS (VmHWM). Runs are interleaved — run 1 measures every case and implementation once, then
run 2, ... — so slow drifts of the shared machine hit every implementation alike; each table
shows the median over the runs and the median of the per-run ratios to the peer of the same run.
"""
import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN_DIR = ROOT / "bench" / ".cache" / "bin"
BENCH_BIN = BIN_DIR / "bench"  # examples/bench.rs as the crate builds it (Cargo.toml's burn features)
VGG16 = "bench/.cache/vgg16_seeded.safetensors"
LITE0 = "weights/efficientnet-lite0.safetensors"
PHOTO = "bench/.cache/cat_224.png"  # www/samples/cat.jpg squashed to 224x224 by ConvLens
WEIGHTS = {"vgg16": VGG16, "lite0": LITE0}
MODEL_NAMES = {"vgg16": "VGG16 (seeded)", "lite0": "EfficientNet-Lite0"}
IMPL_NAMES = {
    "convlens-cpu": "ConvLens cpu (flex)",
    "convlens-wgpu": "ConvLens wgpu (lavapipe)",
    "torch": "PyTorch CPU",
    "torch-pgc": "pytorch-grad-cam GradCAM",
    "torch-chollet": "PyTorch, Chollet's formula",
}


# ---------------------------------------------------------------------------------------------
# The matrix of measurements
# ---------------------------------------------------------------------------------------------
def measurement(case, impl, model, python, **extra):
    """(key, argv) of one process."""
    weights = WEIGHTS[model]
    opts = {"case": case, "weights": weights, "photo": PHOTO, **{k: str(v) for k, v in extra.items()}}
    if impl.startswith("convlens"):
        argv = [str(BENCH_BIN), "run", "--backend", impl.removeprefix("convlens-")]
        for k, v in opts.items():
            argv += [f"--{k}", v]
    else:
        argv = [python, "bench/peer_torch.py", "run", "--model", model]
        if impl != "torch":
            argv += ["--impl", impl.split("-")[1]]
        for k, v in opts.items():
            argv += [f"--{k}", v]
    key = (case, model, extra.get("layer", ""), extra.get("mode", ""), impl)
    return key, argv


def matrix(args):
    """Every process of one run. QUICK (to stay under 10 minutes on 2 shared cores) leaves out: the
    load-only processes (table 4 then comes from the Grad-CAM processes), VGG16 on wgpu/lavapipe
    (~25 s per Grad-CAM call) and the single-filter grids of block5_conv1."""
    py, q = args.python, args.quick
    m = []

    def convlens(model):
        return ["convlens-cpu"] + (["convlens-wgpu"] if model == "lite0" or not q else [])

    if not q:
        for model in ("vgg16", "lite0"):
            for impl in convlens(model) + ["torch"]:
                m.append(measurement("load", impl, model, py))
    for model in ("vgg16", "lite0"):
        for impl in convlens(model) + ["torch-pgc", "torch-chollet"]:
            m.append(measurement("gradcam", impl, model, py))
    for layer in ("block3_conv1", "block5_conv1"):
        for mode in ("batched", "single"):
            if q and mode == "single" and layer == "block5_conv1":
                continue
            impls = ["convlens-cpu"] + (["convlens-wgpu"] if args.wgpu_filters else []) + ["torch"]
            for impl in impls:
                m.append(measurement("filters", impl, "vgg16", py, layer=layer, filters=args.filters, steps=args.steps, mode=mode))
    for model in ("vgg16", "lite0"):
        for impl in convlens(model) + ["torch"]:
            m.append(measurement("activations", impl, model, py))
    return m


def run_one(argv, timeout):
    env = dict(os.environ, RAYON_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", XDG_RUNTIME_DIR="/tmp")
    t = time.perf_counter()
    try:
        p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    wall = time.perf_counter() - t
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-400:]}"}
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


# ---------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------
def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_s(v):
    if v is None:
        return "–"
    return f"{v:.3f} s" if v < 1 else f"{v:.2f} s" if v < 100 else f"{v:.0f} s"


def fmt_spread(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    m = statistics.median(values)
    if len(values) < 2:
        return fmt_s(m)
    return f"{fmt_s(m)} <sub>({min(values):.3g}–{max(values):.3g})</sub>"


def fmt_ratio(v):
    return "–" if v is None else f"{v:.2f}×"


def fmt_mib(v):
    return "–" if v is None else f"{v:,.0f} MiB"


def per_run_ratios(results, key_a, key_b, field):
    """Median over runs of a[field] / b[field], each pair from the same run."""
    ratios = []
    for a, b in zip(results.get(key_a, []), results.get(key_b, [])):
        if a.get(field) and b.get(field):
            ratios.append(a[field] / b[field])
    return med(ratios)


def field(results, key, name):
    return [r.get(name) for r in results.get(key, []) if "error" not in r]


def load_field(results, key, name):
    return [r["load"].get(name) for r in results.get(key, []) if "error" not in r]


def cam_diff(a, b):
    """Max |Δ| between two CAM maps of the same shape, or None."""
    if not a or not b or "map" not in a or "map" not in b or len(a["map"]) != len(b["map"]):
        return None
    return max(abs(x - y) for x, y in zip(a["map"], b["map"]))


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def sh(cmd):
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, shell=True, timeout=60).stdout.strip()
    except Exception as e:  # noqa: BLE001 - a missing tool is reported, not fatal
        return f"({e})"


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("awk '/MemTotal/ {printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    return {"cpu": cpu, "cores": os.cpu_count(), "ram": mem, "kernel": platform.release(),
            "load": sh("cut -d' ' -f1-3 /proc/loadavg")}


def versions(python):
    v = {"rustc": sh("rustc --version"), "burn": "", "peer": {}}
    lock = (ROOT / "Cargo.lock").read_text()
    mm = re.search(r'name = "burn"\nversion = "([^"]+)"', lock)
    v["burn"] = mm.group(1) if mm else "?"
    try:
        v["peer"] = json.loads(subprocess.run([python, "bench/peer_torch.py", "versions"], cwd=ROOT, capture_output=True,
                                              text=True, timeout=120).stdout)
    except Exception as e:  # noqa: BLE001
        v["peer"] = {"error": str(e)}
    return v


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def impls_of(results, case, model, layer="", mode=""):
    order = ["convlens-cpu", "convlens-wgpu", "torch", "torch-pgc", "torch-chollet"]
    present = {k[-1] for k in results if k[:4] == (case, model, layer, mode)}
    return [i for i in order if i in present]


def ok_runs(results, key):
    return [r for r in results.get(key, []) if "error" not in r]


def failed(results, key):
    errors = [r["error"] for r in results.get(key, []) if "error" in r]
    return f"failed ({len(errors)}×): {errors[0][:160]}" if errors else "failed"


def write_results(path, results, args, meta, profiles, wall):
    mach, ver = meta["machine"], meta["versions"]
    peer = ver["peer"]
    L = []
    L.append("# ConvLens benchmarks\n")
    L.append(f"Written by `make bench{' QUICK=1' if args.quick else ''}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
             f"in {wall / 60:.1f} min. Every number is the **median of {args.runs} interleaved runs** "
             "(run 1 measures every case and implementation once, then run 2, …); every measurement is a fresh process "
             "that loads the weights, then times the operation twice: **1st call** (includes shader compilation and "
             "autotuning on wgpu) and **2nd call** (steady state). Small print: (min–max) over the runs. **Ratios** are "
             "ConvLens time ÷ peer time, computed within each run, then the median taken: above 1× ConvLens is slower.\n")
    L.append("## Machine and versions\n")
    L.append(table(["", ""], [
        ["CPU", f"{mach['cpu']}, {mach['cores']} cores, shared with other jobs (load average {mach['load']} at the start, "
                f"{meta['load_end']} at the end)"],
        ["RAM", mach["ram"]],
        ["OS", f"Linux {mach['kernel']}"],
        ["Rust", f"{ver['rustc']}; burn {ver['burn']}"],
        ["build", "`cargo build --release --example bench`, the profile the README builds the CLI with (opt-level 3, "
                  "no LTO, no debug assertions)"],
        ["ConvLens cpu", "burn `flex` as Cargo.toml builds it natively: burn's `rayon` (2 threads) and `simd` features, "
                         "gemm's AVX-512 kernels (`burn-flex/x86-v4`, chosen at run time)"],
        ["ConvLens wgpu", f"burn wgpu on **{meta.get('adapter', 'lavapipe')}**: Mesa's *software* Vulkan rasterizer "
                          "(lavapipe) on the same 2 CPU cores — no GPU here. It shows the GPU code path works and what it "
                          "costs without a GPU, not GPU speed"],
        ["PyTorch", f"torch {peer.get('torch', '?')} (CPU; MKL/oneDNN), `torch.set_num_threads(2)`; torchvision "
                    f"{peer.get('torchvision', '?')}, grad-cam {peer.get('grad-cam', '?')}, numpy {peer.get('numpy', '?')}, "
                    f"safetensors {peer.get('safetensors', '?')}, Python {peer.get('python', '?')} (bench/requirements.txt)"],
        ["weights", "VGG16: full size (138 M values), He-normal weights and zero biases from a fixed seed (`bench seed-vgg16`), "
                    f"f16 file (264 MiB), caffe preprocessing. EfficientNet-Lite0: the bundled `{LITE0}` (f16). Both sides read "
                    "the same file and compute in f32"],
        ["photo", f"`www/samples/cat.jpg` squashed to 224×224 by ConvLens (`{PHOTO}`), given to both sides"],
    ]))
    L.append("")
    notes = []
    if args.quick:
        notes.append(f"**QUICK=1**: filter grids are **{args.filters} filters × {args.steps} steps** (not 64 × 40) and the "
                     "single-filter grid of `block5_conv1` is left out; VGG16 on wgpu/lavapipe is left out (its Grad-CAM "
                     "alone is ~25 s a call there), and so are the load-only processes (table 4 comes from the Grad-CAM "
                     "processes). `make bench` runs everything at full size "
                     "(hours on this machine).")
    if not args.wgpu_filters:
        notes.append("Filter grids on wgpu/lavapipe are not measured (`WGPU_FILTERS=1` adds them): at ~3 s per image-step "
                     "on VGG16 block3, one 64-filter × 40-step grid would take about 2 hours.")
    if notes:
        L.append("\n".join(f"- {n}" for n in notes) + "\n")

    def key(case, model, impl, layer="", mode=""):
        return (case, model, layer, mode, impl)

    # 1. Grad-CAM
    L.append("## 1. Grad-CAM on one 224×224 photo\n")
    L.append("Forward, backward from the top class's logit to the last conv layer (VGG16 `block5_conv3`, Lite0 `_conv_head`), "
             "the map. ConvLens: `viz::gradcam::class_activation_map(…, CamMethod::GradCam, Score::Logit)`. "
             "pytorch-grad-cam: `GradCAM(model, target_layers)(x, targets=None)` as its README shows; it calls "
             "`loss.backward()`, so it also computes every weight gradient, and it resizes the map to 224×224. "
             "Chollet's formula in plain torch: forward hook + `torch.autograd.grad(logit, activation)`, channel weights = "
             "mean gradient, channel-weighted mean, ReLU, ÷ max — ConvLens's formula exactly, so the maps are compared "
             "value by value (max |Δ| on 0–1 maps).\n")
    rows = []
    for model in ("vgg16", "lite0"):
        for impl in impls_of(results, "gradcam", model):
            k = key("gradcam", model, impl)
            rs = ok_runs(results, k)
            if not rs:
                rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], failed(results, k), "", "", "", "", ""])
                continue
            conv = impl.startswith("convlens")
            r_pgc = per_run_ratios(results, k, key("gradcam", model, "torch-pgc"), "second_s") if conv else None
            r_ch = per_run_ratios(results, k, key("gradcam", model, "torch-chollet"), "second_s") if conv else None
            check = rs[-1].get("check") or {}
            ref = (ok_runs(results, key("gradcam", model, "torch-chollet")) or [{}])[-1].get("check")
            d = cam_diff(check, ref) if impl != "torch-chollet" else None
            agree = f"class {check.get('class')}" + (f", max \\|Δ\\| {d:.1e}" if d is not None else "")
            rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], fmt_spread(field(results, k, "first_s")),
                         fmt_spread(field(results, k, "second_s")), fmt_ratio(r_pgc), fmt_ratio(r_ch),
                         fmt_mib(med(field(results, k, "peak_rss_mib"))), agree])
    L.append(table(["model", "implementation", "1st call", "2nd call", "÷ pytorch-grad-cam", "÷ Chollet torch",
                    "peak RSS", "check"], rows))
    L.append("")

    # 2. Filter grids
    L.append(f"## 2. Filter grid: {args.filters} filters of VGG16, 64×64, {args.steps} steps\n")
    L.append("The book's algorithm: gray noise, `x += g / (sqrt(mean(g²)) + 1e-5)`, then `deprocess_image`. **batched**: all "
             f"{args.filters} filters in one batch (`viz::filters::filter_patterns` with count {args.filters}; torch: the same "
             f"batch, each image's loss its own filter's mean). **single**: {args.filters} calls of one filter (ConvLens: "
             "count 1; torch: batch 1). Both start from ConvLens's seeded noise; torch differentiates w.r.t. the input only "
             "(weights `requires_grad_(False)`, `torch.autograd.grad`). *speed-up* = single ÷ batched, same backend and run. "
             "Check: the mean final loss (each filter's mean activation), which both sides should reproduce.\n")
    rows = []
    for layer in ("block3_conv1", "block5_conv1"):
        for mode in ("batched", "single"):
            for impl in impls_of(results, "filters", "vgg16", layer, mode):
                k = key("filters", "vgg16", impl, layer, mode)
                rs = ok_runs(results, k)
                if not rs:
                    rows.append([f"`{layer}`", mode, IMPL_NAMES[impl], failed(results, k), "", "", "", "", ""])
                    continue
                ratio = per_run_ratios(results, k, key("filters", "vgg16", "torch", layer, mode), "second_s") if impl != "torch" else None
                speedup = per_run_ratios(results, key("filters", "vgg16", impl, layer, "single"),
                                         key("filters", "vgg16", impl, layer, "batched"), "second_s") if mode == "batched" else None
                loss = med([(r.get("check") or {}).get("final_loss") for r in rs])
                rows.append([f"`{layer}`", mode, IMPL_NAMES[impl], fmt_spread(field(results, k, "first_s")),
                             fmt_spread(field(results, k, "second_s")), fmt_ratio(ratio),
                             "" if speedup is None else f"{speedup:.2f}×", fmt_mib(med(field(results, k, "peak_rss_mib"))),
                             "–" if loss is None else f"{loss:.5g}"])
    L.append(table(["layer", "mode", "implementation", "1st call", "2nd call", "÷ torch (same mode)",
                    "speed-up of batching", "peak RSS", "final loss"], rows))
    L.append("")

    # 3. Activations
    L.append("## 3. Activations of every conv/pool layer, rendered to grids\n")
    L.append("ConvLens: `viz::activations::activations` over `spatial_layers` (one forward, every layer read back, statistics) "
             "+ `layer_grid(…, Colormap::Viridis)` for each of the 18 layers (standardize, colour, enlarge to ≥ 32 px, tile 16 "
             "per row). PyTorch: a `torch.no_grad()` forward with hooks on the same 18 layers + the same standardization, "
             "viridis lookup and tiling in numpy. Check: largest relative difference of the 18 layers' mean activations.\n")
    rows = []
    for model in ("vgg16", "lite0"):
        ref = (ok_runs(results, key("activations", model, "torch")) or [{}])[-1].get("check")
        for impl in impls_of(results, "activations", model):
            k = key("activations", model, impl)
            rs = ok_runs(results, k)
            if not rs:
                rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], failed(results, k), "", "", "", ""])
                continue
            ratio = per_run_ratios(results, k, key("activations", model, "torch"), "second_s") if impl != "torch" else None
            a = rs[-1].get("check") or {}
            check = f"{a.get('layers')} layers, {a.get('grid_pixels', 0):,} px"
            if impl != "torch" and ref and len(a.get("layer_means", [])) == len(ref.get("layer_means", [])):
                rel = max(abs(x - y) / max(abs(y), 1e-6) for x, y in zip(a["layer_means"], ref["layer_means"]))
                check += f"; means within {rel:.0e}"
            rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], fmt_spread(field(results, k, "first_s")),
                         fmt_spread(field(results, k, "second_s")), fmt_ratio(ratio),
                         fmt_mib(med(field(results, k, "peak_rss_mib"))), check])
    L.append(table(["model", "implementation", "1st call", "2nd call", "÷ torch", "peak RSS", "check"], rows))
    L.append("")

    # 4. Load and memory
    load_case = "load" if any(k[0] == "load" for k in results) else "gradcam"
    L.append("## 4. Loading the weights, and peak memory\n")
    L.append(("Processes that only start the runtime and load the weights. " if load_case == "load" else
              "Taken from the Grad-CAM processes (QUICK has no load-only processes), so *peak RSS* there includes the "
              "Grad-CAM. ") +
             "*Start*: ConvLens: the device (`Backend::device()`; wgpu: adapter and device); PyTorch: `import torch` and co "
             "(pytorch-grad-cam's imports for its rows). *Read*: the file into memory (torch: `safetensors.torch.load_file`). "
             "*Parse*: ConvLens `WeightSet::from_safetensors` (f16 → f32 on the host). *Build*: ConvLens "
             "`Network::from_weights` (tensors to the device, batch norms folded, fc1 split in 64 MiB blocks) + a device "
             "sync; torch: f16 → f32, the model built on the meta device, `load_state_dict(assign=True)`. *Peak RSS*: VmHWM.\n")
    rows = []
    for model in ("vgg16", "lite0"):
        peer = "torch" if load_case == "load" else "torch-chollet"
        for impl in [i for i in impls_of(results, load_case, model) if i != "torch-pgc"]:
            k = key(load_case, model, impl)
            rs = ok_runs(results, k)
            if not rs:
                rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], failed(results, k), "", "", "", "", "", "", ""])
                continue
            peer_rs = ok_runs(results, key(load_case, model, peer))
            ratio = per_run_ratios({"a": [r["load"] for r in rs], "b": [r["load"] for r in peer_rs]}, "a", "b", "load_s") \
                if impl.startswith("convlens") else None
            start = med(load_field(results, k, "import_s" if impl.startswith("torch") else "device_s"))
            rows.append([MODEL_NAMES[model], IMPL_NAMES[impl], fmt_s(start), fmt_s(med(load_field(results, k, "read_s"))),
                         fmt_s(med(load_field(results, k, "parse_s"))), fmt_s(med(load_field(results, k, "build_s"))),
                         fmt_spread(load_field(results, k, "load_s")), fmt_ratio(ratio),
                         fmt_mib(med(load_field(results, k, "rss_after_load_mib"))), fmt_mib(med(field(results, k, "peak_rss_mib")))])
    L.append(table(["model", "implementation", "start", "read", "parse", "build", "load = read + parse + build", "÷ torch",
                    "RSS after load", "peak RSS"], rows))
    L.append("")

    if profiles:
        L.append("## Profiles\n")
        L.append("`bench profile` repeats the operation after a warm-up call, rebuilt from the public API (`forward_until`, "
                 "`backward`, `read_f32`, `layer_grid`) with a device sync closing each phase (flex is eager, so the split is "
                 "exact), in one process each, ConvLens cpu as Cargo.toml builds it.\n")
        for profile in profiles:
            L.append(f"**{profile['title']}**\n")
            rows = [[ph["phase"], fmt_s(ph["s"]), f"{ph['share'] * 100:.1f} %"] for ph in profile["report"].get("phases", [])
                    if ph["phase"] != "(start)"]
            rows.append(["total", fmt_s(profile["report"].get("total_s")), profile.get("notes", "")])
            L.append(table(["phase", "time", "share"], rows))
            L.append("")

    notes_file = ROOT / "bench" / "NOTES.md"
    if notes_file.exists():
        L.append(notes_file.read_text().strip() + "\n")
    errors = [(k, r["error"]) for k, rs in results.items() for r in rs if "error" in r]
    if errors:
        L.append("## Failed measurements\n")
        for k, e in errors[:20]:
            L.append(f"- `{' '.join(x for x in k if x)}`: {e[:300]}")
        L.append("")
    L.append("Reproduce: `make bench` (full sizes) or `make bench QUICK=1`; knobs: `RUNS=`, `FILTERS=`, `STEPS=`, "
             "`WGPU_FILTERS=1`. Raw per-process JSON: `bench/.cache/results.json`.\n")
    Path(path).write_text("\n".join(L))


def append_browser(results_path, section_path):
    """Puts the browser half's section (bench/browser/bench.mjs writes it) into RESULTS.md as
    section 5, replacing an older one."""
    results = Path(results_path)
    text = results.read_text() if results.exists() else "# ConvLens benchmarks\n"
    start = text.find("## 5. In the browser")
    if start >= 0:
        after = re.search(r"^## (?!5\. In the browser)", text[start + 1:], re.M)
        text = text[:start] + (text[start + 1 + after.start():] if after else "")
    section = Path(section_path).read_text().strip() + "\n\n"
    at = text.find("## Profiles")  # after the native tables, before the profiles and notes
    at = at if at >= 0 else len(text)
    results.write_text(text[:at].rstrip() + "\n\n" + section + text[at:])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--python", default=str(ROOT / "bench" / ".venv" / "bin" / "python"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--filters", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--wgpu-filters", action="store_true", help="also run the filter grids on wgpu (hours on lavapipe)")
    p.add_argument("--timeout", type=int)
    p.add_argument("--only", help="comma-separated cases to run (load,gradcam,filters,activations)")
    p.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--append-browser", metavar="MD", help="only put MD (bench/.cache/browser.md) into --out as section 5")
    args = p.parse_args()
    if args.append_browser:
        return append_browser(args.out, args.append_browser)
    args.filters = args.filters or (4 if args.quick else 64)
    args.steps = args.steps or (2 if args.quick else 40)
    timeout = args.timeout or (300 if args.quick else 4 * 3600)
    if args.runs < 5:
        print(f"note: {args.runs} runs (fewer than the 5 the report is meant for)", file=sys.stderr)
    t0 = time.perf_counter()
    meta = {"machine": machine(), "versions": versions(args.python)}
    m = matrix(args)
    if args.only:
        wanted = set(args.only.split(","))
        m = [(k, a) for k, a in m if k[0] in wanted]
    print(f"{len(m)} processes per run, {args.runs} runs", file=sys.stderr)
    results = {}
    for run in range(1, args.runs + 1):
        t_run = time.perf_counter()
        for k, argv in m:
            r = run_one(argv, timeout)
            results.setdefault(k, []).append(r)
            if "error" in r:
                print(f"run {run} {' '.join(x for x in k if x)}: {r['error'][:300]}", file=sys.stderr)
            elif k[-1] == "convlens-wgpu":
                meta["adapter"] = r["load"].get("adapter", "?")
        print(f"run {run}/{args.runs} done in {time.perf_counter() - t_run:.0f} s", file=sys.stderr)
    cache = ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "results.json").write_text(json.dumps({" / ".join(k): v for k, v in results.items()}, indent=1))

    # Profile the slowest ConvLens cpu operation (by its steady-state median), plus VGG16 Grad-CAM and
    # the batched block5_conv1 grid (the case that dominates the full run) when they are not it.
    profiles = []
    cpu = [(med(field(results, k, "second_s")) or 0, k, a) for k, a in m if k[-1] == "convlens-cpu" and k[0] != "load"]
    if cpu:
        slowest = max(cpu, key=lambda c: c[0])
        wanted = [slowest] + [c for c in cpu if c is not slowest and c[1][:4] in (
            ("gradcam", "vgg16", "", ""), ("filters", "vgg16", "block5_conv1", "batched"))]
        for i, (secs, k, argv) in enumerate(wanted):
            r = run_one([argv[0], "profile"] + argv[2:], timeout)
            title = " ".join(x for x in k if x)
            profiles.append({"title": f"{'slowest ConvLens cpu case: ' if i == 0 else ''}`{title}` ({fmt_s(secs)} median)",
                             "report": r if "error" not in r else {}, "notes": r.get("error", "")})
    meta["load_end"] = sh("cut -d' ' -f1-3 /proc/loadavg")
    write_results(args.out, results, args, meta, profiles, time.perf_counter() - t0)
    print(f"wrote {args.out} in {(time.perf_counter() - t0) / 60:.1f} min", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
