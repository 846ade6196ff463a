/* chat.c — chat templates for the common model families.
 *
 * tokenizer.chat_template is a Jinja program; rather than run Jinja, the
 * family is recognised by substrings only its template contains (the same
 * markers llama.cpp's llm_chat_detect_template looks for) and the prompt is
 * written by hand in that family's format. Anything else falls back to a plain
 * "role: content" format, and the caller is told. */
#include <ctype.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static bool has(const char *t, size_t n, const char *needle) {
    return memmem(t, n, needle, strlen(needle)) != NULL;
}

rs_chat_template rs_chat_detect(const char *t, size_t n) {
    if (!t || !n) return RS_CHAT_UNKNOWN;
    if (has(t, n, "<|im_start|>")) return RS_CHAT_CHATML;
    if (has(t, n, "<|start_header_id|>") && has(t, n, "<|end_header_id|>")) return RS_CHAT_LLAMA3;
    if (has(t, n, "[INST]")) return has(t, n, "<<SYS>>") ? RS_CHAT_LLAMA2 : RS_CHAT_MISTRAL;
    if (has(t, n, "<|assistant|>") && has(t, n, "<|end|>")) return RS_CHAT_PHI3;
    if (has(t, n, "<|user|>") && (has(t, n, "</s>") || has(t, n, "eos_token")))
        return RS_CHAT_ZEPHYR;
    if (has(t, n, "<start_of_turn>")) return RS_CHAT_GEMMA;
    return RS_CHAT_UNKNOWN;
}

const char *rs_chat_template_name(rs_chat_template k) {
    switch (k) {
    case RS_CHAT_CHATML:
        return "chatml";
    case RS_CHAT_LLAMA2:
        return "llama2";
    case RS_CHAT_LLAMA3:
        return "llama3";
    case RS_CHAT_MISTRAL:
        return "mistral";
    case RS_CHAT_ZEPHYR:
        return "zephyr";
    case RS_CHAT_PHI3:
        return "phi3";
    case RS_CHAT_GEMMA:
        return "gemma";
    case RS_CHAT_PLAIN:
        return "plain";
    case RS_CHAT_UNKNOWN:
        break;
    }
    return "unknown";
}

typedef struct out_buf {
    rs_bytes *b;
    bool failed;
} out_buf;

static void put(out_buf *o, const char *s) {
    if (!o->failed && rs_bytes_append(o->b, s, strlen(s))) o->failed = true;
}

/* Content with surrounding whitespace removed (Llama 3 and Gemma trim). */
static void put_trimmed(out_buf *o, const char *s) {
    size_t a = 0, b = strlen(s);
    while (a < b && isspace((unsigned char)s[a])) a++;
    while (b > a && isspace((unsigned char)s[b - 1])) b--;
    if (!o->failed && rs_bytes_append(o->b, s + a, b - a)) o->failed = true;
}

static bool is(const char *role, const char *r) {
    return role && strcmp(role, r) == 0;
}

static void fmt_llama2(out_buf *o, const rs_chat_msg *m, size_t n, bool sys_block) {
    bool in_turn = true; /* the prompt opens with [INST] */
    put(o, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            put(o, "[INST] ");
            in_turn = true;
        }
        if (is(m[i].role, "system")) {
            put(o, sys_block ? "<<SYS>>\n" : "");
            put(o, m[i].content);
            put(o, sys_block ? "\n<</SYS>>\n\n" : "\n");
        } else if (is(m[i].role, "user")) {
            put(o, m[i].content);
            put(o, " [/INST]");
        } else {
            put(o, m[i].content);
            put(o, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_mistral(out_buf *o, const rs_chat_msg *m, size_t n) {
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            put(o, "[INST] ");
            in_turn = true;
        }
        if (is(m[i].role, "system")) {
            put(o, m[i].content);
            put(o, "\n\n");
        } else if (is(m[i].role, "user")) {
            put(o, m[i].content);
            put(o, "[/INST]");
        } else {
            put(o, " ");
            put_trimmed(o, m[i].content);
            put(o, "</s>");
            in_turn = false;
        }
    }
}

static void fmt_gemma(out_buf *o, const rs_chat_msg *m, size_t n, bool gen) {
    const char *sys = NULL; /* Gemma has no system turn: it goes into the next user turn */
    for (size_t i = 0; i < n; i++) {
        if (is(m[i].role, "system")) {
            sys = m[i].content;
            continue;
        }
        bool model = is(m[i].role, "assistant");
        put(o, "<start_of_turn>");
        put(o, model ? "model" : m[i].role);
        put(o, "\n");
        if (sys && !model) {
            put_trimmed(o, sys);
            put(o, "\n\n");
            sys = NULL;
        }
        put_trimmed(o, m[i].content);
        put(o, "<end_of_turn>\n");
    }
    if (gen) put(o, "<start_of_turn>model\n");
}

rs_status rs_chat_format(rs_chat_template k, const rs_chat_msg *m, size_t n,
                         bool add_generation_prompt, rs_bytes *out, rs_error *err) {
    for (size_t i = 0; i < n; i++)
        if (!m[i].role || !m[i].content)
            return rs_error_set(err, RS_ERR_ARG, "chat message %zu has no role or content", i);
    out_buf o = {out, false};
    bool gen = add_generation_prompt;
    switch (k) {
    case RS_CHAT_CHATML:
        for (size_t i = 0; i < n; i++) {
            put(&o, "<|im_start|>");
            put(&o, m[i].role);
            put(&o, "\n");
            put(&o, m[i].content);
            put(&o, "<|im_end|>\n");
        }
        if (gen) put(&o, "<|im_start|>assistant\n");
        break;
    case RS_CHAT_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            put(&o, "<|start_header_id|>");
            put(&o, m[i].role);
            put(&o, "<|end_header_id|>\n\n");
            put_trimmed(&o, m[i].content);
            put(&o, "<|eot_id|>");
        }
        if (gen) put(&o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case RS_CHAT_LLAMA2:
        fmt_llama2(&o, m, n, true);
        break;
    case RS_CHAT_MISTRAL:
        fmt_mistral(&o, m, n);
        break;
    case RS_CHAT_ZEPHYR:
    case RS_CHAT_PHI3:
        for (size_t i = 0; i < n; i++) {
            put(&o, "<|");
            put(&o, m[i].role);
            put(&o, "|>\n");
            put(&o, m[i].content);
            put(&o, k == RS_CHAT_PHI3 ? "<|end|>\n" : "</s>\n");
        }
        if (gen) put(&o, "<|assistant|>\n");
        break;
    case RS_CHAT_GEMMA:
        fmt_gemma(&o, m, n, gen);
        break;
    case RS_CHAT_PLAIN:
    case RS_CHAT_UNKNOWN:
        for (size_t i = 0; i < n; i++) {
            put(&o, m[i].role);
            put(&o, ": ");
            put(&o, m[i].content);
            put(&o, "\n");
        }
        if (gen) put(&o, "assistant:");
        break;
    }
    if (!o.failed && !out->data) o.failed = rs_bytes_append(out, "", 0) != RS_OK;
    return o.failed ? rs_error_set(err, RS_ERR_NOMEM, "chat: out of memory") : RS_OK;
}

rs_status rs_tokenizer_chat_format(const rs_tokenizer *t, const rs_chat_msg *msgs, size_t n,
                                   bool add_generation_prompt, rs_bytes *out, bool *fell_back,
                                   rs_error *err) {
    const char *tpl = t->chat_template;
    rs_chat_template k = tpl ? rs_chat_detect(tpl, strlen(tpl)) : RS_CHAT_UNKNOWN;
    if (fell_back) *fell_back = k == RS_CHAT_UNKNOWN;
    return rs_chat_format(k, msgs, n, add_generation_prompt, out, err);
}
