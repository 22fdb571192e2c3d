"""Saving PyTorch tensors as safetensors files that attn (attn/io/safetensors.hpp) reads.

    from attn_safetensors import save_file
    save_file(model.state_dict(), "model.safetensors")

Import this file or copy it next to your script: it needs PyTorch and nothing else (Debian's
python3-torch has no safetensors package). When the `safetensors` package is installed,
`safetensors.torch.save_file` writes the same format and attn reads its files as well.

The format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
{"dtype", "shape", "data_offsets": [begin, end)} (offsets into the data section), an optional
"__metadata__" map of strings, then each tensor's raw little-endian bytes, row-major.
"""
import json
import struct

import torch

__all__ = ["save_file", "load_file", "DTYPES"]

# PyTorch dtype -> safetensors dtype name. (torch 1.13 has no uint16/32/64; newer versions may.)
DTYPES = {
    torch.bool: "BOOL",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.int16: "I16",
    torch.int32: "I32",
    torch.int64: "I64",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float32: "F32",
    torch.float64: "F64",
}
for _name, _code in (("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64")):
    if hasattr(torch, _name):
        DTYPES[getattr(torch, _name)] = _code


def _raw_bytes(tensor):
    """The tensor's elements as little-endian bytes, row-major."""
    if tensor.dtype == torch.bfloat16:
        # numpy has no bfloat16; the same 16 bits viewed as int16 have the same bytes.
        tensor = tensor.view(torch.int16)
    array = tensor.numpy()
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def save_file(tensors, path, metadata=None):
    """Writes `tensors` (a dict of name -> torch.Tensor, e.g. a state_dict) to `path`.

    Tensors are detached, moved to the CPU and made contiguous first, so views, transposes,
    parameters and GPU tensors all save as the values they show. `metadata`, if given, is a
    dict of strings stored under "__metadata__" (values are converted with str()).
    Tensors are written in name order; the data section starts 8-byte aligned.
    """
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == "__metadata__":
            raise ValueError(f"tensor name {name!r} is not allowed")
        tensor = tensors[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"tensor {name!r} is a {type(tensor).__name__}, not a torch.Tensor")
        if tensor.dtype not in DTYPES:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors "
                             f"does not hold; convert it, e.g. with .float()")
        tensor = tensor.detach().cpu().contiguous()
        data = _raw_bytes(tensor)
        header[name] = {"dtype": DTYPES[tensor.dtype], "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_file(path):
    """Reads a safetensors file (one written by attn, say) into a dict of name -> torch.Tensor.
    The "__metadata__" strings, if any, are left out; no validation beyond what torch does."""
    codes = {code: dtype for dtype, code in DTYPES.items()}
    with open(path, "rb") as f:
        content = f.read()
    (length,) = struct.unpack("<Q", content[:8])
    header = json.loads(content[8:8 + length])
    data = content[8 + length:]
    result = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = codes[entry["dtype"]]
        raw = bytearray(data[begin:end])
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        result[name] = flat.reshape(entry["shape"]).clone()
    return result
