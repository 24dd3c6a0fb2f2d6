#!/usr/bin/env python3
"""tests/fuzz/make-corpus.py - (re)build the small seed corpora of the fuzz targets in
tests/fuzz/corpus/<target>/ from the project's golden test data (tests/data/).  Run from the
project root; the output is committed, so this only needs rerunning when the seeds should
change.  Seeds stay small (the whole corpus well under 200 KB):
  - real headers with the data cut off (truncated downloads),
  - "shrunk" files: a subset of a real model's tensors with the real names and ranks but
    tiny shapes and data, complete and loadable (so the fuzzer starts past validation),
  - the sidecar and diffusers config JSON files, prefixed by a family byte where the
    target reads one,
  - prompts (a mode byte, then the text): the tokenizer golden cases' hard parts plus the
    A1111 syntax (weights, nesting, escapes, BREAK, bad weights),
  - tiny PNGs of every colour type and the bit depths and options the CLI's reader converts
    (palette + tRNS, 1-bit gray, 16-bit, gray + alpha, interlaced).
"""
import json
import os
import re
import shutil
import struct
import zlib

DATA = "tests/data"
OUT = "tests/fuzz/corpus"


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        raw = f.read(n)
    return raw, json.loads(raw)


def st_bytes(entries, meta=None):
    """A complete safetensors file from [(name, dtype, shape, data bytes)] (name order)."""
    head, blob = {}, b""
    if meta is not None:
        head["__metadata__"] = meta
    for name, dtype, shape, data in sorted(entries):
        head[name] = {"dtype": dtype, "shape": shape,
                      "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    h = json.dumps(head, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "F64": 8}


def shrink(header, keep, dims):
    """Tensors of `header` whose names match `keep`, each dim set by dims(name, shape)."""
    out = []
    for name, v in header.items():
        if name == "__metadata__" or not re.search(keep, name):
            continue
        shape = dims(name, v["shape"])
        n = SIZES[v["dtype"]]
        for d in shape:
            n *= d
        out.append((name, v["dtype"], shape, bytes((i * 37 + 11) & 0xFF for i in range(n))))
    return out


def small_dims(name, shape):
    """All dims 1 except what the loader checks: UNet input channels, level widths divisible
    by the default head counts (64-wide), text width 64, fused q/k/v rows."""
    s = [1] * len(shape)
    if name.endswith("input_blocks.0.0.weight"):
        s[1] = shape[1]
    elif name.endswith("out_layers.3.weight"):
        s[0] = 64
    elif name.endswith("token_embedding.weight"):
        s[1] = 64
    elif name.endswith("in_proj_weight"):
        s[0] = 3
    elif name.endswith("in_proj_bias"):
        s[0] = 3
    elif re.match(r"^((en|de)coder\.layers\.0|0|1)\.weight$", name):
        s[1] = shape[1]  # TAESD first convs: RGB in / latent in
    return s


def png_bytes(w, h, color_type, depth, rows, interlace=0, extra=()):
    """A PNG from raw scanlines (each a bytes object, filter byte included; for an
    interlaced image the already-interlaced stream); extra = [(type, data)] chunks placed
    before IDAT."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, interlace)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra:
        out += chunk(kind, data)
    return out + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")


def put(target, name, data):
    os.makedirs(f"{OUT}/{target}", exist_ok=True)
    with open(f"{OUT}/{target}/{name}", "wb") as f:
        f.write(data)


def main():
    shutil.rmtree(OUT, ignore_errors=True)

    # ---- model files: shrunk subsets of the golden tiny models --------------------------
    _, sd15 = read_header(f"{DATA}/tiny-sd15/model-f16.safetensors")
    _, sd15i = read_header(f"{DATA}/tiny-sd15-inpaint/model-f16.safetensors")
    _, sd2 = read_header(f"{DATA}/tiny-sd2v/model-f16.safetensors")
    _, tenc = read_header(f"{DATA}/taesd/taesd_encoder.safetensors")
    _, tdec = read_header(f"{DATA}/taesd/taesd_decoder.safetensors")
    unet = (r"^model\.diffusion_model\.(input_blocks\.[0-4]\.|time_embed|out\.|"
            r"middle_block\.1\.proj_in)")
    vae = (r"^first_stage_model\.(encoder\.conv_|decoder\.conv_|quant_conv|post_quant_conv|"
           r"encoder\.mid\.attn_1)")
    clip = r"^cond_stage_model\.transformer\.text_model\.(embeddings|encoder\.layers\.0\.|final)"
    oclip = (r"^cond_stage_model\.model\.(token_emb|positional|ln_final|text_proj|logit|"
             r"transformer\.resblocks\.[01]\.)")
    models = {
        "sd15-min.safetensors": st_bytes(shrink(sd15, f"{unet}|{vae}|{clip}", small_dims)),
        "sd15-inpaint-min.safetensors": st_bytes(shrink(sd15i, f"{unet}|{clip}", small_dims)),
        "sd2-min.safetensors": st_bytes(shrink(sd2, f"{unet}|{vae}|{oclip}", small_dims)),
        "taesd-encoder-min.safetensors": st_bytes(shrink(tenc, r"^(0|1\.conv|14)\.", small_dims)),
        "taesd-decoder-min.safetensors": st_bytes(shrink(tdec, r"^(1|19)\.", small_dims)),
        "taesd-diffusers-min.safetensors": st_bytes(
            [("encoder.layers.0.weight", "F16", [1, 3, 1, 1], b"\0\x3c" * 3),
             ("encoder.layers.14.weight", "F16", [1], b"\0\x3c"),
             ("decoder.layers.0.weight", "F16", [1, 4, 1, 1], b"\0\x3c" * 4),
             ("decoder.layers.18.weight", "F16", [1], b"\0\x3c")]),
        "pickle-zip.seed": b"PK\3\4" + bytes(28),
        "pickle-proto2.seed": b"\x80\x02}q\x00.",
        "gguf.seed": b"GGUF\3\0\0\0" + bytes(16),
    }
    for name, data in models.items():
        put("fuzz_model_load", name, data)

    # ---- safetensors: real headers with the data cut, plus complete small files ---------
    for rel in ["taesd/taesd_encoder.safetensors", "tiny-sd2v/text_encoder.safetensors",
                "tiny-sd15/unet.safetensors", "tiny-sd15/diffusers/text_encoder/model.safetensors"]:
        with open(f"{DATA}/{rel}", "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            f.seek(0)
            cut = f.read(8 + n + 16)
        put("fuzz_safetensors", "cut-" + rel.replace("/", "-"), cut)
    for name in ["sd15-min.safetensors", "sd2-min.safetensors", "taesd-decoder-min.safetensors"]:
        put("fuzz_safetensors", name, models[name])
    put("fuzz_safetensors", "dtypes.safetensors", st_bytes(
        [("a", "F64", [2], bytes(16)), ("b", "BF16", [1, 1, 1, 1, 2], bytes(4)),
         ("c", "I64", [], bytes(8)), ("d", "U8", [0, 3], b""), ("e", "I32", [3], bytes(12)),
         ("f", "F8_E4M3", [2], b"\1\2")], meta={"format": "pt", "k\u00e9y": "v\\u\""}))
    # metadata keys that are one C string (refused: sd_st_meta could not tell them apart)
    nul = b'{"__metadata__":{"a\\u0000x":"1","a\\u0000y":"2"}}'
    put("fuzz_safetensors", "meta-nul-keys.safetensors", struct.pack("<Q", len(nul)) + nul)
    # an odd header length puts the data section off alignment (the aligned-copy path)
    odd = b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    put("fuzz_safetensors", "misaligned.safetensors",
        struct.pack("<Q", len(odd)) + odd + bytes(range(8)))

    # ---- JSON: configs, sidecars, a header ----------------------------------------------
    configs = ["tiny-sd15/model-f16.json", "tiny-sd2v/model-f16.json",
               "tiny-sd15/diffusers/unet/config.json",
               "tiny-sd15/diffusers/text_encoder/config.json",
               "tiny-sd15/diffusers/vae/config.json",
               "tiny-sd15/diffusers/scheduler/scheduler_config.json",
               "tiny-sd2v/diffusers/scheduler/scheduler_config.json",
               "tiny-sd15/diffusers/model_index.json"]
    for i, rel in enumerate(configs):
        with open(f"{DATA}/{rel}", "rb") as f:
            text = f.read()
        name = rel.replace("/", "-")
        put("fuzz_json", name, text)
        put("fuzz_model_config", name, bytes([i % 8]) + text)
    put("fuzz_json", "taesd-header.json", read_header(f"{DATA}/taesd/taesd_decoder.safetensors")[0])
    put("fuzz_json", "escapes.json",
        '{"s":"a\\u00e9\\ud83d\\ude00\\n\\t\\"","n":[-0,1e308,-1.5E-7,9223372036854775807,'
        '-9223372036854775808,18446744073709551616],"o":{"":null,"b":[true,false,{}]}}'.encode())
    put("fuzz_model_config", "small-sidecar.json", b"\2" + json.dumps(
        {"unet": {"attention_head_dim": [5, 10, 20, 20], "upcast_attention": True},
         "text_encoder": {"num_attention_heads": 16, "hidden_act": "gelu",
                          "layer_norm_eps": 1e-5},
         "vae": {"scaling_factor": 0.18215}, "scheduler": {"prediction_type": "v_prediction"},
         "tokenizer": {"pad_token": {"content": "!"}}}).encode())

    # ---- prompts: a mode byte (bit 0: SD2), then UTF-8 text --------------------------------
    with open(f"{DATA}/tokenizer/cases.json", encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    picked = [c["prompt"] for c in cases if len(c["prompt"]) < 200]
    prompts = {
        "golden-sd1.txt": (0, "\n".join(picked[:20])),
        "golden-sd2.txt": (1, "\n".join(picked[20:])),
        "weights.txt": (0, "a ((masterpiece:1.2)), [[blurry]], (red:0.5) dish BREAK "
                           "(cat:-1) [from:to:0.5] \\(literal\\) \\[x\\] \\\\ end"),
        "nesting.txt": (1, "(((((a) b) c:1.5) d]] e)) (f:.5) (g:1.) (h:+2) (i:1.2.3) "
                           "(j:\u0663\u0662) BREAKfast BREAK\u00a0x\u3000BREAK"),
        "commas.txt": (0, ", ".join(f"word{i} thing" for i in range(60))),
        "specials.txt": (1, "really!!! <|startoftext|>x<|endoftext|> &amp; &#x1F600; "
                            "\uff08full\uff09 \ufb01 \u201cq\u201d \x1b[31mred\r\n"),
        "weight-huge.txt": (0, "((((x:1e38)))) (y:99999999999999999999999999999999999999999)"),
    }
    for name, (mode, text) in prompts.items():
        put("fuzz_prompt", name, bytes([mode]) + text.encode("utf-8"))
    put("fuzz_prompt", "bad-utf8.txt", b"\0a \xc3\x28 \xed\xa0\x80 \xf4\x90\x80\x80 \xc0\xaf")

    # ---- PNGs of each colour type ----------------------------------------------------------
    def rows(w, h, bpp, f=lambda x, y, k: (x * 37 + y * 11 + k * 5) & 0xFF):
        return [bytes([y % 5]) + bytes(f(x, y, k) for x in range(w) for k in range(bpp))
                for y in range(h)]
    pngs = {
        "rgb8.png": png_bytes(5, 3, 2, 8, rows(5, 3, 3)),
        "rgba8.png": png_bytes(4, 4, 6, 8, rows(4, 4, 4)),
        "rgb16.png": png_bytes(3, 2, 2, 16, rows(3, 2, 6)),
        "gray-alpha16.png": png_bytes(2, 3, 4, 16, rows(2, 3, 4)),
        "gray1.png": png_bytes(9, 2, 0, 1, [b"\0\xa5\x80", b"\0\x5a\x00"]),
        "gray8-trns.png": png_bytes(3, 3, 0, 8, rows(3, 3, 1),
                                    extra=[(b"tRNS", b"\x00\x25"), (b"gAMA", bytes(4))]),
        "palette4-trns.png": png_bytes(6, 2, 3, 4, [b"\0\x01\x23\x10", b"\0\x32\x10\x23"],
                                       extra=[(b"PLTE", bytes(range(12))),
                                              (b"tRNS", b"\x00\x80")]),
        # Adam7 of a 2x2 RGB image: pass 1 pixel (0,0), pass 6 pixel (1,0), pass 7 row 1
        "rgb8-interlaced.png": png_bytes(2, 2, 2, 8, [b"\0\x10\x20\x30", b"\0\x40\x50\x60",
                                                      b"\0\x70\x80\x90\xa0\xb0\xc0"],
                                         interlace=1),
    }
    for name, data in pngs.items():
        put("fuzz_cli_png", name, data)


if __name__ == "__main__":
    main()
