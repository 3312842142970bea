#!/usr/bin/env python3
"""The PyTorch peer of `make bench`: what a user would otherwise run on the CPU.

One process measures one thing and prints one JSON line, in the same shape as
`cargo run --example bench -- run ...` (see examples/bench.rs):

    python bench/peer_torch.py run --case gradcam --impl pgc --model vgg16 --weights W --photo P
    python bench/peer_torch.py run --case gradcam --impl chollet --model lite0 --weights W --photo P
    python bench/peer_torch.py run --case filters --model vgg16 --weights W --layer block3_conv1 \
        --filters 64 --steps 40 --mode batched|single
    python bench/peer_torch.py run --case activations --model vgg16 --weights W --photo P
    python bench/peer_torch.py run --case load --model lite0 --weights W
    python bench/peer_torch.py versions

Both sides read the same ConvLens safetensors file (our format: conv weights OIHW like torch,
dense weights [in, out] with the channels-first flatten, so they are transposed for nn.Linear;
f16 values widened to f32). torch runs with torch.set_num_threads(2).
"""
import time

T_START = time.perf_counter()  # before importing torch: its import is part of a cold start

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
import lite0_torch  # noqa: E402  (the fixtures' EfficientNet-Lite0, shared)

T_IMPORTED = time.perf_counter()
torch.set_num_threads(2)

CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def status_mib(field):
    """A /proc/self/status field in MiB (VmHWM: peak resident set; VmRSS: current)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


# --------------------------------------------------------------------------------------------
# Models, built from our weights file
# --------------------------------------------------------------------------------------------
class Caffe(nn.Module):
    """Keras "caffe": RGB -> BGR, minus the ImageNet BGR means (inside the model, so the
    filter-pattern gradient reaches pixel space as in ConvLens)."""

    def forward(self, x):
        return x.flip(1) - x.new_tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)


class Centered127(nn.Module):
    def forward(self, x):
        return (x - 127.0) / 128.0


class ConvRelu(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU())


VGG_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


class Vgg16(nn.Module):
    """Keras VGG16 layout with the Keras layer names: features.<name> is conv+ReLU or a pool."""

    def __init__(self):
        super().__init__()
        layers, cin = OrderedDict(), 3
        for b, n, w in VGG_BLOCKS:
            for i in range(1, n + 1):
                layers[f"block{b}_conv{i}"] = ConvRelu(cin, w)
                cin = w
            layers[f"block{b}_pool"] = nn.MaxPool2d(2)
        self.pre = Caffe()
        self.features = nn.Sequential(layers)
        self.fc1 = nn.Linear(512 * 7 * 7, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.predictions = nn.Linear(4096, 1000)

    def forward(self, x):
        x = torch.flatten(self.features(self.pre(x)), 1)  # channels-first flatten, as ours
        return self.predictions(F.relu(self.fc2(F.relu(self.fc1(x)))))

    def spatial_layers(self):
        return list(self.features.named_children())

    def until(self, name):
        """The network from pixels to layer `name` (Keras `Model(inputs, layer.output)`)."""
        mods = [self.pre]
        for n, m in self.features.named_children():
            mods.append(m)
            if n == name:
                return nn.Sequential(*mods)
        raise KeyError(name)

    @staticmethod
    def state_dict_from(ours):
        sd = {}
        for b, n, _ in VGG_BLOCKS:
            for i in range(1, n + 1):
                k = f"block{b}_conv{i}"
                sd[f"features.{k}.0.weight"] = ours[f"{k}.weight"]
                sd[f"features.{k}.0.bias"] = ours[f"{k}.bias"]
        for k in ("fc1", "fc2", "predictions"):
            sd[f"{k}.weight"] = ours[f"{k}.weight"].t()  # ours [in, out] -> nn.Linear [out, in]
            sd[f"{k}.bias"] = ours[f"{k}.bias"]
        return sd


class Lite0(lite0_torch.Lite0):
    """The fixtures' EfficientNet-Lite0 (tests/fixtures/lite0_torch.py) with its preprocessing inside,
    so the gradient reaches pixel space as in ConvLens."""

    def __init__(self):
        super().__init__()
        self.pre = Centered127()

    def forward(self, x):
        return super().forward(self.pre(x))

    def spatial_layers(self):
        return [(name, module) for module, name in self.stat_modules()]

    def state_dict_from(self, ours):
        sd = {k: v for k, v in ours.items() if k != "_fc.weight"}
        sd["_fc.weight"] = ours["_fc.weight"].t()  # ours [in, out] -> nn.Linear [out, in]
        for name, m in self.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                sd[f"{name}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
        return sd


MODELS = {"vgg16": Vgg16, "lite0": Lite0, "efficientnet-lite0": Lite0}
CAM_LAYER = {"vgg16": "block5_conv3", "lite0": "_conv_head", "efficientnet-lite0": "_conv_head"}


def load(args):
    """Our safetensors -> eval-mode model. Built on the meta device and filled with the file's
    values (assign=True): no wasted random initialization, the fastest idiom torch offers."""
    t0 = time.perf_counter()
    ours = load_file(args.weights)
    t1 = time.perf_counter()
    ours = {k: v.float() for k, v in ours.items()}  # f16 -> f32, as ConvLens computes in f32
    with torch.device("meta"):
        model = MODELS[args.model]()
    sd = model.state_dict_from(ours)
    model.load_state_dict({k: v.contiguous() for k, v in sd.items()}, strict=True, assign=True)
    model.eval()
    del ours, sd
    t2 = time.perf_counter()
    return model, {"import_s": T_IMPORTED - T_START, "read_s": t1 - t0, "parse_s": 0.0, "build_s": t2 - t1,
                   "load_s": t2 - t0, "rss_after_load_mib": status_mib("VmRSS"),
                   "adapter": f"torch {torch.__version__} CPU, {torch.get_num_threads()} threads"}


def squashed_pixels(photo):
    """Bilinear squash to 224x224 (no crop), as ConvLens -> [1, 3, 224, 224] float 0-255."""
    a = np.asarray(photo.resize((224, 224), Image.Resampling.BILINEAR), dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None]))


# --------------------------------------------------------------------------------------------
# Operations
# --------------------------------------------------------------------------------------------
def gradcam_pgc(model, photo, layer_name):
    """pytorch-grad-cam's GradCAM, as its README shows (targets=None: the top class's logit)."""
    from pytorch_grad_cam import GradCAM  # imported (and timed as start-up) in run()

    layer = dict(model.spatial_layers())[layer_name]
    x = squashed_pixels(photo)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        heat = cam(input_tensor=x, targets=None)[0]  # 224x224, (m - min) / max
        top = int(cam.outputs.argmax(1)[0])
    return {"class": top, "layer": layer_name, "shape": list(heat.shape)}


def gradcam_chollet(model, photo, layer_name):
    """Chollet 5.4.3 in plain torch: gradient of the top class's logit w.r.t. the layer output
    (hook + autograd.grad: no weight gradients), channel weights = mean over H, W, channel-weighted
    mean of the activation, ReLU, divided by the max. ConvLens's formula exactly."""
    layer = dict(model.spatial_layers())[layer_name]
    store = {}
    hook = layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("a", out))
    try:
        x = squashed_pixels(photo)
        with torch.enable_grad():
            logits = model(x)
            top = int(logits.argmax(1)[0])
            (g,) = torch.autograd.grad(logits[0, top], store["a"])
    finally:
        hook.remove()
    a, g = store["a"].detach()[0], g[0]
    cam = torch.relu((a * g.mean(dim=(1, 2))[:, None, None]).mean(dim=0))
    mx = cam.max()
    cam = cam / mx if mx > 0 else cam
    return {"class": top, "layer": layer_name, "shape": list(cam.shape), "map": cam.flatten().tolist()}


def uniform_noise(seed, n):
    """ConvLens's SplitMix64 uniform noise (src/viz/filters.rs), bit for bit."""
    with np.errstate(over="ignore"):
        k = np.uint64(0x9E3779B97F4A7C15)
        state = np.uint64(seed) ^ k
        z = state + k * np.arange(1, n + 1, dtype=np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24)


def deprocess(x):
    """The book's deprocess_image, per image [3, S, S] -> uint8 [S, S, 3]."""
    x = x - x.mean()
    x = x / (x.std() + 1e-5) * 0.1 + 0.5
    return (np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def ascent(body, first, count, steps, size=64, step_size=1.0):
    """The book's 40 steps of x += grads / rms(grads) from gray noise, for filters
    first..first+count as one batch (each image's loss is its own filter's mean activation)."""
    x = torch.from_numpy(uniform_noise(0, count * 3 * size * size) * 20 + 128).reshape(count, 3, size, size)
    rows, chans = torch.arange(count), torch.arange(first, first + count)
    loss = 0.0
    for _ in range(steps):
        x.requires_grad_(True)
        act = body(x)
        per_image = act[rows, chans].mean(dim=(1, 2))
        (g,) = torch.autograd.grad(per_image.sum(), x)
        g = g / (g.square().mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-5)
        x = (x.detach() + g * step_size)
        loss = float(per_image.detach().mean())
    images = [deprocess(img) for img in x.numpy()]
    return loss, images


def filters(model, args):
    body = model.until(args.layer)
    for p in body.parameters():  # the book differentiates w.r.t. the input only
        p.requires_grad_(False)
    if args.mode == "single":
        losses = [ascent(body, i, 1, args.steps)[0] for i in range(args.filters)]
    else:
        losses = [ascent(body, 0, args.filters, args.steps)[0]]
    return {"final_loss": float(np.mean(losses))}


def viridis_lut():
    from matplotlib import colormaps

    return (colormaps["viridis"](np.arange(256))[:, :3] * 255).round().astype(np.uint8)


def layer_grid(a, lut, per_row=16, margin=1, background=(24, 24, 28)):
    """The book's channel grid: each channel -mean, /std, x64, +128, clipped to 0-255 (a constant
    channel is mid-gray), coloured, enlarged to >= 32 px, tiled 16 per row. a: [C, H, W]."""
    c, h, w = a.shape
    mean = a.mean(axis=(1, 2), keepdims=True)
    std = a.std(axis=(1, 2), keepdims=True)
    z = np.where(std > 0, (a - mean) / np.where(std > 0, std, 1), 0)
    levels = np.clip(z * 64 + 128, 0, 255).astype(np.uint8)
    f = max(32 // max(h, w), 1)
    tiles = lut[levels].repeat(f, axis=1).repeat(f, axis=2)  # [C, H*f, W*f, 3]
    th, tw = h * f, w * f
    cols = min(per_row, c)
    rows = -(-c // cols)
    grid = np.empty((rows * th + (rows + 1) * margin, cols * tw + (cols + 1) * margin, 3), np.uint8)
    grid[:] = background
    for i in range(c):
        r, q = divmod(i, cols)
        y, x = margin + r * (th + margin), margin + q * (tw + margin)
        grid[y:y + th, x:x + tw] = tiles[i]
    return grid


def activations(model, photo, lut):
    """torch forward with hooks on every conv/pool layer, then the same standardization and
    tiling in numpy."""
    outs, hooks = [], []
    for name, m in model.spatial_layers():
        hooks.append(m.register_forward_hook(lambda _m, _i, o, n=name: outs.append((n, o))))
    try:
        with torch.no_grad():
            model(squashed_pixels(photo))
    finally:
        for h in hooks:
            h.remove()
    pixels, means = 0, []
    for _name, o in outs:
        a = o[0].numpy()
        g = layer_grid(a, lut)
        pixels += g.shape[0] * g.shape[1]
        means.append(float(a.mean()))
    return {"layers": len(outs), "grid_pixels": pixels, "layer_means": means}


def run(args):
    t = time.perf_counter()
    if args.case == "gradcam" and args.impl == "pgc":
        import pytorch_grad_cam  # noqa: F401 - a user's script imports it up front (cv2, matplotlib, ...)
    import_s = T_IMPORTED - T_START + time.perf_counter() - t
    model, timings = load(args)
    timings["import_s"] = import_s
    photo = Image.open(args.photo).convert("RGB")
    photo.load()
    layer = args.layer or CAM_LAYER[args.model]
    lut = viridis_lut() if args.case == "activations" else None
    ops = {
        "gradcam": lambda: (gradcam_pgc if args.impl == "pgc" else gradcam_chollet)(model, photo, layer),
        "filters": lambda: filters(model, args),
        "activations": lambda: activations(model, photo, lut),
    }
    times, check = [], None
    if args.case != "load":
        for _ in range(2):
            t = time.perf_counter()
            check = ops[args.case]()
            times.append(time.perf_counter() - t)
    name = {"pgc": "torch-pgc", "chollet": "torch-chollet"}.get(args.impl, "torch")
    print(json.dumps({"impl": name, "load": timings, "first_s": times[0] if times else None,
                      "second_s": times[1] if times else None, "peak_rss_mib": status_mib("VmHWM"),
                      "check": check}))


def versions():
    import importlib.metadata as md

    out = {p: md.version(p) for p in ("torch", "torchvision", "grad-cam", "numpy", "safetensors", "pillow")}
    out["python"] = sys.version.split()[0]
    out["torch_threads"] = torch.get_num_threads()
    out["torch_parallel"] = torch.__config__.parallel_info().splitlines()[:6]
    print(json.dumps(out))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["run", "versions"])
    p.add_argument("--case", choices=["load", "gradcam", "filters", "activations"])
    p.add_argument("--impl", default="torch", choices=["torch", "pgc", "chollet"])
    p.add_argument("--model", default="vgg16", choices=sorted(MODELS))
    p.add_argument("--weights")
    p.add_argument("--photo", default="www/samples/cat.jpg")
    p.add_argument("--layer")
    p.add_argument("--filters", type=int, default=64)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--mode", default="batched", choices=["batched", "single"])
    args = p.parse_args()
    if args.command == "versions":
        return versions()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
