#!/usr/bin/env python3
"""make_logits_ref.py — reference logits and greedy generations from PyTorch / HF transformers.

Makes tests/data/ref/<model>.logits.bin for the shared models, computed in float64
by transformers' LlamaForCausalLM (the independent reference for Rusty's forward
pass). Usage (on a machine with torch + transformers):

    python3 tests/ref/make_logits_ref.py SHARED_MODELS_DIR OUT_DIR

Models:
  * TinyStories-656K-hf/ (safetensors + config.json), loaded by transformers as is.
  * stories260K.gguf: F32 tensors read with a small standalone GGUF parser below,
    q/k rows un-permuted from GGUF's adjacent-pair RoPE layout to HF's rotate-half
    layout, then loaded into a LlamaForCausalLM with the GGUF's hyper-parameters.

File format (little-endian): 8 bytes magic b"RSREF1\\0\\0", u64 JSON length, JSON,
then raw float32 arrays at the offsets the JSON gives (relative to the end of
the JSON). JSON: {"model": ..., "dtype": "float64-computed, stored float32",
"cases": [{"ids": [...], "logits": {"offset": o, "shape": [n_pos, n_vocab]},
"greedy": [...64 ids...], "greedy_min_margin": m}, ...]}.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

N_GREEDY = 64


# ---- minimal GGUF reader (v2/v3, F32 tensors only) ------------------------------------
def read_gguf(path):
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from("<" + fmt, data, off)
        off += struct.calcsize("<" + fmt)
        return v[0]

    def take_str():
        nonlocal off
        n = take("Q")
        s = data[off:off + n].decode("utf-8", errors="replace")
        off += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def take_value(t):
        if t in scalar:
            return take(scalar[t])
        if t == 8:
            return take_str()
        if t == 9:
            et = take("I")
            n = take("Q")
            return [take_value(et) for _ in range(n)]
        raise ValueError("bad type %d" % t)

    assert data[:4] == b"GGUF"
    off = 4
    version = take("I")
    assert version in (2, 3), version
    n_tensors = take("Q")
    n_kv = take("Q")
    meta = {}
    for _ in range(n_kv):
        k = take_str()
        meta[k] = take_value(take("I"))
    infos = []
    for _ in range(n_tensors):
        name = take_str()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ = take("I")
        o = take("Q")
        infos.append((name, ne, typ, o))
    align = meta.get("general.alignment", 32)
    base = (off + align - 1) // align * align
    tensors = {}
    for name, ne, typ, o in infos:
        assert typ == 0, "only F32 supported here: %s" % name
        n = int(np.prod(ne))
        arr = np.frombuffer(data, dtype="<f4", count=n, offset=base + o)
        tensors[name] = arr.reshape(list(reversed(ne))).astype(np.float64)
    return meta, tensors


def unpermute_gguf_qk(w, n_head):
    """GGUF row h*hd + 2*i + j  ->  HF row h*hd + j*(hd/2) + i."""
    rows, cols = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def gguf_llama(path):
    meta, t = read_gguf(path)
    arch = meta["general.architecture"]
    n_layer = meta[arch + ".block_count"]
    n_head = meta[arch + ".attention.head_count"]
    n_kv = meta.get(arch + ".attention.head_count_kv", n_head)
    cfg = LlamaConfig(
        vocab_size=t["token_embd.weight"].shape[0],
        hidden_size=meta[arch + ".embedding_length"],
        intermediate_size=meta[arch + ".feed_forward_length"],
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_kv,
        rms_norm_eps=meta[arch + ".attention.layer_norm_rms_epsilon"],
        rope_theta=meta.get(arch + ".rope.freq_base", 10000.0),
        max_position_embeddings=meta.get(arch + ".context_length", 2048),
        tie_word_embeddings="output.weight" not in t,
        bos_token_id=meta.get("tokenizer.ggml.bos_token_id", 1),
        eos_token_id=meta.get("tokenizer.ggml.eos_token_id", 2),
    )
    sd = {"model.embed_tokens.weight": t["token_embd.weight"], "model.norm.weight": t["output_norm.weight"]}
    if "output.weight" in t:
        sd["lm_head.weight"] = t["output.weight"]
    for i in range(n_layer):
        p, q = "blk.%d." % i, "model.layers.%d." % i
        sd[q + "input_layernorm.weight"] = t[p + "attn_norm.weight"]
        sd[q + "self_attn.q_proj.weight"] = unpermute_gguf_qk(t[p + "attn_q.weight"], n_head)
        sd[q + "self_attn.k_proj.weight"] = unpermute_gguf_qk(t[p + "attn_k.weight"], n_kv)
        sd[q + "self_attn.v_proj.weight"] = t[p + "attn_v.weight"]
        sd[q + "self_attn.o_proj.weight"] = t[p + "attn_output.weight"]
        sd[q + "post_attention_layernorm.weight"] = t[p + "ffn_norm.weight"]
        sd[q + "mlp.gate_proj.weight"] = t[p + "ffn_gate.weight"]
        sd[q + "mlp.up_proj.weight"] = t[p + "ffn_up.weight"]
        sd[q + "mlp.down_proj.weight"] = t[p + "ffn_down.weight"]
    model = LlamaForCausalLM(cfg).to(torch.float64)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()},
                                                strict=False)
    assert not unexpected, unexpected
    assert all("lm_head" in m for m in missing), missing  # tied head only
    if cfg.tie_word_embeddings:
        model.tie_weights()
    tokens = meta["tokenizer.ggml.tokens"]
    return model.eval(), tokens


def greedy_spm(text, tokens):
    """Longest-match tokenization of ' '+text with '▁' for spaces: just a plausible input."""
    index = {s: i for i, s in enumerate(tokens)}
    s = "\u2581" + text.replace(" ", "\u2581")
    ids, i = [], 0
    while i < len(s):
        for j in range(len(s), i, -1):
            if s[i:j] in index:
                ids.append(index[s[i:j]])
                i = j
                break
        else:
            for b in s[i].encode("utf-8"):
                ids.append(index["<0x%02X>" % b])
            i += 1
    return ids


@torch.no_grad()
def run_cases(model, prompts_ids):
    cases, blobs, offset = [], [], 0
    for ids in prompts_ids:
        x = torch.tensor([ids])
        logits = model(x).logits[0].to(torch.float32).numpy()
        # greedy continuation, full recompute each step (no cache: the simplest reference)
        seq, margins = list(ids), []
        for _ in range(N_GREEDY):
            last = model(torch.tensor([seq])).logits[0, -1]
            top2 = torch.topk(last, 2)
            margins.append(float(top2.values[0] - top2.values[1]))
            seq.append(int(top2.indices[0]))
        blob = np.ascontiguousarray(logits, dtype="<f4").tobytes()
        cases.append({"ids": ids, "logits": {"offset": offset, "shape": list(logits.shape)},
                      "greedy": seq[len(ids):], "greedy_min_margin": min(margins)})
        blobs.append(blob)
        offset += len(blob)
    return cases, b"".join(blobs)


def write_ref(path, model_name, cases, blob):
    header = json.dumps({"model": model_name, "dtype": "float64-computed, stored float32",
                         "torch": torch.__version__, "cases": cases}).encode()
    with open(path, "wb") as f:
        f.write(b"RSREF1\0\0")
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        f.write(blob)
    print("wrote", path, os.path.getsize(path), "bytes")


def main():
    shared, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)

    # TinyStories-656K from the HF folder, tokenized with its own tokenizer.json.
    from tokenizers import Tokenizer
    hf_dir = os.path.join(shared, "TinyStories-656K-hf")
    model = LlamaForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float64).eval()
    tok = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    prompts = ["Once upon a time, there was a little", "The cat sat", "Lily and Ben went to the park. They saw a big"]
    ids = [tok.encode(p).ids for p in prompts]  # includes the post-processor's BOS
    cases, blob = run_cases(model, ids)
    write_ref(os.path.join(out, "TinyStories-656K.logits.bin"), "TinyStories-656K-hf", cases, blob)

    # stories260K from its GGUF.
    model, tokens = gguf_llama(os.path.join(shared, "stories260K.gguf"))
    prompts = ["Once upon a time", "The little girl", "One day, a big dog named Max"]
    ids = [[1] + greedy_spm(p, tokens) for p in prompts]
    cases, blob = run_cases(model, ids)
    write_ref(os.path.join(out, "stories260K.logits.bin"), "stories260K.gguf", cases, blob)


if __name__ == "__main__":
    main()
