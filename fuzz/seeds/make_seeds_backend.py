"""Writes the seed inputs of the ML and backend fuzz targets into fuzz/corpus-seeds/<target>/:
gguf, dlib, image, toml_config, parquet and multipart.

Run from the repository root: `python3 fuzz/seeds/make_seeds_backend.py` (Pillow 13.0.0 and
pyarrow 26.0.1 made the committed corpora's seeds; `pip install pillow pyarrow`). Every seed is
hand-made here, small and valid (the real model files are megabytes); the campaign's corpus,
minimised, is what gets committed under fuzz/corpus/ (docs/fuzzing.md).
"""

import glob
import io
import os
import re
import struct

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

OUT = "fuzz/corpus-seeds"


def put(target, name, data):
    os.makedirs(f"{OUT}/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{OUT}/{target}/{name}", "wb") as f:
        f.write(data)


# --- gguf: version 3 (and 2), every metadata value type, a llama configuration, a gpt2
# tokenizer, and one tensor of each type the reader dequantises.

GGUF_TYPES = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7,
              "str": 8, "arr": 9, "u64": 10, "i64": 11, "f64": 12}
SCALAR = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i",
          "f32": "<f", "bool": "<?", "u64": "<Q", "i64": "<q", "f64": "<d"}


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gvalue(kind, value):
    if kind == "str":
        return gstr(value)
    if kind.startswith("arr:"):
        item = kind[4:]
        out = struct.pack("<IQ", GGUF_TYPES[item], len(value))
        return out + b"".join(gvalue(item, v) for v in value)
    return struct.pack(SCALAR[kind], value)


def gguf(metadata, tensors, version=3, alignment=32):
    """metadata: [(key, kind, value)]; tensors: [(name, dims innermost first, ggml type, data)]."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, value in metadata:
        code = GGUF_TYPES["arr"] if kind.startswith("arr:") else GGUF_TYPES[kind]
        out += gstr(key) + struct.pack("<I", code) + gvalue(kind, value)
    offset = 0
    blobs = []
    for name, dims, code, data in tensors:
        out += gstr(name) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", code, offset)
        blobs.append((offset, data))
        offset += len(data)
        offset = (offset + alignment - 1) // alignment * alignment
    out += b"\0" * (-len(out) % alignment)
    start = len(out)
    for at, data in blobs:
        out += b"\0" * (start + at - len(out))
        out += data
    return out


def f16(x):
    return struct.pack("<e", x)


def blocks(kind, n):
    """n values' worth of blocks of a quantised type."""
    if kind == "f32":
        return b"".join(struct.pack("<f", i / 4 - 1) for i in range(n))
    if kind == "f16":
        return b"".join(f16(i / 8 - 2) for i in range(n))
    if kind == "bf16":
        return b"".join(struct.pack("<f", i / 2 - 3)[2:] for i in range(n))
    out = b""
    for b in range(n // 32):
        if kind == "q4_0":
            out += f16(0.5 + b) + bytes((i * 17 + b) & 0xFF for i in range(16))
        elif kind == "q4_1":
            out += f16(0.25) + f16(-1.0) + bytes((i * 31 + b) & 0xFF for i in range(16))
        elif kind == "q8_0":
            out += f16(0.125) + bytes((i * 7 - 100 + b) & 0xFF for i in range(32))
    return out


GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q8_0": 8, "bf16": 30}

TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "c", "ab", "bc", "abc",
          "Ġ", "Ġa", "1", "2", "u", "s", "e", "r", "us", "er", "user", "n", "é", "Ã©", ",", "\n",
          "Ċ"]
MERGES = ["a b", "b c", "ab c", "Ġ a", "u s", "e r", "us er"]
TOKENIZER = [
    ("tokenizer.ggml.model", "str", "gpt2"),
    ("tokenizer.ggml.pre", "str", "smollm"),
    ("tokenizer.ggml.tokens", "arr:str", TOKENS),
    ("tokenizer.ggml.token_type", "arr:i32", [3, 3, 3] + [1] * (len(TOKENS) - 3)),
    ("tokenizer.ggml.merges", "arr:str", MERGES),
    ("tokenizer.ggml.bos_token_id", "u32", 1),
]


def llama(d=16, ffn=32, layers=1, heads=4, kv=2, vocab=len(TOKENS), kind="f32", tied=True):
    """A complete tiny llama: configuration, tokenizer and every weight the loader takes."""
    meta = [
        ("general.architecture", "str", "llama"),
        ("general.name", "str", "fuzz"),
        ("general.alignment", "u32", 32),
        ("llama.block_count", "u32", layers),
        ("llama.context_length", "u32", 64),
        ("llama.embedding_length", "u32", d),
        ("llama.feed_forward_length", "u32", ffn),
        ("llama.attention.head_count", "u32", heads),
        ("llama.attention.head_count_kv", "u32", kv),
        ("llama.rope.freq_base", "f32", 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
    ] + TOKENIZER
    kvd = kv * (d // heads)
    weights = [("token_embd.weight", [d, vocab]), ("output_norm.weight", [d])]
    if not tied:
        weights.append(("output.weight", [d, vocab]))
    for i in range(layers):
        weights += [
            (f"blk.{i}.attn_norm.weight", [d]), (f"blk.{i}.ffn_norm.weight", [d]),
            (f"blk.{i}.attn_q.weight", [d, d]), (f"blk.{i}.attn_k.weight", [d, kvd]),
            (f"blk.{i}.attn_v.weight", [d, kvd]), (f"blk.{i}.attn_output.weight", [d, d]),
            (f"blk.{i}.ffn_gate.weight", [d, ffn]), (f"blk.{i}.ffn_up.weight", [d, ffn]),
            (f"blk.{i}.ffn_down.weight", [ffn, d]),
        ]
    tensors = []
    for name, dims in weights:
        n = 1
        for x in dims:
            n *= x
        k = "f32" if len(dims) == 1 else kind
        tensors.append((name, dims, GGML[k], blocks(k, n)))
    return gguf(meta, tensors)


every_type = [
    ("k.u8", "u8", 200), ("k.i8", "i8", -5), ("k.u16", "u16", 60000), ("k.i16", "i16", -300),
    ("k.u32", "u32", 4000000000), ("k.i32", "i32", -7), ("k.f32", "f32", 0.5),
    ("k.bool", "bool", True), ("k.str", "str", "héllo"), ("k.u64", "u64", 2**40),
    ("k.i64", "i64", -(2**40)), ("k.f64", "f64", -2.5), ("k.arr", "arr:u32", [1, 2, 3]),
    ("k.strs", "arr:str", ["x", "yz"]), ("general.alignment", "u64", 64),
]
put("gguf", "every_value_type.gguf", gguf(every_type, [], alignment=64))
put("gguf", "every_tensor_type.gguf", gguf(
    [("general.architecture", "str", "llama")],
    [(f"t.{k}", [32, 2] if k.startswith("q") else [3, 2], GGML[k],
      blocks(k, 64 if k.startswith("q") else 6)) for k in GGML]))
put("gguf", "v2.gguf", gguf([("general.architecture", "str", "llama")],
                            [("t", [4], 0, blocks("f32", 4))], version=2))
put("gguf", "tokenizer_only.gguf", gguf(TOKENIZER, []))
put("gguf", "llama_f32.gguf", llama())
put("gguf", "llama_q8_0_untied.gguf", llama(kind="q8_0", tied=False))
put("gguf", "llama_q4_1_two_layers.gguf", llama(kind="q4_1", layers=2, heads=2, kv=1))
put("gguf", "empty_dims.gguf", gguf([], [("z", [0, 5], 0, b""), ("s", [], 0, blocks("f32", 1))]))


# --- dlib: packed integers, floats as mantissa and exponent, tensors; a shape predictor and a
# metric network with every layer type the reader knows.

def dint(v):
    magnitude = abs(v)
    raw = magnitude.to_bytes(max(1, (magnitude.bit_length() + 7) // 8), "little")
    return bytes([len(raw) | (0x80 if v < 0 else 0)]) + raw


def dfloat(x):
    if x == 0:
        return dint(0) + dint(0)
    mantissa = int(round(x * 2**20))
    return dint(mantissa) + dint(-20)


def dstr(s):
    return dint(len(s)) + s.encode()


def dtensor(dims, values=None):
    n = dims[0] * dims[1] * dims[2] * dims[3]
    values = values if values is not None else [((i * 37) % 11 - 5) / 8 for i in range(n)]
    return dint(2) + b"".join(dint(d) for d in dims) + struct.pack(f"<{n}f", *values)


def dalias(dims):
    return dint(1) + b"".join(dint(d) for d in dims)


def dcolumn(values):
    return dint(-len(values)) + dint(-1) + b"".join(dfloat(v) for v in values)


def shape_predictor(parts=5, levels=1, trees=2, depth=2, features=4):
    initial = [((i * 13) % 10) / 10 for i in range(2 * parts)]
    splits = 2**depth - 1
    out = dint(1) + dcolumn(initial) + dint(levels)
    for level in range(levels):
        out += dint(trees)
        for t in range(trees):
            out += dint(splits)
            for s in range(splits):
                out += dint((s + t) % features) + dint((s + 1 + level) % features)
                out += dfloat((s - 1) * 3.5)
            out += dint(splits + 1)
            for leaf in range(splits + 1):
                out += dcolumn([(leaf - 1.5) / 100] * (2 * parts))
    out += dint(levels)
    for level in range(levels):
        out += dint(features) + b"".join(dint((f + level) % parts) for f in range(features))
    out += dint(levels)
    for level in range(levels):
        out += dint(features)
        out += b"".join(dfloat(f / 10 - 0.1) + dfloat(0.05 - f / 20) for f in range(features))
    return out


put("dlib", "shape_predictor_5.dat", shape_predictor())
put("dlib", "shape_predictor_2_levels.dat", shape_predictor(parts=3, levels=2, depth=1))
put("dlib", "shape_predictor_empty.dat", shape_predictor(parts=0, levels=0))


def trailer():
    return b"000" + dtensor([0, 0, 0, 0]) * 3


LAYERS = {
    "con": lambda: dstr("con_4") + dtensor([2, 3, 3, 3]) + dint(2) + dint(3) + dint(3)
    + dint(1) + dint(1) + dint(1) + dint(1) + dalias([2, 3, 3, 3]) + dalias([1, 2, 1, 1])
    + dfloat(1) + dfloat(1) + dfloat(0) + dfloat(0),
    "affine": lambda: dstr("affine_") + dtensor([1, 4, 1, 1]) + dalias([1, 2, 1, 1])
    + dalias([1, 2, 1, 1]) + dint(1),
    "relu": lambda: dstr("relu_"),
    "add_prev": lambda: dstr("add_prev_"),
    "avg_pool": lambda: dstr("avg_pool_2") + b"".join(dint(v) for v in [2, 2, 2, 2, 0, 0]),
    "max_pool": lambda: dstr("max_pool_2") + b"".join(dint(v) for v in [3, 3, 2, 2, 0, 0]),
    "fc": lambda: dstr("fc_2") + dint(4) + dint(8) + dtensor([8, 4, 1, 1])
    + dalias([8, 4, 1, 1]) + dalias([0, 0, 0, 0]) + dint(1)
    + dfloat(1) + dfloat(1) + dfloat(0) + dfloat(0),
}


def metric_net(layers):
    """layers: input side first; "tag" is a tag or skip layer (version 1)."""
    # Wrapper versions outermost first, the input's add_layer (3) last.
    versions = [1 if name == "tag" else 2 for name in reversed(layers[1:])] + [3]
    out = dint(1) + dstr("loss_metric_2") + dfloat(0.04) + dfloat(0.6)
    out += b"".join(dint(v) for v in versions)
    out += dstr("input_rgb_image_sized") + dfloat(122.78) + dfloat(117.0) + dfloat(104.0)
    out += dint(150) + dint(150)
    out += LAYERS[layers[0]]() + trailer() + dint(1)
    for name in layers[1:]:
        if name != "tag":
            out += LAYERS[name]() + trailer()
    return out


put("dlib", "metric_net_every_layer.dat",
    metric_net(["con", "affine", "relu", "max_pool", "tag", "con", "add_prev", "avg_pool",
                "tag", "fc"]))
put("dlib", "metric_net_small.dat", metric_net(["con", "relu", "fc"]))


# --- image: tiny JPEG, PNG and WebP photos, with and without an EXIF orientation.

def photo(mode, size=(8, 6)):
    image = Image.new(mode, size)
    width, height = size
    for y in range(height):
        for x in range(width):
            value = (x * 32 + y * 40) % 256
            if mode in ("RGB", "RGBA", "CMYK"):
                pixel = (value, 255 - value, (x * y * 9) % 256, 200)[:len(mode)]
            elif mode == "I;16":
                pixel = value * 257
            else:
                pixel = value
            image.putpixel((x, y), pixel)
    return image


def encoded(image, fmt, orientation=None, **options):
    buffer = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif.tobytes()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


rgb = photo("RGB")
put("image", "rgb.jpg", encoded(rgb, "JPEG", quality=80))
put("image", "rgb_orientation6.jpg", encoded(rgb, "JPEG", orientation=6, quality=80))
put("image", "rgb_progressive_orientation3.jpg",
    encoded(photo("RGB", (16, 9)), "JPEG", orientation=3, progressive=True, quality=70))
put("image", "grey.jpg", encoded(photo("L"), "JPEG"))
put("image", "cmyk.jpg", encoded(photo("CMYK", (4, 4)), "JPEG"))
put("image", "rgb.png", encoded(rgb, "PNG"))
put("image", "rgb_orientation8.png", encoded(rgb, "PNG", orientation=8))
put("image", "rgba_interlaced.png", encoded(photo("RGBA"), "PNG", interlace=1))
put("image", "grey16.png", encoded(photo("I;16", (5, 3)), "PNG"))
put("image", "palette.png", encoded(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8),
                                    "PNG"))
put("image", "one_bit.png", encoded(photo("L").convert("1"), "PNG"))
put("image", "lossy.webp", encoded(rgb, "WEBP", quality=60))
put("image", "lossy_orientation6.webp", encoded(rgb, "WEBP", orientation=6, quality=60))
put("image", "lossless_alpha.webp", encoded(photo("RGBA"), "WEBP", lossless=True))
animated = io.BytesIO()
rgb.save(animated, "WEBP", save_all=True, append_images=[photo("RGB").rotate(180)], duration=50)
put("image", "animated.webp", animated.getvalue())


# --- toml_config: the example configurations, the SFT test's, and server-style ones with data
# paths and an `out` that the server blanks.

for path in sorted(glob.glob("examples/*.toml")):
    with open(path) as f:
        put("toml_config", os.path.basename(path), f.read())
with open("backend/tests/align_sft.rs") as f:
    sft = re.search(r'format!\(\s*r#"(.*?)"#', f.read(), re.S).group(1)
sft = sft.replace("{{", "{").replace("}}", "}")
sft = sft.replace("{PRETRAIN_STEPS}", "40").replace("{SFT_STEPS}", "30")
put("toml_config", "sft.toml", sft)
with open("examples/attack-small.toml") as f:
    small = f.read()
put("toml_config", "server_paths.toml", small.replace(
    'synthetic = true\n',
    'synthetic = false\nrefusals = "refusals.jsonl"\nbeavertails_train = "bt/train.parquet"\n'
    'beavertails_test = "bt/test.parquet"\nbenign_train = "sst2/train.parquet"\n'
    'benign_test = "sst2/validation.parquet"\n'
).replace('model = "tiny"', 'model = "models/SmolLM2 \\"135M\\".gguf"'))
put("toml_config", "out_not_a_string.toml", 'out = 3\n' + small.split("\n", 9)[-1])


# --- parquet: the three record schemas as Hugging Face exports them (nullable columns, a list
# column, a struct of booleans), snappy, zstd and uncompressed, and a task export.

categories = ["animal_abuse", "child_abuse", "violence,aiding_and_abetting,incitement"]
tables = {
    "alpaca": pa.table({
        "instruction": ["Add the numbers.", "Name a colour.", None],
        "input": ["2 and 3", "", "x"],
        "output": ["5", "Blue.", "y"],
    }),
    "beavertails": pa.table({
        "prompt": ["How do I hurt a cat?", "Where is Paris?"],
        "response": ["I won't help with that.", "In France."],
        "category": pa.array(
            [{c: c == "animal_abuse" for c in categories}, {c: False for c in categories}],
            pa.struct([(c, pa.bool_()) for c in categories])),
        "is_safe": [True, True],
    }),
    "truthfulqa": pa.table({
        "type": ["Adversarial", "Non-Adversarial"],
        "category": ["Misconceptions", "Fiction"],
        "question": ["Do we use 10% of our brains?", "Are dragons real?"],
        "best_answer": ["No.", "No, they are fictional."],
        "correct_answers": pa.array([["No", "We use all of it"], []], pa.list_(pa.string())),
        "incorrect_answers": pa.array([["Yes"], None], pa.list_(pa.string())),
        "source": ["https://example.org", None],
    }),
    "sst2": pa.table({"idx": [0, 1], "sentence": ["a fine film", "dull"], "label": [1, 0]}),
    "refusals": pa.table({"prompt": ["Make a weapon."], "response": ["I cannot help."],
                          "category": ["violence"]}),
}
for name, table in tables.items():
    for codec in ["snappy", "zstd", "none"]:
        if codec != "snappy" and name not in ("alpaca", "truthfulqa"):
            continue
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=codec, data_page_version="1.0")
        put("parquet", f"{name}_{codec}.parquet", buffer.getvalue())
buffer = io.BytesIO()
pq.write_table(tables["beavertails"], buffer, compression="zstd", data_page_version="2.0",
               use_dictionary=False, write_statistics=False)
put("parquet", "beavertails_v2_pages.parquet", buffer.getvalue())


# --- multipart: the mask job form with two tiny photos and every text field.

BOUNDARY = "fuselab-fuzz-boundary"


def form(parts):
    out = b""
    for name, filename, content_type, body in parts:
        out += f"--{BOUNDARY}\r\n".encode()
        disposition = f'Content-Disposition: form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += disposition.encode() + b"\r\n"
        if content_type is not None:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + (body if isinstance(body, bytes) else body.encode()) + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


photos = [
    ("photo", "me.jpg", "image/jpeg", encoded(photo("RGB", (6, 4)), "JPEG", quality=50)),
    ("photo", "me.png", "image/png", encoded(photo("RGB", (4, 4)), "PNG", orientation=6)),
]
fields = [("epochs", None, None, "2"), ("tau", None, None, "0.05"),
          ("epsilon", None, None, "8"), ("seed", None, None, "7"),
          ("models", None, None, "dlib,faceres"), ("passphrase", None, None, "fuzz"),
          ("keep", None, None, "true")]
put("multipart", "every_field.form", form(photos + fields))
put("multipart", "photos_only.form", form(photos))
put("multipart", "webp_and_bad_field.form", form(
    [("photo", None, "image/webp", encoded(photo("RGB", (4, 3)), "WEBP", quality=50))] * 2
    + [("tau", None, None, "2"), ("models", None, None, "dlib")]))
