"""Checks that a model saved by onnx-ac keeps everything of the original:
`compare_models.py ORIGINAL SAVED` runs onnx.checker (full check) on SAVED and compares
nodes, attributes, initializers (values), inputs, outputs, value_info, opsets, metadata and
doc strings. Tensor encodings may differ (typed fields become raw_data); values may not."""
import sys
import numpy as np
import onnx
import onnx.numpy_helper as nh

a = onnx.load(sys.argv[1])
b = onnx.load(sys.argv[2])
onnx.checker.check_model(b, full_check=True)
problems = []

def same(what, x, y):
    if x != y:
        problems.append(f"{what}: {x!r} != {y!r}")

for f in ["ir_version", "producer_name", "producer_version", "domain", "model_version", "doc_string"]:
    same(f, getattr(a, f), getattr(b, f))
same("opset_import", [(o.domain, o.version) for o in a.opset_import], [(o.domain, o.version) for o in b.opset_import])
same("metadata_props", [(p.key, p.value) for p in a.metadata_props], [(p.key, p.value) for p in b.metadata_props])
same("functions", [f.SerializeToString() for f in a.functions], [f.SerializeToString() for f in b.functions])
ga, gb = a.graph, b.graph
same("graph.name", ga.name, gb.name)
same("graph.doc_string", ga.doc_string, gb.doc_string)
same("inputs", [i.SerializeToString() for i in ga.input], [i.SerializeToString() for i in gb.input])
same("outputs", [o.SerializeToString() for o in ga.output], [o.SerializeToString() for o in gb.output])
vi_a = {v.name: v.SerializeToString() for v in ga.value_info}
vi_b = {v.name: v.SerializeToString() for v in gb.value_info}
for k, v in vi_a.items():
    if vi_b.get(k) != v:
        problems.append(f"value_info {k} differs or is missing")
same("node count", len(ga.node), len(gb.node))

def canon_node(n):
    n = onnx.NodeProto.FromString(n.SerializeToString())
    for attr in n.attribute:
        if attr.HasField("t"):
            arr = nh.to_array(attr.t)
            t = nh.from_array(arr, attr.t.name)
            attr.t.CopyFrom(t)
    return n.SerializeToString()

for i, (x, y) in enumerate(zip(ga.node, gb.node)):
    if canon_node(x) != canon_node(y):
        problems.append(f"node {i} ({x.name}, {x.op_type}) differs")
same("initializer names", [t.name for t in ga.initializer], [t.name for t in gb.initializer])
for x, y in zip(ga.initializer, gb.initializer):
    xa, ya = nh.to_array(x), nh.to_array(y)
    if xa.dtype != ya.dtype or xa.shape != ya.shape or not np.array_equal(xa, ya, equal_nan=True):
        problems.append(f"initializer {x.name} values differ")
    same(f"initializer {x.name} doc", x.doc_string, y.doc_string)
if problems:
    print("\n".join(problems[:30]))
    sys.exit(1)
print(f"ok: {len(gb.node)} nodes, {len(gb.initializer)} initializers")
