#!/usr/bin/python3
"""Writes the malformed safetensors corpus next to this script (committed; plain Python, no torch).

Each file breaks one rule of the format. tests/io/malformed_safetensors_test.cpp checks that
attn rejects every one with a SafetensorsError naming the problem, and the safetensors fuzz
target starts from them.
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def raw(name, header_bytes, data=b"", claimed_length=None):
    length = len(header_bytes) if claimed_length is None else claimed_length
    with open(os.path.join(HERE, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", length) + header_bytes + data)


def tensors(name, header, data=b"", claimed_length=None):
    raw(name, json.dumps(header).encode(), data, claimed_length)


def f32(shape, begin, end):
    return {"dtype": "F32", "shape": shape, "data_offsets": [begin, end]}


FOUR = b"\0" * 16  # four float zeros

tensors("header_beyond_file", {"a": f32([4], 0, 16)}, FOUR, claimed_length=4000)
tensors("huge_header_claim", {"a": f32([4], 0, 16)}, FOUR, claimed_length=2**63 + 5)
tensors("negative_offset", {"a": f32([4], -16, 0)}, FOUR)
tensors("begin_after_end", {"a": f32([0], 16, 0)}, FOUR)
tensors("offset_out_of_range", {"a": f32([1024], 0, 4096)}, FOUR)
tensors("overlapping_offsets", {"a": f32([2], 0, 8), "b": f32([2], 4, 12)}, FOUR)
tensors("shape_bytes_mismatch", {"a": f32([3], 0, 16)}, FOUR)
tensors("shape_element_overflow", {"a": f32([0, 2**62, 2**62], 0, 0)}, FOUR)
tensors("shape_negative", {"a": f32([-4], 0, 16)}, FOUR)
tensors("missing_dtype", {"a": {"shape": [4], "data_offsets": [0, 16]}}, FOUR)
# Every dtype of the format is read (BF16, I64, BOOL, ...); a name outside the format is not.
tensors("unsupported_dtype", {"a": {"dtype": "Q4_0", "shape": [8], "data_offsets": [0, 16]}}, FOUR)
tensors("bool_not_0_or_1", {"a": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}},
        b"\1\0\2\1")
tensors("metadata_not_string", {"__metadata__": {"format": 3}, "a": f32([4], 0, 16)}, FOUR)
tensors("header_not_object", [1, 2, 3])
raw("truncated_json", b'{"a": {"dtype": "F32", "shape": [4], "data_', FOUR)
raw("non_utf8_json", b'{"\xff\xfe": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', FOUR)
raw("duplicate_names",
    b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
    b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}', FOUR)
with open(os.path.join(HERE, "too_short.safetensors"), "wb") as f:
    f.write(b"\x08\0\0")
print("wrote the malformed corpus to", HERE)
