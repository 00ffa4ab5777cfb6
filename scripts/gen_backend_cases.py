#!/usr/bin/env python3
"""Writes ONNX's backend *node* test cases to OUT_DIR, in ONNX's standard layout:

    OUT_DIR/<case>/model.onnx
    OUT_DIR/<case>/test_data_set_0/input_<j>.pb, output_<j>.pb

The cases come from the generators the `onnx` wheel ships
(`onnx.backend.test.case.node.collect_testcases`, about 1,900 cases in ~20 s); the wheel
itself does not ship the `data/node` files. The serialization follows
`onnx/backend/test/cmd_tools.py` (tensors as TensorProto, sequences/maps/optionals as their
own protos). Used by `tests/peer_shape_suite.rs`; see docs/shape-suite.md.

Usage: .venv/bin/python scripts/gen_backend_cases.py OUT_DIR
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings


def _serialize(value, type_proto, name: str) -> bytes:
    from onnx import TensorProto, numpy_helper

    if type_proto.HasField("map_type"):
        return numpy_helper.from_dict(value, name).SerializeToString()
    if type_proto.HasField("sequence_type"):
        return numpy_helper.from_list(value, name).SerializeToString()
    if type_proto.HasField("optional_type"):
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, TensorProto):
        return value.SerializeToString()
    return numpy_helper.from_array(value, name).SerializeToString()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = os.path.abspath(sys.argv[1])
    import onnx.backend.test.case.node as node_cases

    # Some generators divide by zero on purpose (inf expectations); numpy warns.
    warnings.simplefilter("ignore", RuntimeWarning)
    cases = node_cases.collect_testcases()
    # Write into a sibling temp folder and rename at the end, so an interrupted run never
    # leaves a half-written case folder that a later test run would trust.
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".cases-", dir=parent)
    written = 0
    for case in cases:
        if case.kind != "node" or case.model is None or not case.data_sets:
            continue
        case_dir = os.path.join(staging, case.name)
        os.makedirs(case_dir)
        with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
            f.write(case.model.SerializeToString())
        graph = case.model.graph
        for i, (inputs, outputs) in enumerate(case.data_sets):
            data_dir = os.path.join(case_dir, f"test_data_set_{i}")
            os.makedirs(data_dir)
            for kind, values, infos in (
                ("input", inputs, graph.input),
                ("output", outputs, graph.output),
            ):
                for j, value in enumerate(values):
                    blob = _serialize(value, infos[j].type, infos[j].name)
                    with open(os.path.join(data_dir, f"{kind}_{j}.pb"), "wb") as f:
                        f.write(blob)
        written += 1
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir, ignore_errors=True)
    try:
        os.rename(staging, out_dir)
    except OSError:
        # A concurrent run renamed its copy first: keep that one.
        shutil.rmtree(staging, ignore_errors=True)
        if not os.path.isfile(os.path.join(out_dir, "test_abs", "model.onnx")):
            raise
    print(f"gen_backend_cases: wrote {written} cases to {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
