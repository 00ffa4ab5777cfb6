"""Runs a training graph made by `onnx-ac train-graph` in ONNX Runtime on a fixture's saved
inputs and compares loss and gradients with the torch-autograd references (ref.pb).
Usage: check_grads.py TRAIN.onnx REF.pb   (prints one line per tensor; exit 1 on mismatch)"""
import sys
import numpy as np
import onnx
import onnx.numpy_helper as nh
import onnxruntime as ort

train_path, ref_path = sys.argv[1], sys.argv[2]
ref = onnx.GraphProto()
ref.ParseFromString(open(ref_path, "rb").read())
tensors = {t.name: nh.to_array(t) for t in ref.initializer}
m = onnx.load(train_path)
onnx.checker.check_model(m, full_check=True)
sess = ort.InferenceSession(train_path, providers=["CPUExecutionProvider"])
feeds = {i.name: tensors[i.name] for i in sess.get_inputs()}
names = [o.name for o in sess.get_outputs()]
outs = dict(zip(names, sess.run(None, feeds)))
G = max(float(np.abs(v).max()) for k, v in tensors.items() if k.endswith(".grad"))
worst = 0.0
ok = True
loss_err = abs(float(outs["loss"]) - float(tensors["loss"]))
print(f"loss ours={float(outs['loss']):.7f} ref={float(tensors['loss']):.7f} err={loss_err:.2e}")
ok &= loss_err <= 1e-5 * max(1.0, abs(float(tensors['loss'])))
for k, b in tensors.items():
    if not k.endswith(".grad"):
        continue
    if k not in outs:
        print(f"MISSING {k}")
        ok = False
        continue
    a = outs[k]
    err = float(np.abs(a - b).max())
    tol = 1e-4 * (float(np.abs(b).max()) + 1e-3 * G)
    scaled = err / tol if tol > 0 else 0.0
    worst = max(worst, scaled)
    if err > tol:
        print(f"BAD {k} err={err:.3e} tol={tol:.3e}")
        ok = False
extra = [n for n in names if n != "loss" and n not in tensors]
if extra:
    print("extra outputs:", extra)
print(f"worst scaled error {worst:.3f} (1.0 = tolerance)")
sys.exit(0 if ok else 1)
