#!/usr/bin/env python3
"""make_tiny_models.py — tiny random HF models covering what the shared models do not.

Usage:  python3 tests/ref/make_tiny_models.py SHARED_DIR OUT_DIR

Writes OUT_DIR/<name>/ (config.json, model.safetensors, tokenizer.json and
tokenizer_config.json copied from SHARED_DIR/models/TinyStories-656K-hf, so
the vocabulary is 2048) and OUT_DIR/<name>.logits.bin (same format as
make_logits_ref.py: logits of every position and 64 greedy tokens, computed by
transformers in float64 from the stored weights):

  qwen2-bias-bf16     Qwen2ForCausalLM: q/k/v biases, NeoX RoPE, GQA 4/2, bf16 weights,
                      untied output, rope_theta 1e6
  llama3-rope-f16     LlamaForCausalLM: Llama 3.1 rope scaling (factor 8, low 1,
                      high 4, original context 64, passed by the greedy tokens), GQA 4/1, head_dim 16 != hidden/heads,
                      f16 weights, tied embeddings
  llama-linear-f32    LlamaForCausalLM: linear rope scaling (factor 4), f32 weights

Weights are drawn with a fixed seed and scaled up (std 0.2) so that the logits
depend strongly on every part of the network.
"""
import json
import os
import shutil
import struct
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

N_GREEDY = 64
IDS = [[1, 80, 147, 201, 282, 215, 286, 64, 207, 161, 92, 15], [1, 80, 247, 411, 107, 72]]

MODELS = {
    "qwen2-bias-bf16": (Qwen2Config, Qwen2ForCausalLM, torch.bfloat16, dict(
        hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        rope_theta=1e6, tie_word_embeddings=False, max_position_embeddings=256, rms_norm_eps=1e-6)),
    "llama3-rope-f16": (LlamaConfig, LlamaForCausalLM, torch.float16, dict(
        hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
        head_dim=16, tie_word_embeddings=True, max_position_embeddings=512, rope_theta=500000.0,
        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=64))),
    "llama-linear-f32": (LlamaConfig, LlamaForCausalLM, torch.float32, dict(
        hidden_size=16, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
        tie_word_embeddings=False, max_position_embeddings=256, rope_scaling=dict(rope_type="linear", factor=4.0))),
}


@torch.no_grad()
def make(name, cfg_cls, model_cls, dtype, kw, shared, out):
    torch.manual_seed(sum(map(ord, name)))
    cfg = cfg_cls(vocab_size=2048, bos_token_id=1, eos_token_id=2, **kw)
    model = model_cls(cfg)
    for p in model.parameters():
        p.normal_(0.0, 0.2)
    model = model.to(dtype)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(shared, "models", "TinyStories-656K-hf", f), folder)
    ref = model_cls.from_pretrained(folder, dtype=torch.float64).eval()  # the stored weights, upcast
    cases, blobs, offset = [], [], 0
    for ids in IDS:
        logits = ref(torch.tensor([ids])).logits[0].to(torch.float32).numpy()
        seq, margins = list(ids), []
        for _ in range(N_GREEDY):
            last = ref(torch.tensor([seq])).logits[0, -1]
            top2 = torch.topk(last, 2)
            margins.append(float(top2.values[0] - top2.values[1]))
            seq.append(int(top2.indices[0]))
        blob = logits.astype("<f4").tobytes()
        cases.append({"ids": ids, "logits": {"offset": offset, "shape": list(logits.shape)},
                      "greedy": seq[len(ids):], "greedy_min_margin": min(margins)})
        blobs.append(blob)
        offset += len(blob)
    header = json.dumps({"model": name, "dtype": "float64-computed, stored float32", "torch": torch.__version__,
                         "cases": cases}).encode()
    with open(os.path.join(out, name + ".logits.bin"), "wb") as f:
        f.write(b"RSREF1\0\0" + struct.pack("<Q", len(header)) + header + b"".join(blobs))
    print(name, "min greedy margin %.4g" % min(c["greedy_min_margin"] for c in cases))


def main():
    shared, out = sys.argv[1], sys.argv[2]
    for name, (cfg_cls, model_cls, dtype, kw) in MODELS.items():
        make(name, cfg_cls, model_cls, dtype, kw, shared, out)


if __name__ == "__main__":
    main()
