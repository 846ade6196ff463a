#!/usr/bin/env python3
"""make_tokenizer_ref.py — reference token ids from the reference libraries.

Writes, under OUT_DIR (default: tests/data/tokenizer next to this script's
tests/ folder), one file per (tokenizer, input set), one line of
space-separated ids per case, no BOS/EOS:

  tinystories_hf.<set>.ids  TinyStories-656K-hf/tokenizer.json, Hugging Face
                            `tokenizers` (Tokenizer.encode, add_special_tokens=False)
  llama2_spm.<set>.ids      vocab/llama2-tokenizer.model, `sentencepiece`
                            (SentencePieceProcessor.encode, out_type=int)

Input sets (the C test rebuilds the same cases):
  shakespeare   lines 1000..1299 (0-based, newline stripped) of data/tinyshakespeare.txt
  multilingual  tests/data/tokenizer/multilingual.txt
  inp           tokenizer-tests/ggml-vocab-llama-spm.gguf.inp
The two files with cases use llama.cpp's test format: cases separated by
"\\n__ggml_vocab_test__\\n" (test-tokenizer-0.cpp's splitting).

Usage:  python3 tests/ref/make_tokenizer_ref.py SHARED_DIR [OUT_DIR]
Needs:  pip packages `tokenizers` and `sentencepiece`.
"""
import os
import sys

SEP = "\n__ggml_vocab_test__\n"
SHAKESPEARE_FIRST, SHAKESPEARE_COUNT = 1000, 300


def split_cases(raw):
    """Same as llama.cpp's read_tests: split on SEP; a trailing SEP ends the list."""
    cases, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(SEP, pos)
        if nxt < 0:
            cases.append(raw[pos:])
            break
        cases.append(raw[pos:nxt])
        pos = nxt + len(SEP)
    return cases


def read_text(path):
    with open(path, "rb") as f:
        return f.read().decode("utf-8")


def input_sets(shared, tests_dir):
    lines = read_text(os.path.join(shared, "data", "tinyshakespeare.txt")).split("\n")
    return {
        "shakespeare": lines[SHAKESPEARE_FIRST:SHAKESPEARE_FIRST + SHAKESPEARE_COUNT],
        "multilingual": split_cases(read_text(os.path.join(tests_dir, "data", "tokenizer", "multilingual.txt"))),
        "inp": split_cases(read_text(os.path.join(shared, "tokenizer-tests", "ggml-vocab-llama-spm.gguf.inp"))),
    }


def write_ids(path, rows):
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for ids in rows:
            f.write(" ".join(str(i) for i in ids) + "\n")
    print(f"wrote {path} ({len(rows)} cases)")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    shared = sys.argv[1]
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(tests_dir, "data", "tokenizer")
    os.makedirs(out_dir, exist_ok=True)
    sets = input_sets(shared, tests_dir)

    from tokenizers import Tokenizer
    import sentencepiece as spm

    hf = Tokenizer.from_file(os.path.join(shared, "models", "TinyStories-656K-hf", "tokenizer.json"))
    sp = spm.SentencePieceProcessor(model_file=os.path.join(shared, "models", "vocab", "llama2-tokenizer.model"))
    for name, cases in sets.items():
        write_ids(os.path.join(out_dir, f"tinystories_hf.{name}.ids"),
                  [hf.encode(c, add_special_tokens=False).ids for c in cases])
        write_ids(os.path.join(out_dir, f"llama2_spm.{name}.ids"),
                  [sp.encode(c, out_type=int) for c in cases])


if __name__ == "__main__":
    main()
