/* cmd_tokenize.c — `rusty tokenize` and `rusty detokenize`: text ⇄ token ids
 * with a model's vocabulary (a .gguf file, a Hugging Face folder, or a
 * SentencePiece tokenizer.model). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "io/gguf.h"
#include "tokenizer/tokenizer.h"

int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);

static void tokenize_help(void) {
    printf("usage: rusty tokenize -m MODEL (-p TEXT | -f FILE) [options]\n\n"
           "Prints the token ids of exactly the given bytes (no trailing newline is added\n"
           "or removed), space-separated on one line.\n\n"
           "  -m, --model PATH    a .gguf file, a Hugging Face folder (tokenizer.json or\n"
           "                      tokenizer.model), or a SentencePiece .model file\n"
           "  -p, --prompt TEXT   the text to tokenize\n"
           "  -f, --file FILE     tokenize the bytes of FILE\n"
           "  --add-special       add BOS/EOS (CLS/SEP) as the vocabulary asks\n"
           "  --parse-special     turn special-token text such as <|im_start|> or <s> into\n"
           "                      its id (default: it is plain text)\n"
           "  --pieces            one token per line: ID<TAB>PIECE, where PIECE is the\n"
           "                      token's decoded bytes with \\n \\t \\r \\\\ and non-UTF-8\n"
           "                      bytes (\\xNN) escaped\n"
           "  --count             print only the number of tokens\n"
           "  -h, --help          this help\n");
}

static void detokenize_help(void) {
    printf("usage: rusty detokenize -m MODEL [options] [IDS...]\n\n"
           "Writes the text of the token ids, exactly (no newline is added). IDS may be\n"
           "separate arguments or one argument of ids separated by spaces or commas;\n"
           "without IDS they are read from standard input.\n\n"
           "  -m, --model PATH    as for rusty tokenize\n"
           "  --special           render control tokens (<s>, <|im_end|>, ...) as text\n"
           "  --keep-space        keep the leading space SentencePiece vocabularies add\n"
           "  -h, --help          this help\n");
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Loads the vocabulary of MODEL; prints the error and returns NULL on failure. */
static rs_tokenizer *open_model(const char *cmd, const char *path) {
    rs_error err = {0};
    rs_tokenizer *t = NULL;
    rs_status st;
    if (is_dir(path)) {
        st = rs_tokenizer_load_hf(&t, path, &err);
    } else if (ends_with(path, ".model")) {
        rs_meta m;
        rs_meta_init(&m);
        st = rs_tokenizer_spm_model_to_meta(path, &m, &err);
        if (!st) st = rs_tokenizer_load_meta(&t, &m, &err);
        rs_meta_free(&m);
    } else {
        rs_gguf g;
        st = rs_gguf_open(&g, path, &err);
        if (!st) {
            st = rs_tokenizer_load_meta(&t, &g.meta, &err);
            rs_gguf_close(&g);
        }
    }
    if (st) {
        fprintf(stderr, "rusty %s: %s: %s\n", cmd, path, err.msg);
        return NULL;
    }
    return t;
}

static char *read_all(FILE *f, size_t *n) {
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    while (b) {
        len += fread(b + len, 1, cap - len, f);
        if (len < cap) break;
        char *g = realloc(b, cap * 2);
        if (!g) {
            free(b);
            return NULL;
        }
        b = g, cap *= 2;
    }
    *n = len;
    return b;
}

static void print_piece(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\n')
            fputs("\\n", stdout);
        else if (c == '\t')
            fputs("\\t", stdout);
        else if (c == '\r')
            fputs("\\r", stdout);
        else if (c == '\\')
            fputs("\\\\", stdout);
        else if (c < 0x20 || c == 0x7F)
            printf("\\x%02X", c);
        else if (c < 0x80)
            putchar(c);
        else { /* keep valid UTF-8 sequences, escape stray bytes */
            size_t l = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
            bool ok = l && i + l <= n;
            for (size_t k = 1; ok && k < l; k++) ok = ((unsigned char)p[i + k] & 0xC0) == 0x80;
            if (!ok) {
                printf("\\x%02X", c);
                continue;
            }
            fwrite(p + i, 1, l, stdout);
            i += l - 1;
        }
    }
}

int cmd_tokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        tokenize_help();
        return 0;
    }
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool add_special = false, parse_special = false, pieces = false, count = false;
    cli_args a = {"tokenize", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        const char *arg = argv[a.i];
        if (cli_is(arg, "-m", "--model")) {
            if (!cli_take_str(&a, &model)) return 1;
        } else if (cli_is(arg, "-p", "--prompt")) {
            if (!cli_take_str(&a, &prompt)) return 1;
        } else if (cli_is(arg, "-f", "--file")) {
            if (!cli_take_str(&a, &file)) return 1;
        } else if (cli_is(arg, NULL, "--add-special")) {
            add_special = true;
        } else if (cli_is(arg, NULL, "--parse-special")) {
            parse_special = true;
        } else if (cli_is(arg, NULL, "--pieces")) {
            pieces = true;
        } else if (cli_is(arg, NULL, "--count")) {
            count = true;
        } else {
            return cli_usage_error("tokenize", "unknown argument '%s'", arg);
        }
    }
    if (!model) return cli_usage_error("tokenize", "missing -m MODEL");
    if (!prompt == !file)
        return cli_usage_error("tokenize", "give exactly one of -p TEXT and -f FILE");
    if (pieces && count)
        return cli_usage_error("tokenize", "--pieces and --count exclude each other");

    size_t len;
    char *text;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "rusty tokenize: %s: %s\n", file, strerror(errno));
            return 1;
        }
        text = read_all(f, &len);
        fclose(f);
    } else {
        len = strlen(prompt);
        text = malloc(len + 1);
        if (text) memcpy(text, prompt, len + 1);
    }
    if (!text) {
        fprintf(stderr, "rusty tokenize: out of memory\n");
        return 1;
    }
    rs_tokenizer *t = open_model("tokenize", model);
    if (!t) {
        free(text);
        return 1;
    }
    rs_tokens ids = {0};
    rs_error err = {0};
    int rc = 0;
    if (rs_tokenizer_encode(t, text, len, add_special, parse_special, &ids, &err)) {
        fprintf(stderr, "rusty tokenize: %s\n", err.msg);
        rc = 1;
    } else if (count) {
        printf("%zu\n", ids.n);
    } else if (pieces) {
        char *buf = NULL;
        for (size_t i = 0; i < ids.n && rc == 0; i++) {
            size_t n = rs_tokenizer_piece(t, ids.ids[i], RS_DECODE_SPECIAL, NULL, 0);
            char *g = realloc(buf, n + 1);
            if (!g) {
                fprintf(stderr, "rusty tokenize: out of memory\n");
                rc = 1;
                break;
            }
            buf = g;
            rs_tokenizer_piece(t, ids.ids[i], RS_DECODE_SPECIAL, buf, n);
            printf("%d\t", ids.ids[i]);
            print_piece(buf, n);
            putchar('\n');
        }
        free(buf);
    } else {
        for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.ids[i]);
        putchar('\n');
    }
    rs_tokens_free(&ids);
    rs_tokenizer_free(t);
    free(text);
    return rc;
}

/* Parses every id in s (separated by spaces, tabs, newlines or commas). */
static bool parse_ids(const char *s, rs_tokens *ids) {
    while (*s) {
        if (strchr(" \t\r\n,", *s)) {
            s++;
            continue;
        }
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end == s || errno || v < 0 || v > INT32_MAX || (*end && !strchr(" \t\r\n,", *end))) {
            cli_usage_error("detokenize", "'%.*s' is not a token id", (int)strcspn(s, " \t\r\n,"),
                            s);
            return false;
        }
        if (rs_tokens_push(ids, (int32_t)v)) return false;
        s = end;
    }
    return true;
}

int cmd_detokenize(int argc, char **argv) {
    if (cli_wants_help(argc, argv)) {
        detokenize_help();
        return 0;
    }
    const char *model = NULL;
    bool special = false, keep_space = false, any_ids = false;
    rs_tokens ids = {0};
    cli_args a = {"detokenize", argc, argv, 1};
    for (; a.i < argc; a.i++) {
        const char *arg = argv[a.i];
        if (cli_is(arg, "-m", "--model")) {
            if (!cli_take_str(&a, &model)) goto usage;
        } else if (cli_is(arg, NULL, "--special")) {
            special = true;
        } else if (cli_is(arg, NULL, "--keep-space")) {
            keep_space = true;
        } else if (arg[0] == '-' && arg[1] && !(arg[1] >= '0' && arg[1] <= '9')) {
            cli_usage_error("detokenize", "unknown argument '%s'", arg);
            goto usage;
        } else {
            any_ids = true;
            if (!parse_ids(arg, &ids)) goto usage;
        }
    }
    if (!model) {
        cli_usage_error("detokenize", "missing -m MODEL");
        goto usage;
    }
    if (!any_ids) {
        size_t n;
        char *in = read_all(stdin, &n);
        char *z = in ? realloc(in, n + 1) : NULL;
        if (!z) {
            free(in);
            fprintf(stderr, "rusty detokenize: cannot read standard input\n");
            goto usage;
        }
        z[n] = '\0';
        bool ok = parse_ids(z, &ids);
        free(z);
        if (!ok) goto usage;
    }
    rs_tokenizer *t = open_model("detokenize", model);
    if (!t) {
        rs_tokens_free(&ids);
        return 1;
    }
    unsigned flags = special ? RS_DECODE_SPECIAL : 0;
    if (!keep_space && rs_tokenizer_adds_space_prefix(t)) flags |= RS_DECODE_STRIP_SPACE;
    rs_bytes out = {0};
    rs_error err = {0};
    int rc = 0;
    if (rs_tokenizer_decode(t, ids.ids, ids.n, flags, &out, &err)) {
        fprintf(stderr, "rusty detokenize: %s\n", err.msg);
        rc = 1;
    } else {
        fwrite(out.data, 1, out.len, stdout);
    }
    rs_bytes_free(&out);
    rs_tokens_free(&ids);
    rs_tokenizer_free(t);
    return rc;
usage:
    rs_tokens_free(&ids);
    return 1;
}
