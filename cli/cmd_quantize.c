/* cmd_quantize.c — `rusty quantize IN OUT TYPE`: write a model as GGUF in another type.
 * IN may be a .gguf file or a Hugging Face folder (which this converts). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "commands.h"
#include "convert/quantize.h"
#include "engine/generate.h"

static const char quantize_usage[] =
    "usage: rusty quantize IN OUT TYPE [-t THREADS] [--pure]\n"
    "\n"
    "Writes IN (a .gguf file or a Hugging Face folder) to OUT as GGUF with its weight\n"
    "matrices in TYPE; norms and biases stay as they are. From an HF folder this is a\n"
    "conversion: q/k rows are put in GGUF's layout and the tokenizer is carried over.\n"
    "\n"
    "TYPE: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M\n"
    "      Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS (Q3_K, Q4_K, Q5_K: the _S types)\n"
    "  As llama.cpp does, output.weight is Q6_K for quantized types other than Q8_0;\n"
    "  Q2_K, Q3_K_M, Q3_K_L, the _M types, IQ4_NL and IQ4_XS give attn_v, attn_output\n"
    "  and ffn_down more bits (in some layers); rows that a type's block does not divide\n"
    "  fall back to a type that fits.\n"
    "\n"
    "  -t, --threads N   threads (default: physical cores)\n"
    "  --pure            every matrix in TYPE, no exceptions\n";

static void progress(void *user, const char *name, rs_dtype from, rs_dtype to, int i, int n) {
    (void)user;
    fprintf(stderr, "[%4d/%4d] %-36s %-7s -> %s\n", i, n, name, rs_dtype_name(from),
            rs_dtype_name(to));
}

int cmd_quantize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        fputs(quantize_usage, stdout);
        return 0;
    }
    const char *pos[3];
    int n_pos = 0;
    rs_quantize_params p = {.progress = progress};
    cli_args a = {"quantize", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        const char *arg = argv[a.i];
        int64_t v;
        if (cli_is(arg, "-t", "--threads")) {
            if (!cli_take_int(&a, 1, 1024, &v)) return 1;
            p.n_threads = (int)v;
        } else if (cli_is(arg, NULL, "--pure")) {
            p.pure = true;
        } else if (arg[0] == '-' && arg[1]) {
            return cli_usage_error("quantize", "unknown option '%s'", arg);
        } else if (n_pos < 3) {
            pos[n_pos++] = arg;
        } else {
            return cli_usage_error("quantize", "unexpected argument '%s'", arg);
        }
    }
    if (n_pos != 3) return cli_usage_error("quantize", "need IN, OUT and TYPE");
    if (!rs_ftype_from_name(pos[2], &p.ftype))
        return cli_usage_error("quantize", "unknown type '%s'", pos[2]);
    rs_error err = {0};
    double t0 = rs_time_ms();
    if (rs_quantize_model(pos[0], pos[1], &p, &err) != RS_OK) {
        fprintf(stderr, "rusty quantize: %s\n", err.msg);
        return 1;
    }
    struct stat st;
    double mib = stat(pos[1], &st) == 0 ? (double)st.st_size / (1 << 20) : 0;
    fprintf(stderr, "rusty: wrote %s (%s, %.1f MiB) in %.1f s\n", pos[1], rs_ftype_name(p.ftype),
            mib, (rs_time_ms() - t0) / 1e3);
    return 0;
}
