/* llamacpp_logits.c — llama.cpp's logits for a GGUF file and a list of token ids.
 *
 * The independent reference for Rusty's quantized forward pass: llama.cpp is where
 * GGUF's block formats come from. Built and run by tests/ref/make_llamacpp_ref.py
 * against Debian's libllama (bench/peer.sh stage packs it); not part of Rusty.
 *
 *   llamacpp_logits MODEL OUT N_GREEDY ID...
 *
 * Evaluates the ids as one batch on the CPU (one thread, F32 KV cache, no flash
 * attention) and writes the logits of every position to OUT as float32
 * [n_ids][n_vocab]; then decodes N_GREEDY tokens greedily, one at a time, and prints
 * "greedy ID..." and "margin M" (the smallest top-1 minus top-2 logit gap seen). */
#include <llama.h>
#include <stdio.h>
#include <stdlib.h>

/* Index of the largest logit; *gap = its lead over the second largest. */
static int argmax(const float *x, int n, float *gap) {
    int best = 0, second = -1;
    for (int i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            second = best;
            best = i;
        } else if (second < 0 || x[i] > x[second]) {
            second = i;
        }
    }
    *gap = second < 0 ? 0 : x[best] - x[second];
    return best;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: llamacpp_logits MODEL OUT N_GREEDY ID...\n");
        return 2;
    }
    int n_ids = argc - 4, n_greedy = atoi(argv[3]);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) return fprintf(stderr, "%s: load failed\n", argv[1]), 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(n_ids + n_greedy + 8);
    cp.n_batch = cp.n_ubatch = (uint32_t)n_ids;
    cp.n_threads = cp.n_threads_batch = 1;
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return fprintf(stderr, "context failed\n"), 1;
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    struct llama_batch b = llama_batch_init(n_ids, 0, 1);
    for (int i = 0; i < n_ids; i++) {
        b.token[i] = atoi(argv[4 + i]);
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = n_ids;
    if (llama_decode(ctx, b)) return fprintf(stderr, "decode failed\n"), 1;
    FILE *out = fopen(argv[2], "wb");
    if (!out) return perror(argv[2]), 1;
    for (int i = 0; i < n_ids; i++)
        fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, out);
    fclose(out);

    float margin = 1e30f, gap;
    int tok = argmax(llama_get_logits_ith(ctx, n_ids - 1), n_vocab, &gap);
    printf("greedy");
    for (int g = 0; g < n_greedy; g++) {
        margin = gap < margin ? gap : margin;
        printf(" %d", tok);
        struct llama_batch one = llama_batch_get_one(&tok, 1);
        if (llama_decode(ctx, one)) return fprintf(stderr, "decode failed\n"), 1;
        tok = argmax(llama_get_logits_ith(ctx, -1), n_vocab, &gap);
    }
    printf("\nmargin %g\n", margin);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
