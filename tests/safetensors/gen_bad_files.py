#!/usr/bin/env python3
"""Writes the safetensors test corpus (stdlib only; the output is committed).

  tests/safetensors/bad/*.safetensors   crafted hostile files
  tests/safetensors/bad/expected.txt    file<TAB>error substring the reader must give
  tests/safetensors/good/*.safetensors  valid edge cases the reader must accept
  fuzz/corpus/safetensors/*             fuzzer seeds (the good files)

Run from anywhere: python3 tests/safetensors/gen_bad_files.py
"""
import json
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
BAD = os.path.join(HERE, "bad")
GOOD = os.path.join(HERE, "good")
SEEDS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "safetensors")


def header_bytes(header):
    if isinstance(header, (bytes, bytearray)):
        return bytes(header)
    if isinstance(header, str):
        return header.encode("utf-8")
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


def st(header, data=b"", pad=True, hlen=None):
    """A safetensors image: header is a dict, str (raw JSON) or bytes."""
    h = header_bytes(header)
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    n = len(h) if hlen is None else hlen
    return struct.pack("<Q", n) + h + data


def f32(*xs):
    return struct.pack("<%df" % len(xs), *xs)


def i64(*xs):
    return struct.pack("<%dq" % len(xs), *xs)


A = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}
B = {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}
DATA = f32(1, 2, 3, 4, 5, 6) + i64(7, -8)
VALID = st({"a": A, "b": B}, DATA)


def entry(**kw):
    e = dict(A)
    e.update(kw)
    return e


def without(key):
    e = dict(A)
    del e[key]
    return e


# name -> (bytes, expected error substring)
BAD_CASES = {
    "empty": (b"", "file is 0 bytes, shorter than the 8-byte header length field"),
    "short": (b"\x10\x00\x00\x00\x00", "file is 5 bytes, shorter than the 8-byte"),
    "header_too_large": (st({}, hlen=100_000_001), "header length 100000001 exceeds the limit of 100000000 bytes"),
    "header_len_max": (b"\xff" * 8 + b"{}", "header length 18446744073709551615 exceeds the limit"),
    "header_past_eof": (st({"a": A}, DATA, hlen=4096), "header length 4096 runs past the end of the file"),
    "header_empty": (st(b"", DATA[:0], pad=False), "header is not a JSON object (it must start with '{')"),
    "header_array": (st("[1, 2]"), "it must start with '{'"),
    "header_bom": (st(b"\xef\xbb\xbf{}"), "it must start with '{'"),
    "header_leading_space": (st(" {}"), "it must start with '{'"),
    "header_not_utf8": (st(b'{"a\xff":' + header_bytes(A) + b"}", DATA[:24]), "header is not valid UTF-8 (byte 0xff at header offset 3)"),
    "header_overlong_utf8": (st(b'{"\xc0\xaf":' + header_bytes(A) + b"}", DATA[:24]), "header is not valid UTF-8 (byte 0xc0"),
    "header_surrogate_utf8": (st(b'{"\xed\xa0\x80":' + header_bytes(A) + b"}", DATA[:24]), "header is not valid UTF-8 (byte 0xed"),
    "header_truncated_utf8": (st(b'{"a":' + header_bytes(A) + b"}\xe2\x82", DATA[:24], pad=False), "header is not valid UTF-8 (byte 0xe2"),
    "header_not_json": (st('{"a": {"dtype": "F32", '), "header is not JSON (error near header offset"),
    "header_trailing_text": (st('{} {}'), "unexpected text after the object at header offset 3"),
    "header_control_byte": (st(b'{"a\x01":' + header_bytes(A) + b"}", DATA[:24]), "header is not JSON: a control byte at header offset 3"),
    "header_nul_byte": (st(b'{"a":' + header_bytes(A) + b"}\x00", DATA[:24]), "a control byte at header offset"),
    "header_escaped_nul": (st('{"a\\u0000b":' + json.dumps(A) + "}", DATA[:24]), "an escaped NUL (\\u0000)"),
    "header_deep_nesting": (st('{"a": {"x": ' + "[" * 5000 + "]" * 5000 + "}}"), "header is not JSON (error near"),
    "header_long_number": (st('{"a": {"dtype": "F32", "shape": [' + "9" * 200 + '], "data_offsets": [0, 0]}}'), "tensor 'a': shape dimension 0 is larger than 2^53 - 1"),
    "entry_not_object": (st({"a": 5}), "tensor 'a': entry is not an object"),
    "missing_dtype": (st({"a": without("dtype")}, DATA[:24]), "tensor 'a': missing \"dtype\""),
    "missing_shape": (st({"a": without("shape")}, DATA[:24]), "tensor 'a': missing \"shape\""),
    "missing_offsets": (st({"a": without("data_offsets")}, DATA[:24]), "tensor 'a': missing \"data_offsets\""),
    "dtype_not_string": (st({"a": entry(dtype=4)}, DATA[:24]), "tensor 'a': \"dtype\" is not a string"),
    "dtype_unknown": (st({"a": entry(dtype="F128")}, DATA[:24]), "tensor 'a': unknown dtype 'F128'"),
    "dtype_lowercase": (st({"a": entry(dtype="f32")}, DATA[:24]), "tensor 'a': unknown dtype 'f32'"),
    "shape_not_array": (st({"a": entry(shape=6)}, DATA[:24]), "tensor 'a': \"shape\" is not an array"),
    "shape_negative": (st({"a": entry(shape=[-2, -3])}, DATA[:24]), "tensor 'a': shape dimension 0 is negative"),
    "shape_fraction": (st({"a": entry(shape=[2, 1.5])}, DATA[:24]), "tensor 'a': shape dimension 1 is not an integer"),
    "shape_string": (st({"a": entry(shape=["2", 3])}, DATA[:24]), "tensor 'a': shape dimension 0 is not a number"),
    "shape_huge": (st('{"a": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 24]}}', DATA[:24]), "tensor 'a': shape dimension 0 is larger than 2^53 - 1"),
    "shape_2p53": (st({"a": entry(shape=[2**53, 0])}, DATA[:0]), "shape dimension 0 is larger than 2^53 - 1"),
    "shape_too_many_dims": (st({"a": entry(shape=[1] * 9, data_offsets=[0, 4])}, DATA[:4]), "tensor 'a': shape has 9 dimensions, more than the limit of 8"),
    "shape_overflow": (st({"a": entry(shape=[2**52, 2**52, 0], data_offsets=[0, 0])}), "tensor 'a': shape [4503599627370496, 4503599627370496, 0] of F32 overflows 64 bits"),
    "shape_overflow_dtype": (st({"a": entry(dtype="F64", shape=[2**31, 2**31, 2**2], data_offsets=[0, 0])}), "of F64 overflows 64 bits"),
    "offsets_not_array": (st({"a": entry(data_offsets=24)}, DATA[:24]), "tensor 'a': \"data_offsets\" is not an array of 2 integers"),
    "offsets_one": (st({"a": entry(data_offsets=[24])}, DATA[:24]), "\"data_offsets\" is not an array of 2 integers"),
    "offsets_three": (st({"a": entry(data_offsets=[0, 24, 48])}, DATA[:24]), "\"data_offsets\" is not an array of 2 integers"),
    "offsets_negative": (st({"a": entry(data_offsets=[-24, 0])}, DATA[:24]), "tensor 'a': a data offset is negative"),
    "offsets_fraction": (st({"a": entry(data_offsets=[0, 23.5])}, DATA[:24]), "tensor 'a': a data offset is not an integer"),
    "offsets_huge": (st({"a": entry(data_offsets=[0, 2**64])}, DATA[:24]), "tensor 'a': a data offset is larger than 2^53 - 1"),
    "offsets_string": (st({"a": entry(data_offsets=["0", 24])}, DATA[:24]), "tensor 'a': a data offset is not a number"),
    "offsets_reversed": (st({"a": entry(data_offsets=[24, 0])}, DATA[:24]), "tensor 'a': data_offsets [24, 0] are reversed (end before start)"),
    "bytes_mismatch": (st({"a": entry(data_offsets=[0, 20])}, DATA[:20]), "tensor 'a': data_offsets [0, 20] give 20 bytes but shape [2, 3] of F32 needs 24"),
    "bytes_mismatch_dtype": (st({"a": entry(dtype="F64")}, DATA[:24]), "give 24 bytes but shape [2, 3] of F64 needs 48"),
    "offsets_past_end": (st({"a": A, "b": B}, DATA[:32]), "tensor 'b': data_offsets [24, 40] run past the end of the data (32 bytes)"),
    "offsets_not_zero": (st({"a": entry(data_offsets=[16, 40])}, DATA), "tensor 'a': data_offsets [16, 40]: the data must start at offset 0"),
    "offsets_gap": (st({"a": A, "b": dict(B, data_offsets=[32, 48])}, DATA + b"\0" * 8), "tensor 'b': data_offsets [32, 48] leave a gap after tensor 'a' [0, 24]"),
    "offsets_overlap": (st({"a": A, "b": dict(B, data_offsets=[16, 32])}, DATA[:32]), "tensor 'b': data_offsets [16, 32] overlap tensor 'a' [0, 24]"),
    "offsets_same": (st({"a": A, "b": dict(A)}, DATA[:24]), "tensor 'b': data_offsets [0, 24] overlap tensor 'a' [0, 24]"),
    "trailing_bytes": (VALID + b"JUNK", "4 trailing bytes after the tensor data (data ends at 40"),
    "trailing_no_tensors": (st({}, b"\0"), "1 trailing bytes after the tensor data"),
    "duplicate_name": (st('{"a":' + json.dumps(A) + ',"a":' + json.dumps(A) + "}", DATA[:24]), "tensor 'a' appears twice in the header"),
    "metadata_not_object": (st({"__metadata__": "x"}), "__metadata__ is not an object"),
    "metadata_value_number": (st({"__metadata__": {"step": 5}}), "__metadata__ value for 'step' is not a string"),
    "metadata_value_null": (st({"__metadata__": {"k": None}}), "__metadata__ value for 'k' is not a string"),
    "metadata_duplicate_key": (st('{"__metadata__": {"k": "1", "k": "2"}}'), "__metadata__ key 'k' appears twice"),
    "metadata_twice": (st('{"__metadata__": {}, "__metadata__": {}}'), "'__metadata__' appears twice in the header"),
}

GOOD_CASES = {
    "two_tensors": VALID,
    "empty_header": st({}),
    "metadata": st({"__metadata__": {"format": "pt", "step": "12"}, "a": A}, DATA[:24]),
    # Offsets need not follow header order; only the union must be contiguous.
    "unordered": st({"b": dict(B, data_offsets=[0, 16]), "a": dict(A, data_offsets=[16, 40])}, i64(7, -8) + f32(1, 2, 3, 4, 5, 6)),
    # Zero-size tensors and a scalar; two tensors may share an empty span.
    "zero_size": st({"e": entry(shape=[0, 3], data_offsets=[0, 0]), "f": entry(shape=[4, 0], data_offsets=[0, 0]),
                     "s": entry(shape=[], data_offsets=[0, 4])}, f32(2.5)),
    # Unknown fields are ignored, as by the reference; header not padded.
    "extra_fields_unpadded": st({"a": dict(A, note="x", extra=[1, {"y": None}])}, DATA[:24], pad=False),
    "eight_dims": st({"a": entry(shape=[1, 1, 1, 1, 1, 1, 2, 3])}, DATA[:24]),
}


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def main():
    for d in (BAD, GOOD, SEEDS):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    lines = []
    for name, (data, expect) in sorted(BAD_CASES.items()):
        fn = name + ".safetensors"
        write(os.path.join(BAD, fn), data)
        assert "\t" not in expect and "\n" not in expect
        lines.append(fn + "\t" + expect + "\n")
    with open(os.path.join(BAD, "expected.txt"), "w") as f:
        f.writelines(lines)
    for name, data in sorted(GOOD_CASES.items()):
        write(os.path.join(GOOD, name + ".safetensors"), data)
        write(os.path.join(SEEDS, name + ".safetensors"), data)
    print("%d bad, %d good files" % (len(BAD_CASES), len(GOOD_CASES)))


if __name__ == "__main__":
    main()
