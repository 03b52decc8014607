#!/usr/bin/env python3
"""PyTorch (CPU) twin of fuselab's Chameleon P3-Mask trainer, for timing against the Rust/burn one.

Ports, operation for operation where it matters:
  - ml/src/face/dlib.rs      dlib's serialisation (dlib_face_recognition_resnet_model_v1.dat)
  - ml/src/face/resnet.rs    dlib's ResNet-29 (150x150 RGB 0..255, minus the file's means, / 256)
  - ml/src/face/faceres.rs   faceres, a MobileNet-v1 from a tfjs graph model (224x224 RGB 0..255)
  - shared/src/mask/mod.rs   FaceCanvas (from_box, boxed_face, round_trip), bilinear_matrix
  - ml/src/mask.rs           the objective, the signed step, the lambda rule, splitmix64 init

Faces come from facenet-pytorch 2.6.0's MTCNN (the largest face scoring >= 0.9 with a side of at
least 30 px, as backend/src/mask.rs picks it).

    python tests/bench/p3mask_torch.py --check       # parity against dlib / TensorFlow.js numbers
    python tests/bench/p3mask_torch.py --epochs 5    # time the training loop

See tests/bench/README.md.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
GOLDEN = os.path.join(REPO, "backend", "tests", "golden")
DEFAULT_DATA = os.environ.get("FUSELAB_DATA_DIR", "/var/cache/fuselab/data")

MASK_SIDE = 112
MARGIN = 30
MASK_LEN = MASK_SIDE * MASK_SIDE * 3
PHOTOS = ["biden.jpg", "obama.jpg", "obama2.jpg", "obama3.jpg"]  # sorted, as the CLI reads a folder


# --------------------------------------------------------------------------------------------
# dlib's serialisation (ml/src/face/dlib.rs)
# --------------------------------------------------------------------------------------------
class DlibError(Exception):
    pass


class Reader:
    def __init__(self, data, file):
        self.b = data
        self.at = 0
        self.file = file

    def invalid(self, what):
        return DlibError(f"{self.file}: byte {self.at}: {what}")

    def take(self, n, what):
        if self.at + n > len(self.b):
            raise DlibError(f"{self.file}: ends at byte {self.at} while reading {what}")
        out = self.b[self.at:self.at + n]
        self.at += n
        return out

    def int(self):
        control = self.take(1, "an integer")[0]
        n = control & 0x0F
        if control & 0x70 or not 1 <= n <= 8:
            self.at -= 1
            raise self.invalid(f"control byte {control:#04x} is not a packed integer's")
        value = int.from_bytes(self.take(n, "an integer"), "little")
        return -value if control & 0x80 else value

    def size(self, what):
        v = self.int()
        if v < 0:
            raise self.invalid(f"{what} is {v}, expected a non-negative size")
        return v

    def string(self):
        n = self.size("a string's length")
        return self.take(n, "a string").decode("utf-8")

    def tag(self, expected):
        found = self.string()
        if found != expected:
            raise self.invalid(f"found `{found}`, expected `{expected}`")

    def float(self):
        mantissa, exponent = self.int(), self.int()
        return 0.0 if mantissa == 0 else math.ldexp(float(mantissa), exponent)

    def boolean(self):
        c = self.take(1, "a bool")
        if c not in (b"0", b"1"):
            raise self.invalid(f"bool byte {c!r}")
        return c == b"1"

    def tensor(self):
        version = self.int()
        if version != 2:
            raise self.invalid(f"tensor version {version}, expected 2")
        dims = [self.size("a tensor dimension") for _ in range(4)]
        count = int(np.prod(dims))
        raw = self.take(count * 4, "tensor data")
        return dims, np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def alias(self):
        version = self.int()
        if version != 1:
            raise self.invalid(f"alias_tensor version {version}, expected 1")
        return [self.size("an alias_tensor dimension") for _ in range(4)]


def _layer_details(r):
    tag = r.string()
    if tag == "con_4":
        _, params = r.tensor()
        filters = r.size("num_filters")
        kernel = (r.size("k"), r.size("k"))
        stride = (r.size("s"), r.size("s"))
        padding = (r.size("p"), r.size("p"))
        r.alias(); r.alias()
        for _ in range(4):
            r.float()
        return {"kind": "conv", "filters": filters, "kernel": kernel, "stride": stride,
                "padding": padding, "params": params}
    if tag == "affine_":
        _, params = r.tensor()
        r.alias(); r.alias(); r.int()
        return {"kind": "affine", "params": params}
    if tag == "relu_":
        return {"kind": "relu"}
    if tag == "add_prev_":
        return {"kind": "add_prev"}
    if tag in ("avg_pool_2", "max_pool_2"):
        kernel = (r.size("k"), r.size("k"))
        stride = (r.size("s"), r.size("s"))
        padding = (r.size("p"), r.size("p"))
        return {"kind": "avg_pool" if tag == "avg_pool_2" else "max_pool", "kernel": kernel,
                "stride": stride, "padding": padding}
    if tag == "fc_2":
        outputs = r.size("num_outputs")
        inputs = r.size("num_inputs")
        _, params = r.tensor()
        r.alias(); r.alias()
        bias_mode = r.int()
        if bias_mode != 1:
            raise r.invalid(f"fc layer with bias mode {bias_mode}; only 1 (no bias) is supported")
        for _ in range(4):
            r.float()
        return {"kind": "fc", "inputs": inputs, "outputs": outputs, "params": params}
    raise r.invalid(f"layer `{tag}` is not one the face models use")


def _add_layer_trailer(r):
    for _ in range(3):
        r.boolean()
    for _ in range(3):
        r.tensor()


def read_metric_net(data, file="dlib_face_recognition_resnet_model_v1.dat"):
    """A loss_metric network over input_rgb_image_sized: (means, size, layers input first)."""
    r = Reader(data, file)
    if r.int() != 1:
        raise r.invalid("loss layer version, expected 1")
    r.tag("loss_metric_2")
    r.float(); r.float()
    versions = []
    while True:
        v = r.int()
        versions.append(v)
        if v == 3:
            break
        if v not in (1, 2):
            raise r.invalid(f"layer version {v}, expected 1, 2 or 3")
    r.tag("input_rgb_image_sized")
    means = [r.float() for _ in range(3)]
    size = (r.size("rows"), r.size("cols"))
    layers = [_layer_details(r)]
    _add_layer_trailer(r)
    if r.int() != 1:
        raise r.invalid("sample expansion factor, expected 1")
    for v in list(reversed(versions))[1:]:
        if v == 2:
            layers.append(_layer_details(r))
            _add_layer_trailer(r)
        else:
            layers.append({"kind": "tag_or_skip"})
    if r.at != len(data):
        raise r.invalid(f"{len(data) - r.at} bytes left after the last layer")
    return np.array(means, dtype=np.float32), size, layers


# --------------------------------------------------------------------------------------------
# dlib's ResNet-29 (ml/src/face/resnet.rs)
# --------------------------------------------------------------------------------------------
STAGES = [(32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True)]


class DlibResNet(torch.nn.Module):
    """[b, 3, 150, 150] RGB 0..255 -> [b, 128] raw descriptors."""

    input_size = (150, 150)
    name = "dlib"

    def __init__(self, path):
        super().__init__()
        with open(path, "rb") as f:
            means, size, layers = read_metric_net(f.read())
        if tuple(size) != (150, 150):
            raise DlibError(f"input {size}, expected 150x150")
        self.register_buffer("means", torch.from_numpy(means).reshape(1, 3, 1, 1))
        at = [0]

        def expect(kind, **fields):
            layer = layers[at[0]]
            if layer["kind"] != kind or any(layer[k] != v for k, v in fields.items()):
                raise DlibError(f"layer {at[0]} is {layer['kind']}, expected {kind} {fields}")
            at[0] += 1
            return layer

        def conv(filters, inputs, k, stride):
            padding = k // 2 if stride == 1 else 0
            c = expect("conv", filters=filters, kernel=(k, k), stride=(stride, stride),
                       padding=(padding, padding))
            per = inputs * k * k
            p = c["params"]
            if len(p) != filters * per + filters:
                raise DlibError(f"conv {at[0] - 1}: {len(p)} parameters")
            w = p[:filters * per].reshape(filters, inputs, k, k).copy()
            b = p[filters * per:].copy()
            a = expect("affine")["params"]
            if len(a) != 2 * filters:
                raise DlibError(f"affine {at[0] - 1}: {len(a)} parameters")
            gamma, beta = a[:filters], a[filters:]
            w *= gamma[:, None, None, None]
            b = b * gamma + beta
            return (torch.nn.Parameter(torch.from_numpy(w), requires_grad=False),
                    torch.nn.Parameter(torch.from_numpy(b.astype(np.float32)), requires_grad=False),
                    stride, padding)

        self.stem = conv(32, 3, 7, 2)
        self.stem_w, self.stem_b = self.stem[0], self.stem[1]
        expect("relu")
        expect("max_pool", kernel=(3, 3), stride=(2, 2), padding=(0, 0))
        self.blocks = []
        params = torch.nn.ParameterList()
        channels = 32
        for filters, count, first_down in STAGES:
            for i in range(count):
                down = first_down and i == 0
                expect("tag_or_skip")
                first = conv(filters, channels, 3, 2 if down else 1)
                expect("relu")
                second = conv(filters, filters, 3, 1)
                if down:
                    expect("tag_or_skip"); expect("tag_or_skip")
                    expect("avg_pool", kernel=(2, 2), stride=(2, 2), padding=(0, 0))
                expect("add_prev")
                expect("relu")
                self.blocks.append((first, second, down))
                params.extend([first[0], first[1], second[0], second[1]])
                channels = filters
        self.block_params = params
        expect("avg_pool", kernel=(0, 0), stride=(1, 1), padding=(0, 0))
        fc = expect("fc", inputs=256, outputs=128)
        self.fc = torch.nn.Parameter(torch.from_numpy(fc["params"].reshape(256, 128).copy()),
                                     requires_grad=False)
        if at[0] != len(layers):
            raise DlibError(f"{len(layers) - at[0]} layers left over")

    @staticmethod
    def _conv(x, c):
        w, b, stride, padding = c
        return F.conv2d(x, w, b, stride=stride, padding=padding)

    def forward(self, chips):
        x = (chips - self.means) / 256.0
        x = F.relu(self._conv(x, self.stem))
        x = F.max_pool2d(x, 3, 2)
        for first, second, down in self.blocks:
            main = self._conv(F.relu(self._conv(x, first)), second)
            shortcut = F.avg_pool2d(x, 2, 2) if down else x
            x = F.relu(add_prev(main, shortcut))
        return x.mean(dim=(2, 3)) @ self.fc


def add_prev(a, b):
    """dlib's add_prev: sum over the larger of each dimension, the smaller zero-filled at the end
    (channels), bottom and right (rows, columns)."""
    (_, ca, ha, wa), (_, cb, hb, wb) = a.shape, b.shape
    c, h, w = max(ca, cb), max(ha, hb), max(wa, wb)

    def grow(t, tc, th, tw):
        if (tc, th, tw) == (c, h, w):
            return t
        return F.pad(t, (0, w - tw, 0, h - th, 0, c - tc))

    return grow(a, ca, ha, wa) + grow(b, cb, hb, wb)


# --------------------------------------------------------------------------------------------
# faceres (ml/src/face/faceres.rs)
# --------------------------------------------------------------------------------------------
def read_tfjs(manifest_path, weights_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
    with open(weights_path, "rb") as f:
        data = f.read()
    out, at = {}, 0
    for spec in manifest["weightsManifest"][0]["weights"]:
        shape = [int(d) for d in spec["shape"]]
        count = int(np.prod(shape)) if shape else 1
        q = (spec.get("quantization") or {}).get("dtype")
        dtype = spec["dtype"]
        if dtype == "float32" and q == "float16":
            width, kind = 2, "<f2"
        elif dtype == "float32" and q is None:
            width, kind = 4, "<f4"
        elif dtype == "int32" and q is None:
            width, kind = 4, None
        else:
            raise ValueError(f"`{spec['name']}` is {dtype} quantised as {q}")
        end = at + count * width
        if end > len(data):
            raise ValueError(f"faceres.bin has {len(data)} bytes, the manifest describes {end}")
        if kind is not None:
            out[spec["name"]] = np.frombuffer(data[at:end], dtype=kind).astype(np.float32).reshape(shape)
        at = end
    if at != len(data):
        raise ValueError(f"faceres.bin has {len(data)} bytes, the manifest describes {at}")
    return out


FACERES_STRIDES = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
FACERES_WIDTHS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]


class Faceres(torch.nn.Module):
    """[b, 3, 224, 224] RGB 0..255 (no other normalisation: the graph feeds input_1 straight to
    conv1) -> [b, 1024], the global average pool."""

    input_size = (224, 224)
    name = "faceres"

    def __init__(self, manifest_path, weights_path):
        super().__init__()
        w = read_tfjs(manifest_path, weights_path)

        def get(name, shape):
            v = w[name]
            if list(v.shape) != list(shape):
                raise ValueError(f"`{name}` has shape {list(v.shape)}, expected {shape}")
            return v

        def relu6(prefix):
            top, bottom = get(f"{prefix}/Cast", []), get(f"{prefix}/Const_1", [])
            if float(top) != 6.0 or float(bottom) != 0.0:
                raise ValueError(f"{prefix} clips to {bottom}..{top}, expected 0..6")

        def param(a):
            return torch.nn.Parameter(torch.from_numpy(np.ascontiguousarray(a)), requires_grad=False)

        self.layers = []  # (weight OIHW, scale or None, bias, stride, groups)
        plist = torch.nn.ParameterList()

        def add(weight, scale, bias, stride, groups):
            ps = [param(weight), None if scale is None else param(scale), param(bias)]
            self.layers.append((ps[0], ps[1], ps[2], stride, groups))
            plist.extend([p for p in ps if p is not None])

        relu6("conv1_relu")
        add(get("conv1/convolution/merged_input", [3, 3, 3, 32]).transpose(3, 2, 0, 1), None,
            get("conv1_bn/batchnorm_1/sub", [32]), 2, 1)
        channels = 32
        for i, (stride, out) in enumerate(zip(FACERES_STRIDES, FACERES_WIDTHS)):
            n = i + 1
            relu6(f"conv_dw_{n}_relu"); relu6(f"conv_pw_{n}_relu")
            add(get(f"conv_dw_{n}/depthwise_kernel", [3, 3, channels, 1]).transpose(2, 3, 0, 1),
                get(f"conv_dw_{n}_bn/batchnorm_1/mul", [channels]),
                get(f"conv_dw_{n}_bn/batchnorm_1/sub", [channels]), stride, channels)
            add(get(f"conv_pw_{n}/convolution/merged_input", [1, 1, channels, out]).transpose(3, 2, 0, 1),
                None, get(f"conv_pw_{n}_bn/batchnorm_1/sub", [out]), 1, 1)
            channels = out
        self.plist = plist

    def forward(self, faces):
        x = faces
        for weight, scale, bias, stride, groups in self.layers:
            k = weight.shape[2]
            h = x.shape[2]
            # TensorFlow's SAME: the odd pixel of padding goes at the bottom and right.
            out = -(-h // stride)
            total = max((out - 1) * stride + k - h, 0)
            begin, end = total // 2, total - total // 2
            if begin == end:
                y = F.conv2d(x, weight, None, stride=stride, padding=begin, groups=groups)
            else:
                y = F.conv2d(F.pad(x, (begin, end, begin, end)), weight, None, stride=stride,
                             groups=groups)
            c = bias.shape[0]
            if scale is not None:
                y = y * scale.reshape(1, c, 1, 1)
            x = (y + bias.reshape(1, c, 1, 1)).clamp(0.0, 6.0)
        return x.mean(dim=(2, 3))


def tf_legacy_resize(image, size):
    """TF's resize_bilinear without corner alignment or half-pixel centres (tfjs's default), as
    faceres.rs's resize_bilinear: HxWx3 uint8 -> [1, 3, size, size] float32."""
    h, w = image.shape[:2]
    img = image.astype(np.float32)
    sy, sx = np.float32(h) / np.float32(size), np.float32(w) / np.float32(size)
    fy = np.arange(size, dtype=np.float32) * sy
    fx = np.arange(size, dtype=np.float32) * sx
    y0 = np.floor(fy).astype(np.int64); y1 = np.minimum(y0 + 1, h - 1); dy = (fy - y0.astype(np.float32))[:, None, None]
    x0 = np.floor(fx).astype(np.int64); x1 = np.minimum(x0 + 1, w - 1); dx = (fx - x0.astype(np.float32))[None, :, None]
    a, b = img[y0][:, x0], img[y0][:, x1]
    c, d = img[y1][:, x0], img[y1][:, x1]
    top = a + (b - a) * dx
    bottom = c + (d - c) * dx
    out = top + (bottom - top) * dy
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)[None]))


# --------------------------------------------------------------------------------------------
# Geometry (shared/src/mask/mod.rs), in f32 as the Rust computes it
# --------------------------------------------------------------------------------------------
def sample_at(output, input_):
    f32 = np.float32
    i = np.arange(output, dtype=f32)
    x = np.maximum((i + f32(0.5)) * (f32(input_) / f32(output)) - f32(0.5), f32(0.0))
    x0 = np.minimum(np.floor(x).astype(np.int64), input_ - 1)
    x1 = np.minimum(x0 + 1, input_ - 1)
    w = np.clip(x - x0.astype(f32), f32(0.0), f32(1.0)).astype(f32)
    return x0, x1, w


def bilinear_matrix(output, input_):
    """The output x input matrix of half-pixel bilinear resampling along one axis."""
    x0, x1, w = sample_at(output, input_)
    m = np.zeros((output, input_), dtype=np.float32)
    rows = np.arange(output)
    np.add.at(m, (rows, x0), np.float32(1.0) - w)
    np.add.at(m, (rows, x1), w)
    return m


def resize(image, to):
    """Bilinear resize (half-pixel centres) of an HxWx3 float32 image to `to` = (rows, cols)."""
    rows, cols = image.shape[:2]
    y0, y1, wy = sample_at(to[0], rows)
    x0, x1, wx = sample_at(to[1], cols)
    wx = wx[None, :, None]; wy = wy[:, None, None]
    one = np.float32(1.0)
    top = image[y0][:, x0] * (one - wx) + image[y0][:, x1] * wx
    bottom = image[y1][:, x0] * (one - wx) + image[y1][:, x1] * wx
    return (top * (one - wy) + bottom * wy).astype(np.float32)


class FaceCanvas:
    def __init__(self, face, side, offset):
        self.face, self.side, self.offset = face, side, offset

    @staticmethod
    def from_box(bbox, width, height):
        x0, y0, x1, y1 = (np.float32(v) for v in bbox)
        if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
            return None

        def whole(v, limit):
            return min(int(max(v, np.float32(0.0))), limit)

        left, top = whole(np.floor(x0), width), whole(np.floor(y0), height)
        right, bottom = whole(np.ceil(x1), width), whole(np.ceil(y1), height)
        if right <= left or bottom <= top:
            return None
        w, h = right - left, bottom - top
        side = max(w, h) + MARGIN
        return FaceCanvas((left, top, w, h), side, ((side - w) // 2, (side - h) // 2))

    def boxed_face(self, photo):
        """photo: HxWx3 uint8 -> 112x112x3 float32 (interleaved, 0..255, not rounded)."""
        left, top, w, h = self.face
        crop = photo[top:top + h, left:left + w].astype(np.float64)
        mean = (crop.reshape(-1, 3).sum(axis=0) / (w * h)).astype(np.float32)
        canvas = np.empty((self.side, self.side, 3), dtype=np.float32)
        canvas[:] = mean
        ox, oy = self.offset
        canvas[oy:oy + h, ox:ox + w] = photo[top:top + h, left:left + w].astype(np.float32)
        return resize(canvas, (MASK_SIDE, MASK_SIDE))

    def round_trip(self):
        """(rows, cols, full), each 112x112: rows = D diag(m_rows) U, cols = D diag(m_cols) U,
        full = D U (folded in f64, stored f32)."""
        up = bilinear_matrix(self.side, MASK_SIDE).astype(np.float64)
        down = bilinear_matrix(MASK_SIDE, self.side).astype(np.float64)
        ox, oy = self.offset
        _, _, w, h = self.face

        def fold(keep):
            return (down[:, keep] @ up[keep, :]).astype(np.float32)

        k = np.arange(self.side)
        return (fold((k >= oy) & (k < oy + h)), fold((k >= ox) & (k < ox + w)),
                fold(np.ones(self.side, dtype=bool)))


# --------------------------------------------------------------------------------------------
# The trainer (ml/src/mask.rs)
# --------------------------------------------------------------------------------------------
M64 = (1 << 64) - 1


class Rng:
    """splitmix64, as mask.rs's Rng."""

    def __init__(self, state):
        self.state = state & M64

    def next(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def unit(self):
        return np.float32(self.next() >> 40) / np.float32(1 << 24)

    def between(self, lo, hi):
        lo, hi = np.float32(lo), np.float32(hi)
        return np.float32(lo + (hi - lo) * self.unit())

    def below(self, n):
        return self.next() % n


def gaussian_window(sigma=1.5):
    radius = max(math.ceil(3.0 * np.float32(sigma)), 1)
    k = 2 * radius + 1
    x = np.arange(k, dtype=np.float32) - np.float32(radius)
    g = np.exp(-x * x / np.float32(2.0 * sigma * sigma)).astype(np.float32)
    s = g.sum(dtype=np.float32)
    w = (g[:, None] * g[None, :]) / (s * s)
    return torch.from_numpy(np.repeat(w[None, None].astype(np.float32), 3, axis=0))  # [3,1,k,k]


def ssim(a, b, window):
    """Per-image mean SSIM, TF's conventions (valid 11x11 Gaussian windows, sigma 1.5, L = 255)."""
    def filt(x):
        return F.conv2d(x, window, None, groups=3)

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu_a, mu_b = filt(a), filt(b)
    aa, bb, ab = filt(a * a), filt(b * b), filt(a * b)
    cross = mu_a * mu_b
    sq_a, sq_b = mu_a * mu_a, mu_b * mu_b
    luminance = (2.0 * cross + c1) / (sq_a + sq_b + c1)
    structure = (2.0 * (ab - cross) + c2) / ((aa - sq_a) + (bb - sq_b) + c2)
    return (luminance * structure).mean(dim=(1, 2, 3))


def l2_normalize(x):
    return x / x.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def separable(x, rows, cols_t):
    """rows @ x @ cols_t per image and channel; rows [1 or b, 1, r, h], cols_t [1 or b, 1, w, c]."""
    return rows @ x @ cols_t


class Trainer:
    def __init__(self, models, faces, epsilon=16.0, step=0.255, batch=4, tau=0.03, seed=2023):
        self.models, self.epsilon, self.step_size, self.batch, self.tau = models, epsilon, step, batch, tau
        t = torch.from_numpy
        self.inputs = [(t(bilinear_matrix(m.input_size[0], MASK_SIDE))[None, None],
                        t(np.ascontiguousarray(bilinear_matrix(m.input_size[1], MASK_SIDE).T))[None, None])
                       for m in models]
        self.faces = []
        with torch.no_grad():
            for clean_hwc, canvas in faces:
                clean = t(np.ascontiguousarray(clean_hwc.transpose(2, 0, 1)))[None]
                rows, cols, full = (t(np.ascontiguousarray(m))[None, None] for m in canvas.round_trip())
                cols_t = cols.transpose(2, 3).contiguous()
                full_t = full.transpose(2, 3).contiguous()
                # The clean face takes the same round trip: DSSIM and the angle measure the mask,
                # not the resampling (as ml/src/mask.rs does).
                reference = separable(clean, full, full_t)
                constant = reference - separable(clean, rows, cols_t)
                embeddings = [l2_normalize(m(separable(reference, r, c))) for m, (r, c) in zip(models, self.inputs)]
                self.faces.append(dict(clean=clean, rows=rows, cols_t=cols_t, constant=constant,
                                       reference=reference, embeddings=embeddings))
        rng = Rng(seed)
        delta = np.array([rng.between(-step, step) for _ in range(MASK_LEN)], dtype=np.float32)
        # Interleaved (HWC) as the Rust state keeps it; planar for the tensors.
        self.delta = t(np.ascontiguousarray(delta.reshape(MASK_SIDE, MASK_SIDE, 3).transpose(2, 0, 1)))[None]
        self.lam = np.float32(1.0)
        self.rng_state = rng.state
        self.epoch_no = 0
        self.window = gaussian_window(1.5)

    def adapt_lambda(self, dssim):
        tau, lam = np.float32(self.tau), self.lam
        if dssim <= np.float32(0.9) * tau and lam >= np.float32(1.0 / 129.0):
            self.lam = np.float32(lam / 2)
        elif dssim >= np.float32(1.1) * tau and lam <= 129.0:
            self.lam = np.float32(lam * 2)
        else:
            self.lam = np.float32(1.0)

    def step(self, batch):
        faces = [self.faces[i] for i in batch]
        delta = self.delta.clone().requires_grad_(True)
        cat = lambda key: torch.cat([f[key] for f in faces], 0)
        clean, rows, cols_t, constant = cat("clean"), cat("rows"), cat("cols_t"), cat("constant")
        reference = cat("reference")
        masked = (clean + delta).clamp(0.0, 255.0)
        seen = separable(masked, rows, cols_t) + constant
        dssim = (1.0 - ssim(seen, reference, self.window)) / 2.0
        loss = (dssim - self.tau).clamp_min(0.0).mul(float(self.lam)).sum()
        angles = []
        for k, (model, (r, c)) in enumerate(zip(self.models, self.inputs)):
            v = torch.cat([f["embeddings"][k] for f in faces], 0)
            u = l2_normalize(model(separable(seen, r, c)))
            chord = ((u - v).square().sum(dim=1) + 1e-12).sqrt()
            angle = 2.0 * torch.asin((chord / 2.0).clamp_max(1.0))
            angles.append(float(angle.detach().mean()))
            loss = loss - angle.sum()
        loss.backward()
        g = delta.grad
        with torch.no_grad():
            self.delta = (self.delta - self.step_size * torch.sign(g)).clamp(-self.epsilon, self.epsilon)
        return np.float32(dssim.detach().mean()), angles

    def epoch(self):
        rng = Rng(self.rng_state)
        order = list(range(len(self.faces)))
        for i in range(len(order) - 1, 0, -1):
            j = rng.below(i + 1)
            order[i], order[j] = order[j], order[i]
        steps = [order[i:i + self.batch] for i in range(0, len(order), self.batch)]
        dssims, angle_sums = [], [0.0] * len(self.models)
        for batch in steps:
            d, a = self.step(batch)
            self.adapt_lambda(d)
            dssims.append(float(d))
            angle_sums = [s + x for s, x in zip(angle_sums, a)]
        self.epoch_no += 1
        self.rng_state = rng.state
        n = len(steps)
        return sum(dssims) / n, [s / n for s in angle_sums], float(self.lam)


# --------------------------------------------------------------------------------------------
# Faces, checks, timing
# --------------------------------------------------------------------------------------------
def load_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)


def make_mtcnn():
    from facenet_pytorch import MTCNN
    return MTCNN(keep_all=True, device="cpu")


def training_face(mtcnn, path):
    """The largest face scoring >= 0.9 with a side >= 30 px (backend/src/mask.rs), boxed."""
    photo = load_rgb(path)
    boxes, probs = mtcnn.detect(Image.fromarray(photo))
    if boxes is None:
        raise SystemExit(f"{path}: no face found")
    order = sorted(range(len(boxes)), key=lambda i: -float((boxes[i][2] - boxes[i][0]) * (boxes[i][3] - boxes[i][1])))
    for i in order:
        l, t, r, b = (np.float32(v) for v in boxes[i])
        if probs[i] >= 0.9 and min(r - l, b - t) >= 30.0:
            canvas = FaceCanvas.from_box((l, t, r, b), photo.shape[1], photo.shape[0])
            if canvas is None:
                raise SystemExit(f"{path}: the face's box lies outside the photo")
            return canvas.boxed_face(photo), canvas, (boxes[i], float(probs[i]))
    raise SystemExit(f"{path}: no face with a score of at least 0.9 and a side of 30 px")


def cosine(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def load_models(data_dir):
    face = os.path.join(data_dir, "models", "face")
    t0 = time.perf_counter()
    dlib = DlibResNet(os.path.join(face, "dlib_face_recognition_resnet_model_v1.dat")).eval()
    faceres = Faceres(os.path.join(face, "faceres.json"), os.path.join(face, "faceres.bin")).eval()
    print(f"models loaded in {time.perf_counter() - t0:.2f} s")
    return dlib, faceres


def run_checks(dlib, faceres, data_dir):
    ok = True
    with open(os.path.join(GOLDEN, "faces.json")) as f:
        golden = json.load(f)
    print("== dlib ResNet-29 vs dlib 19.24 on its own chips (golden/faces.json) ==")
    with torch.no_grad():
        for name, record in golden["photos"].items():
            for i, face in enumerate(record["dlib"]):
                chip = load_rgb(os.path.join(GOLDEN, "chips", face["chip"]))
                x = torch.from_numpy(np.ascontiguousarray(chip.transpose(2, 0, 1)))[None].float()
                ours = dlib(x)[0].numpy()
                theirs = np.array(face["descriptor_of_chip"])
                cos = cosine(ours, theirs)
                worst = float(np.abs(ours - theirs).max())
                good = cos >= 0.999
                ok &= good
                print(f"  {name}#{i} ({face['chip']}): cosine {cos:.7f} (1 - cos {1 - cos:.1e}), largest difference {worst:.2e}"
                      f"{'' if good else '  FAIL'}")
    print("== faceres vs TensorFlow.js 4.22 on the chips (golden/faceres.json) ==")
    with open(os.path.join(GOLDEN, "faceres.json")) as f:
        fgolden = json.load(f)
    with torch.no_grad():
        for name, theirs in fgolden["chips"].items():
            chip = load_rgb(os.path.join(GOLDEN, "chips", name))
            ours = faceres(tf_legacy_resize(chip, 224))[0].numpy()
            theirs = np.array(theirs)
            cos = cosine(ours, theirs)
            worst = float(np.abs(ours - theirs).max())
            good = cos >= 0.999
            ok &= good
            print(f"  {name}: cosine {cos:.7f} (1 - cos {1 - cos:.1e}), largest difference {worst:.2e}{'' if good else '  FAIL'}")
    print("== canvas round trip: matrices vs explicit up-sample, paste, down-sample ==")
    canvas = FaceCanvas((0, 0, 40, 25), 70, (15, 22))
    x = (np.arange(MASK_LEN) % 97).astype(np.float32).reshape(MASK_SIDE, MASK_SIDE, 3)
    xp = x + (np.arange(MASK_LEN) % 5).astype(np.float32).reshape(MASK_SIDE, MASK_SIDE, 3)
    cx, cxp = resize(x, (70, 70)), resize(xp, (70, 70))
    cx[22:47, 15:55] = cxp[22:47, 15:55]
    explicit = resize(cx, (MASK_SIDE, MASK_SIDE))
    rows, cols, full = (m.astype(np.float64) for m in canvas.round_trip())
    fast = np.stack([rows @ xp[..., c] @ cols.T + full @ x[..., c] @ full.T - rows @ x[..., c] @ cols.T
                     for c in range(3)], axis=-1)
    worst = float(np.abs(fast - explicit).max())
    good = worst < 1e-2
    ok &= good
    print(f"  largest difference {worst:.2e}{'' if good else '  FAIL'}")
    print("== MTCNN boxes vs facenet-pytorch's recorded ones (golden/faces.json) ==")
    mtcnn = make_mtcnn()
    for name in PHOTOS:
        photo = os.path.join(data_dir, "models", "photos", name)
        boxes, _ = mtcnn.detect(Image.fromarray(load_rgb(photo)))
        ref = golden["photos"][name]["mtcnn"]
        worst = 0.0
        for t in ref:
            nearest = min(boxes, key=lambda b: float(np.abs(np.array(b) - np.array(t["box"])).sum()))
            worst = max(worst, float(np.abs(np.array(nearest) - np.array(t["box"])).max()))
        print(f"  {name}: {len(boxes)} faces (golden {len(ref)}); boxes within {worst:.3f} px")
    print("parity:", "PASS" if ok else "FAIL")
    return ok


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load():
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def breakdown(trainer, reps):
    """Forward + backward of one batch through each model alone (seen -> resize -> model ->
    angle -> d/d seen), and the rest of the step (round trip, SSIM) without the models."""
    faces = trainer.faces[:trainer.batch]
    cat = lambda key: torch.cat([f[key] for f in faces], 0)
    clean, rows, cols_t, constant = cat("clean"), cat("rows"), cat("cols_t"), cat("constant")

    def seen_of(delta):
        return separable((clean + delta).clamp(0.0, 255.0), rows, cols_t) + constant

    def one_model(k):
        model, (r, c) = trainer.models[k], trainer.inputs[k]
        v = torch.cat([f["embeddings"][k] for f in faces], 0)
        seen = seen_of(trainer.delta).detach().requires_grad_(True)
        u = l2_normalize(model(separable(seen, r, c)))
        chord = ((u - v).square().sum(dim=1) + 1e-12).sqrt()
        (-2.0 * torch.asin((chord / 2.0).clamp_max(1.0))).sum().backward()

    def rest():
        delta = trainer.delta.clone().requires_grad_(True)
        seen = seen_of(delta)
        ((1.0 - ssim(seen, cat("reference"), trainer.window)) / 2.0).sum().backward()

    jobs = [(f"{m.name} forward+backward", lambda k=k: one_model(k)) for k, m in enumerate(trainer.models)]
    jobs.append(("round trip + SSIM forward+backward", rest))
    for name, job in jobs:
        job()  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            job()
            times.append(time.perf_counter() - t0)
        print(f"  {name}, batch {len(faces)}: median {statistics.median(times) * 1000:.1f} ms "
              f"of {reps} (min {min(times) * 1000:.1f} ms)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="run the parity checks (and exit unless --epochs given)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs to time (default 5 without --check)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: 2 when timing, 1 for --check alone)")
    ap.add_argument("--data-dir", default=DEFAULT_DATA, help="fuselab's data dir (models/face, models/photos)")
    ap.add_argument("--seed", type=int, default=2023)
    ap.add_argument("--breakdown", type=int, default=0, metavar="REPS",
                    help="after the epochs, time each model's forward+backward alone, REPS times")
    args = ap.parse_args()
    epochs = args.epochs if args.epochs is not None else (0 if args.check else 5)
    threads = args.threads or (2 if epochs > 0 else 1)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(interop {torch.get_num_interop_threads()}), CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, mkldnn {torch.backends.mkldnn.is_available()}; "
          f"python {platform.python_version()}; {cpu_model()}, {os.cpu_count()} CPUs; "
          f"load average {load()}")
    dlib, faceres = load_models(args.data_dir)
    if args.check and not run_checks(dlib, faceres, args.data_dir):
        sys.exit(1)
    if epochs <= 0:
        return

    mtcnn = make_mtcnn()
    faces = []
    for name in PHOTOS:
        clean, canvas, (box, prob) = training_face(mtcnn, os.path.join(args.data_dir, "models", "photos", name))
        print(f"{name}: box {[round(float(v), 1) for v in box]} score {prob:.4f}; face {canvas.face}, "
              f"canvas {canvas.side} px at {canvas.offset}")
        faces.append((clean, canvas))
    del mtcnn

    t0 = time.perf_counter()
    trainer = Trainer([dlib, faceres], faces, seed=args.seed)
    print(f"prepared {len(faces)} faces (clean embeddings, round-trip maps) in {time.perf_counter() - t0:.2f} s")
    names = [m.name for m in trainer.models]
    busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if busy > 0.5:
        print(f"warning: load average {busy:.2f} before timing: other processes share the CPUs, and "
              f"torch's OpenMP threads slow down sharply when a core is taken (see README.md)")
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        dssim, angles, lam = trainer.epoch()
        dt = time.perf_counter() - t0
        times.append(dt)
        shown = ", ".join(f"{n} {a:.4f}" for n, a in zip(names, angles))
        print(f"epoch {trainer.epoch_no}: {dt:.3f} s; DSSIM {dssim:.5f}; angle (rad) {shown}; lambda {lam:g}")
    rest = times[1:] if len(times) > 1 else times
    median = statistics.median(rest)
    steps_per_epoch = math.ceil(len(faces) / trainer.batch)
    print(f"median {median:.3f} s per epoch (epochs 2..{epochs}; fastest {min(rest):.3f} s; "
          f"first, warm-up: {times[0]:.3f} s); "
          f"{median / len(faces):.3f} s per face-step (forward + backward through {' + '.join(names)}); "
          f"{steps_per_epoch} step(s) of batch {trainer.batch} per epoch; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average {load()}")
    if args.breakdown > 0:
        print("breakdown:")
        breakdown(trainer, args.breakdown)


if __name__ == "__main__":
    main()
