#!/usr/bin/env python3
"""make_ppl_ref.py — perplexity reference, computed the way llama.cpp's llama-perplexity does.

Usage:  python3 tests/ref/make_ppl_ref.py SHARED_DIR OUT_FILE

Model: SHARED_DIR/models/TinyStories-656K-hf with HF transformers (float64).
Text: the first 12000 bytes of SHARED_DIR/data/tinyshakespeare.txt, tokenized by the
folder's tokenizer.json (HF tokenizers; its post-processor adds BOS, as llama.cpp's
add_special does). Chunking as llama-perplexity: n_chunk = floor(n_tokens / c) chunks
of c = 128 tokens, each run from an empty cache with its first token replaced by BOS,
scoring the predictions of tokens c/2+1 .. c-1; the error is the standard error of the
mean NLL times the perplexity. Writes one line: "c n_tokens n_chunk ppl err".
"""
import math
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import LlamaForCausalLM

C = 128
N_BYTES = 12000


@torch.no_grad()
def main():
    shared, out = sys.argv[1], sys.argv[2]
    hf = os.path.join(shared, "models", "TinyStories-656K-hf")
    text = open(os.path.join(shared, "data", "tinyshakespeare.txt"), "rb").read()[:N_BYTES].decode("utf-8")
    tokens = Tokenizer.from_file(os.path.join(hf, "tokenizer.json")).encode(text).ids
    model = LlamaForCausalLM.from_pretrained(hf, dtype=torch.float64).eval()
    bos = model.config.bos_token_id
    n_chunk = len(tokens) // C
    nll, nll2, count = 0.0, 0.0, 0
    for k in range(n_chunk):
        chunk = list(tokens[k * C:(k + 1) * C])
        chunk[0] = bos
        logp = torch.log_softmax(model(torch.tensor([chunk])).logits[0], dim=-1)
        for pos in range(C // 2, C - 1):
            lp = float(logp[pos, chunk[pos + 1]])
            nll -= lp
            nll2 += lp * lp
            count += 1
    nll /= count
    nll2 = nll2 / count - nll * nll
    ppl = math.exp(nll)
    err = math.sqrt(nll2 / (count - 1)) * ppl
    with open(out, "w") as f:
        f.write(f"{C} {len(tokens)} {n_chunk} {ppl:.6f} {err:.6f}\n")
    print(open(out).read())


if __name__ == "__main__":
    main()
