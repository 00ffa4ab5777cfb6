#!/usr/bin/env python3
"""Writes the bad-input fixtures of fixtures/fail/ (see fixtures/fail/README.md).

Each file is tiny and wrong in exactly one way; tests/cli_errors.rs checks that every
command refuses it with exit code 2 and a one-line error naming the culprit. The script is
deterministic (fixed seed, no timestamps): running it twice gives byte-identical files.
Run it by hand after changing it, from the repository root:

    .venv/bin/python scripts/make_fail_fixtures.py
"""

from __future__ import annotations

import os
import random
import sys

import onnx
from onnx import TensorProto, helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "fail")
OUT = os.path.normpath(OUT)

F = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), opset=17, extra_opsets=(), value_info=()):
    graph = helper.make_graph(
        list(nodes),
        "fail",
        list(inputs),
        list(outputs),
        initializer=list(initializers),
        value_info=list(value_info),
    )
    opsets = [helper.make_opsetid("", opset)] + list(extra_opsets)
    m = helper.make_model(graph, opset_imports=opsets, producer_name="make_fail_fixtures")
    m.ir_version = 8
    return m


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def write(name: str, m_or_bytes) -> None:
    data = m_or_bytes if isinstance(m_or_bytes, bytes) else m_or_bytes.SerializeToString()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def external_weight(location: str) -> TensorProto:
    """A [2,3] float initializer `w` whose bytes live at `location`."""
    t = TensorProto()
    t.name = "w"
    t.data_type = F
    t.dims.extend([2, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "24")):
        e = t.external_data.add()
        e.key = k
        e.value = v
    return t


def external_model(location: str):
    return model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [vi("x", [2, 3])],
        [vi("y", [2, 3])],
        initializers=[external_weight(location)],
    )


def valid() -> onnx.ModelProto:
    """A small, valid model: y = Relu(x @ w + b)."""
    w = helper.make_tensor("w", F, [3, 4], [0.5] * 12)
    b = helper.make_tensor("b", F, [4], [0.25] * 4)
    return model(
        [
            helper.make_node("MatMul", ["x", "w"], ["xw"], name="matmul"),
            helper.make_node("Add", ["xw", "b"], ["h"], name="add"),
            helper.make_node("Relu", ["h"], ["y"], name="relu"),
        ],
        [vi("x", [2, 3])],
        [vi("y", [2, 4])],
        initializers=[w, b],
    )


def main() -> int:
    os.makedirs(OUT, exist_ok=True)

    good = valid()
    onnx.checker.check_model(good, full_check=True)
    good_bytes = good.SerializeToString()
    write("truncated.onnx", good_bytes[: len(good_bytes) // 2])
    write("random.onnx", random.Random(20240611).randbytes(256))
    write("empty.onnx", b"")

    # a -> b -> a: each node reads the other's output.
    write(
        "cycle.onnx",
        model(
            [
                helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
                helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
            ],
            [vi("x", [2, 3])],
            [vi("a", [2, 3])],
        ),
    )
    write(
        "undefined_input.onnx",
        model(
            [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
        ),
    )

    write("external_escape.onnx", external_model("../outside.bin"))
    write("external_absolute.onnx", external_model("/etc/passwd"))
    write("external_missing.onnx", external_model("missing_weights.bin"))
    # w needs 24 bytes; external_short.bin has 10.
    with open(os.path.join(OUT, "external_short.bin"), "wb") as f:
        f.write(bytes(range(10)))
    write("external_short.onnx", external_model("external_short.bin"))
    # ext_link/weights.bin is a symlink leaving the folder (to the repository's Cargo.toml).
    link_dir = os.path.join(OUT, "ext_link")
    os.makedirs(link_dir, exist_ok=True)
    link = os.path.join(link_dir, "weights.bin")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.join("..", "..", "..", "Cargo.toml"), link)
    write("external_symlink.onnx", external_model("ext_link/weights.bin"))

    write(
        "unknown_domain.onnx",
        model(
            [helper.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="com.example")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
            extra_opsets=[helper.make_opsetid("com.example", 1)],
        ),
    )
    write(
        "old_opset.onnx",
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
            opset=9,
        ),
    )
    write(
        "negative_dim.onnx",
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            [vi("x", [2, -3])],
            [vi("y", [2, 3])],
        ),
    )
    # 2^32 * 2^32 elements: the element count overflows int64.
    big = 1 << 32
    write(
        "overflow_dim.onnx",
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="relu")],
            [vi("x", [big, big])],
            [vi("y", [big, big])],
        ),
    )
    write(
        "duplicate_output.onnx",
        model(
            [
                helper.make_node("Relu", ["x"], ["y"], name="relu"),
                helper.make_node("Neg", ["x"], ["y"], name="neg"),
            ],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
        ),
    )
    # Det is ai.onnx but has no shape rule; its output is not typed by the file.
    write(
        "no_shape_rule.onnx",
        model(
            [
                helper.make_node("Det", ["x"], ["d"], name="det"),
                helper.make_node("Neg", ["d"], ["y"], name="neg"),
            ],
            [vi("x", [2, 3, 3])],
            [vi("y", [2])],
        ),
    )
    # Node `relu` writes its own graph input `x` (single assignment broken).
    write(
        "writes_input.onnx",
        model(
            [helper.make_node("Relu", ["x"], ["x"], name="relu")],
            [vi("x", [2, 3])],
            [vi("x", [2, 3])],
        ),
    )
    # A name with a newline and a terminal escape: the error must stay one inert line.
    write(
        "control_chars.onnx",
        model(
            [helper.make_node("Add", ["x", "evil\n\x1b[31mname"], ["y"], name="add")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
        ),
    )
    # A perm of length 3 for a rank-2 input.
    write(
        "bad_attribute.onnx",
        model(
            [helper.make_node("Transpose", ["x"], ["y"], name="transpose", perm=[1, 0, 2])],
            [vi("x", [2, 3])],
            [vi("y", [3, 2])],
        ),
    )
    # [2,3] float needs 24 bytes; raw_data has 5.
    w = TensorProto()
    w.name = "w"
    w.data_type = F
    w.dims.extend([2, 3])
    w.raw_data = b"\x00\x01\x02\x03\x04"
    write(
        "bad_raw_data.onnx",
        model(
            [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
            initializers=[w],
        ),
    )

    # An unnamed node (ONNX names are optional): errors name it by index, op and output.
    write(
        "unnamed_node.onnx",
        model(
            [
                helper.make_node("Relu", ["x"], ["h"], name="relu"),
                helper.make_node("Transpose", ["h"], ["y"], perm=[1, 0, 2]),
            ],
            [vi("x", [2, 3])],
            [vi("y", [3, 2])],
        ),
    )
    # Found by the structured fuzz (a Constant's value_ints set to 2^40): `expand_n` makes
    # an int64 tensor of shape [2^40] (too big to fold), and `expand` takes its length as
    # the rank of its output: the rule once allocated 2^40 dims (24 TiB) and aborted.
    write(
        "expand_huge_rank.onnx",
        model(
            [
                helper.make_node("Constant", [], ["n"], name="big", value_ints=[1 << 40]),
                helper.make_node("Constant", [], ["one"], name="one", value_ints=[1]),
                helper.make_node("Expand", ["one", "n"], ["target"], name="expand_n"),
                helper.make_node("Expand", ["x", "target"], ["y"], name="expand"),
            ],
            [vi("x", [2])],
            [vi("y", None)],
        ),
    )

    # Shape rules whose arithmetic overflows (they once panicked in onnx-ac-passes).
    def i64(name, values):
        return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)

    write(
        "tile_overflow.onnx",
        model(
            [helper.make_node("Tile", ["x", "reps"], ["y"], name="tile")],
            [vi("x", [2])],
            [vi("y", None)],
            initializers=[i64("reps", [1 << 62])],
        ),
    )
    write(
        "pad_overflow.onnx",
        model(
            [helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")],
            [vi("x", [2])],
            [vi("y", None)],
            initializers=[i64("pads", [1 << 62, 1 << 62])],
        ),
    )
    write(
        "constant_of_shape_overflow.onnx",
        model(
            [
                helper.make_node("ConstantOfShape", ["shape"], ["c"], name="cos"),
                helper.make_node("Add", ["c", "x"], ["y"], name="add"),
            ],
            [vi("x", [1])],
            [vi("y", None)],
            initializers=[i64("shape", [1 << 31, 1 << 31])],
        ),
    )

    # Item 13 of issue #12: models onnx-ac once accepted and turned into graphs ONNX
    # Runtime refuses.
    # `axis` of Concat given as a FLOAT (1.0): the rule read it as absent (axis 0).
    write(
        "attribute_wrong_type.onnx",
        model(
            [helper.make_node("Concat", ["x", "x"], ["y"], name="concat", axis=1.0)],
            [vi("x", [2, 3])],
            [vi("y", [2, 6])],
        ),
    )
    # Names whose type depends on the op are checked against the op's own table
    # (src/onnx/attr_types.rs): Pad's `mode` is a STRING (Resize's and GridSample's too),
    # given here as an INT.
    write(
        "pad_mode_int.onnx",
        model(
            [helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode=1)],
            [vi("x", [2, 3])],
            [vi("y", [2, 5])],
            initializers=[helper.make_tensor("pads", TensorProto.INT64, [4], [0, 1, 0, 1])],
        ),
    )
    # ConstantOfShape's `value` is a TENSOR (Constant's `value` too), given here as a FLOAT.
    write(
        "constant_of_shape_float_value.onnx",
        model(
            [helper.make_node("ConstantOfShape", ["shape"], ["y"], name="fill", value=2.0)],
            [],
            [vi("y", [2, 3])],
            initializers=[helper.make_tensor("shape", TensorProto.INT64, [2], [2, 3])],
        ),
    )
    # Two nodes named `act` (ONNX Runtime: "two nodes with same node name"); found by the
    # mutation fuzzer under --verify.
    write(
        "duplicate_node_name.onnx",
        model(
            [
                helper.make_node("Relu", ["x"], ["h"], name="act"),
                helper.make_node("Sigmoid", ["h"], ["y"], name="act"),
            ],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
        ),
    )
    # A Gemm of a DOUBLE input by FLOAT weights: onnx-ac's shape rules do not check ONNX's
    # type constraints, ONNX Runtime refuses the model. A valid input for onnx-ac's own
    # commands; `--verify` (and profiling) must refuse it as bad input, exit 2 (found by the
    # mutation fuzzer under --verify, where it was exit 1).
    write(
        "ort_type_mismatch.onnx",
        model(
            [helper.make_node("Gemm", ["x", "w"], ["y"], name="gemm")],
            [vi("x", [2, 3], TensorProto.DOUBLE)],
            [vi("y", [2, 4])],
            initializers=[helper.make_tensor("w", F, [3, 4], [0.5] * 12)],
        ),
    )
    # An attribute Relu does not have (ONNX Runtime: "Unrecognized attribute").
    write(
        "unknown_attribute.onnx",
        model(
            [helper.make_node("Relu", ["x"], ["y"], name="relu", foo=1)],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
        ),
    )
    # CumSum along axis 5 of a rank-2 input.
    write(
        "cumsum_axis.onnx",
        model(
            [helper.make_node("CumSum", ["x", "axis"], ["y"], name="cumsum")],
            [vi("x", [2, 3])],
            [vi("y", [2, 3])],
            initializers=[helper.make_tensor("axis", TensorProto.INT64, [], [5])],
        ),
    )
    # A valid model declaring IR version 14, above what ONNX Runtime 1.31.1 reads (13).
    ir14 = valid()
    ir14.ir_version = 14
    write("ir_version_14.onnx", ir14)

    # Item 6 of issue #12: inputs that once panicked.
    # ConvTranspose with a rank-2 weight (the rule indexed its dims 1 and 2..).
    write(
        "conv_transpose_rank2.onnx",
        model(
            [helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="deconv")],
            [vi("x", [1, 2, 4, 4])],
            [vi("y", None)],
            initializers=[helper.make_tensor("w", F, [2, 3], [0.5] * 6)],
        ),
    )
    # A Constant whose value tensor keeps its 8 bytes in external data (a file in this
    # folder): refused, naming the node, not read.
    cval = TensorProto()
    cval.data_type = F
    cval.dims.extend([2])
    cval.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "external_short.bin"), ("offset", "0"), ("length", "8")):
        e = cval.external_data.add()
        e.key = k
        e.value = v
    write(
        "constant_external.onnx",
        model(
            [
                helper.make_node("Constant", [], ["c"], name="const", value=cval),
                helper.make_node("Add", ["x", "c"], ["y"], name="add"),
            ],
            [vi("x", [2])],
            [vi("y", [2])],
        ),
    )

    # Item 5 of issue #12: logits with 2^40 classes (a graph input, so the file is tiny).
    # The cross-entropy gradient once built a constant [0, classes) and aborted on 8 TiB;
    # `inspect` picks that loss by default.
    write(
        "huge_classes.onnx",
        model(
            [helper.make_node("Add", ["x", "b"], ["logits"], name="add")],
            [vi("x", [2, 1 << 40])],
            [vi("logits", [2, 1 << 40])],
            initializers=[helper.make_tensor("b", F, [1], [0.5])],
        ),
    )

    # Item 4 of issue #12: a valid model whose OneHot (depth 2^40, a constant) makes ONNX
    # Runtime allocate 8 TiB when the training graph runs (profiling, --verify); the
    # counting allocator once handed back null and ONNX Runtime segfaulted.
    write(
        "onehot_huge_depth.onnx",
        model(
            [
                helper.make_node("OneHot", ["idx", "depth", "vals"], ["hot"], name="onehot"),
                helper.make_node("Mul", ["hot", "x"], ["hx"], name="mul_x"),
                helper.make_node("Mul", ["hx", "w"], ["y"], name="mul_w"),
                helper.make_node("ReduceSum", ["y"], ["loss"], name="sum", keepdims=0),
            ],
            [vi("x", [2, 1])],
            [vi("loss", [])],
            initializers=[
                i64("idx", [0, 1]),
                helper.make_tensor("depth", TensorProto.INT64, [], [1 << 40]),
                helper.make_tensor("vals", F, [2], [0.0, 1.0]),
                helper.make_tensor("w", F, [1], [0.5]),
            ],
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
