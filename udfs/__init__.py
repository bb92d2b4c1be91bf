"""Inference runtimes: ONNX conversion and signatures, onnxruntime sessions and Arrow UDFs."""
