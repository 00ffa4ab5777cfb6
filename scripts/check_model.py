"""`check_model.py MODEL`: onnx.checker full check; prints ok or the error (exit 1)."""
import sys
import onnx

try:
    onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)
except Exception as e:  # noqa: BLE001 - report any checker failure
    print(f"{sys.argv[1]}: {e}")
    sys.exit(1)
print("ok")
