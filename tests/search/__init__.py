"""Embedders, the ONNX encoder, embedding units, the vector store and the search service."""
