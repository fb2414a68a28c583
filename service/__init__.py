"""Bundle -> HTTP: settings, schemas, routes, batcher, runtime (ONNX Runtime). Never imports torch."""
