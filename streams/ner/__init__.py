"""The classical-Chinese entity model: silver data, training, and the onnxruntime tagger."""
