"""Builds the committed seed corpus under tools/fuzz/corpus/<target>/ from small files already in the
repository (fixtures, built-in model and task files) plus a few hand-made safetensors files.

    python3 tools/fuzz/make_corpus.py

Seeds stay small (a few KB each) so libFuzzer mutates them quickly. Crash inputs found later are added
by hand next to these (named crash-*), so this script never deletes a file.
"""
import glob
import json
import os
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tools", "fuzz", "corpus")
MAX = 20_000


def read(rel):
    with open(os.path.join(ROOT, rel), "rb") as f:
        return f.read()


def put(target, name, data):
    if len(data) > MAX:
        return
    folder = os.path.join(OUT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes)."""
    header, offset, blob = {}, 0, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blob += raw
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + blob


def main():
    st = {
        "f32": safetensors({"w": ("F32", [2, 3], struct.pack("<6f", *range(6)))}, {"format": "pt"}),
        "mixed": safetensors({
            "a": ("F16", [4], struct.pack("<4H", 0x3C00, 0x8000, 0x7C00, 0x0001)),
            "b": ("BF16", [2], struct.pack("<2H", 0x3F80, 0xFF80)),
            "i": ("I64", [3], struct.pack("<3q", -1, 0, 7)),
            "m": ("BOOL", [2], b"\x00\x01"),
            "u": ("U8", [1], b"\x05"),
            "d": ("F64", [1], struct.pack("<d", 2.5)),
        }),
        "empty-tensor": safetensors({"z": ("F32", [0, 4], b"")}),
        "scalar": safetensors({"s": ("I32", [], struct.pack("<i", 3))}),
    }
    for name, data in st.items():
        put("safetensors", name + ".safetensors", data)

    for path in glob.glob(os.path.join(ROOT, "Tests/Fixtures/models/*/config.json")) + \
            glob.glob(os.path.join(ROOT, "builtin/models/*/config.json")):
        rel = os.path.relpath(path, ROOT)
        tag = rel.split("/")[-2]
        put("config", tag + ".json", read(rel))
        put("json", "config-" + tag + ".json", read(rel))
    # diffusers component configs (transformer, VAE, scheduler) and video processor configs, for the config target.
    for path in sorted(glob.glob(os.path.join(ROOT, "Tests/Fixtures/models/*/*/*_config.json")) +
                       glob.glob(os.path.join(ROOT, "Tests/Fixtures/models/*/*/config.json")) +
                       glob.glob(os.path.join(ROOT, "Tests/Fixtures/models/*/video_preprocessor_config.json"))):
        rel = os.path.relpath(path, ROOT)
        parts = rel.split("/")
        put("config", "-".join(parts[-3:]).replace("/", "-"), read(rel))
    first_case = sorted(glob.glob(os.path.join(ROOT, "conformance/cases/fastv/*/case.json")))[0]
    for rel in ["builtin/models/llava/tokenizer_config.json", "builtin/models/llava/preprocessor_config.json",
                os.path.relpath(first_case, ROOT)]:
        put("json", os.path.basename(os.path.dirname(rel)) + "-" + os.path.basename(rel), read(rel))
    put("json", "edge.json", '{"a":[1,-0.5e-3,1E+2,true,false,null],"b":"\\u00e9\\ud83d\\ude00\\n","c":{}}'.encode())

    text = "USER: <image>\nWhat colour is the square? ASSISTANT: red".encode()
    for path in glob.glob(os.path.join(ROOT, "Tests/Fixtures/tokenizer/*.tokenizer.json")):
        tag = os.path.basename(path).split(".")[0]
        put("tokenizer", tag + ".bin", read(os.path.relpath(path, ROOT)) + b"\0" + text)

    templates = json.loads(read("Tests/Fixtures/tokenizer/chat_templates.json"))
    items = templates.items() if isinstance(templates, dict) else enumerate(templates)
    for key, value in items:
        source = value.get("template") if isinstance(value, dict) else value
        if isinstance(source, str):
            put("chat-template", f"{key}.jinja", source.encode() + b"\0Describe it.")
    put("chat-template", "builtin.jinja", json.loads(read("builtin/models/llava/chat_template.json"))["chat_template"].encode())

    for path in sorted(glob.glob(os.path.join(ROOT, "Tests/Fixtures/images/*"))):
        name = os.path.basename(path)
        if name.endswith(".png"):
            put("png", name, read(os.path.relpath(path, ROOT)))
        elif name.endswith(".jpg"):
            put("jpeg", name, read(os.path.relpath(path, ROOT)))

    for rel in ["builtin/tasks/scenes/sample.jsonl", "builtin/tasks/shapes/test.jsonl"]:
        lines = read(rel).splitlines(keepends=True)[:3]
        put("bench-task", os.path.basename(os.path.dirname(rel)) + ".jsonl", b"".join(lines))
    put("bench-task", "pope.jsonl", b'{"question_id": 3, "image": "a.png", "text": "Is there a cat?", "label": "yes", "category": "adversarial"}\n\n'
        b'{"id": "x", "image": "/abs/b.jpg", "question": "q", "answer": 2, "type": "count"}\n')

    cases = sorted(glob.glob(os.path.join(ROOT, "conformance/cases/*/*/case.json")))
    kept = 0
    for case in cases:
        folder = os.path.dirname(case)
        inputs = os.path.join(folder, "inputs.safetensors")
        if not os.path.exists(inputs) or os.path.getsize(inputs) > 4000:
            continue
        method = os.path.basename(os.path.dirname(folder))
        if glob.glob(os.path.join(OUT, "conformance-case", method + "-*")):
            continue
        put("conformance-case", method + "-" + os.path.basename(folder) + ".bin",
            read(os.path.relpath(case, ROOT)) + b"\0" + read(os.path.relpath(inputs, ROOT)))
        kept += 1
    for target in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, target))
        size = sum(os.path.getsize(os.path.join(OUT, target, f)) for f in files)
        print(f"{target}: {len(files)} seeds, {size} bytes")


if __name__ == "__main__":
    main()
