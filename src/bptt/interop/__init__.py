"""Files and other frameworks: atomic safetensors files (io), checkpoints of modules (serialization),
conversion to and from torch.nn (torch_interop), and ONNX export (onnx_export)."""
