#!/usr/bin/env python3
"""hf_bench.py — HF transformers on the same GPU, as the peer in bench/RESULTS.md.

A Llama-2-7B-shaped LlamaForCausalLM with random fp16 weights on cuda:0:
  * prompt processing: one forward over 512 tokens (tok/s);
  * generation, batch 1, 128 new tokens after a 1-token prompt:
      - eager with the default dynamic cache,
      - static cache, which makes generate() compile the forward (the setup HF documents).
Prints one markdown row per figure. Usage: python3 bench/hf_bench.py [--no-compile]
"""
import sys
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

N_PROMPT, N_GEN, REPS = 512, 128, 3


def build():
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).to(torch.float16).eval()
    return model


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


@torch.no_grad()
def main():
    model = build()
    ids = torch.randint(3, 32000, (1, N_PROMPT), device="cuda")
    model(ids)  # warm-up
    pp = [N_PROMPT / timed(lambda: model(ids)) for _ in range(REPS)]
    print(f"| HF transformers {transformers.__version__} (torch {torch.__version__}) fp16 eager | pp{N_PROMPT} | {sum(pp)/len(pp):.0f} tok/s |",
          flush=True)

    one = ids[:, :1]
    kw = dict(max_new_tokens=N_GEN, min_new_tokens=N_GEN, do_sample=False)
    model.generate(one, **kw)  # warm-up
    tg = [N_GEN / timed(lambda: model.generate(one, **kw)) for _ in range(REPS)]
    print(f"| HF transformers fp16 eager | tg{N_GEN} | {sum(tg)/len(tg):.1f} tok/s |", flush=True)

    if "--no-compile" not in sys.argv:
        # A static cache makes generate() compile the forward pass itself (transformers >= 4.46),
        # the setup its docs give for fast decoding.
        try:
            model.generation_config.cache_implementation = "static"
            for _ in range(2):
                model.generate(one, **kw)  # compile + warm-up
            tg = [N_GEN / timed(lambda: model.generate(one, **kw)) for _ in range(REPS)]
            print(f"| HF transformers fp16 static cache + compile | tg{N_GEN} | {sum(tg)/len(tg):.1f} tok/s |",
                  flush=True)
        except Exception as e:  # report, keep the eager figures
            print(f"| HF transformers fp16 static cache + compile | tg{N_GEN} | failed: {type(e).__name__} |")


if __name__ == "__main__":
    main()
