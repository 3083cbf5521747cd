"""convert — merge a trained adapter, convert to GGUF with llama.cpp's own converter, quantize, prove parity."""
