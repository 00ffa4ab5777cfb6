"""Runs a model in ONNX Runtime with every intermediate value exposed as an output and
prints {name: [onnx elem type, shape]} as JSON, for checking shape inference.
Usage: ort_shapes.py MODEL.onnx INPUTS.pb  (INPUTS.pb: a GraphProto whose initializers
hold the input tensors, as the fixtures' .ref.pb files do)"""
import json
import sys
import onnx
import onnx.numpy_helper as nh
import onnxruntime as ort
from onnx import helper

m = onnx.load(sys.argv[1])
ref = onnx.GraphProto()
ref.ParseFromString(open(sys.argv[2], "rb").read())
data = {t.name: nh.to_array(t) for t in ref.initializer}
existing = {o.name for o in m.graph.output}
inits = {t.name for t in m.graph.initializer}
for n in m.graph.node:
    for o in n.output:
        if o and o not in existing and o not in inits:
            m.graph.output.append(helper.ValueInfoProto(name=o))
            existing.add(o)
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
so.log_severity_level = 3
sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
feeds = {i.name: data[i.name] for i in sess.get_inputs()}
names = [o.name for o in sess.get_outputs()]
outs = sess.run(None, feeds)
res = {}
for name, v in zip(names, outs):
    if hasattr(v, "shape"):
        res[name] = [int(helper.np_dtype_to_tensor_dtype(v.dtype)), list(v.shape)]
print(json.dumps(res, sort_keys=True))
