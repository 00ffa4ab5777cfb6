//! Control flow: If, Loop. No rules (their subgraphs are opaque to onnx-ac); the registry
//! records that their outputs' sizes depend on the data.
//! Spec: https://onnx.ai/onnx/operators/onnx__If.html,
//! https://onnx.ai/onnx/operators/onnx__Loop.html.
