/* handlers.c — what airlock answers itself: health, readiness, the model
 * list and the explain endpoint; and handle_prepare, which turns a body into
 * a level and a plan for both explain and the proxy. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "airlock/exchange.h"
#include "airlock/state.h"
#include "http/handlers.h"

static void respond_json_buf(struct exchange *ex, unsigned status, struct buf *b)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(b->len, b->data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        buf_free(b);
        respond_ready(ex, NULL, status);
        return;
    }
    ex->bytes_out += b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    respond_ready(ex, r, status);
}

void handle_healthz(struct exchange *ex)
{
    static const char ok[] = "{\"status\":\"ok\"}\n";
    respond_buffer(ex, 200, "application/json", ok, sizeof ok - 1);
}

/* ,"reason":"..." when the backend is not usable (probe, cool-down, circuit) */
static void append_reason(struct buf *b, const struct backend *be)
{
    char why[128];
    state_reason(be, why, sizeof why);
    if (!why[0] && be->key_missing)
        snprintf(why, sizeof why, "%s is not set", be->api_key_env);
    if (why[0]) {
        buf_puts(b, ",\"reason\":");
        buf_append_json_string(b, why);
    }
}

void handle_readyz(struct exchange *ex)
{
    struct buf b = { 0 };
    int usable = 0;
    buf_puts(&b, "{\"backends\":[");
    for (int i = 0; i < ex->cfg->n_backends; i++) {
        const struct backend *be = &ex->cfg->backends[i];
        int up = state_usable(be) && !be->key_missing;
        usable += up;
        buf_appendf(&b, "%s{\"name\":", i ? "," : "");
        buf_append_json_string(&b, be->name);
        buf_appendf(&b, ",\"state\":\"%s\"", state_describe(be));
        append_reason(&b, be);
        buf_puts(&b, "}");
    }
    buf_appendf(&b, "],\"ready\":%s", usable ? "true" : "false");
    if (!usable)
        buf_appendf(&b, ",\"reason\":\"no backend is usable\"");
    buf_puts(&b, "}\n");
    respond_json_buf(ex, usable ? 200 : 503, &b);
}

static int seen_model(const struct config *cfg, int upto, const char *m)
{
    for (int i = 0; i < upto; i++)
        if (cfg->backends[i].model && strcmp(cfg->backends[i].model, m) == 0)
            return 1;
    return 0;
}

void handle_models(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    struct buf b = { 0 };
    int n = 0;
    buf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < cfg->n_backends; i++) {
        const char *m = cfg->backends[i].model;
        if (!m || seen_model(cfg, i, m))
            continue;
        buf_appendf(&b, "%s{\"id\":", n++ ? "," : "");
        buf_append_json_string(&b, m);
        buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"airlock\"}");
    }
    for (int i = 0; i < cfg->n_routes; i++) {
        const char *g = cfg->routes[i].model_glob;
        if (!g || strpbrk(g, "*?[\\") || seen_model(cfg, cfg->n_backends, g))
            continue;
        buf_appendf(&b, "%s{\"id\":", n++ ? "," : "");
        buf_append_json_string(&b, g);
        buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"airlock\"}");
    }
    buf_puts(&b, "]}\n");
    respond_json_buf(ex, 200, &b);
}

/* Quarter-tokens of the text a model will read: ASCII about 4 bytes a
 * token, a 2-byte letter (Cyrillic, Greek, Arabic) about half a token, a
 * CJK character or an emoji about one. Four bytes a token throughout let
 * a long non-Latin prompt pass a context_window and be truncated. */
static long text_quarter_tokens(const cJSON *item)
{
    long q = 0;
    for (const cJSON *c = item; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring)
            for (const unsigned char *p = (const unsigned char *)c->valuestring; *p; p++)
                q += *p < 0x80 ? 1 : *p < 0xc0 ? 0 : *p < 0xe0 ? 2 : 4;
        if (c->child)
            q += text_quarter_tokens(c->child);
    }
    return q;
}

/* The completion budget the client asked for (max_tokens, or the newer
 * max_completion_tokens), 0 when it did not. */
static long completion_budget(const cJSON *root)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    if (!cJSON_IsNumber(m))
        m = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (!cJSON_IsNumber(m) || m->valuedouble < 0)
        return 0;
    return m->valuedouble > 1e9 ? 1000000000L : (long)m->valuedouble;
}

static int validate_chat(struct exchange *ex, const cJSON *root)
{
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!messages) {
        respond_error(ex, 400, "invalid_request_error", "missing_required_parameter", "messages",
                      "Missing required parameter: 'messages'.");
        return -1;
    }
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        respond_error(ex, 400, "invalid_request_error", "invalid_type", "messages",
                      "'messages' must be a non-empty array of message objects.");
        return -1;
    }
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            char param[32];
            snprintf(param, sizeof param, "messages.[%d]", i);
            respond_error(ex, 400, "invalid_request_error", "invalid_type", param,
                          "Each message must be an object with a string 'role'.");
            return -1;
        }
    }
    return 0;
}

static int validate_embeddings(struct exchange *ex, const cJSON *root)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!input) {
        respond_error(ex, 400, "invalid_request_error", "missing_required_parameter", "input",
                      "Missing required parameter: 'input'.");
        return -1;
    }
    if (!cJSON_IsString(input) && !cJSON_IsArray(input)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_type", "input",
                      "'input' must be a string or an array.");
        return -1;
    }
    return 0;
}

/* Adds to `into` the detectors only `other` saw, and takes the higher level. */
static void merge_hits(struct classification *into, const struct classification *other)
{
    if (other->level > into->level)
        into->level = other->level;
    for (int i = 0; i < other->n_hits; i++) {
        int k = 0;
        while (k < into->n_hits && strcmp(into->hits[k].detector, other->hits[i].detector) != 0)
            k++;
        if (k < into->n_hits) {
            if (other->hits[i].count > into->hits[k].count)
                into->hits[k].count = other->hits[i].count;
        } else if (into->n_hits < CLASSIFY_MAX_HITS) {
            into->hits[into->n_hits++] = other->hits[i];
        }
    }
}

/* An object's first key that appears twice in it, or NULL. Parsers differ
 * on which of two values they keep (cJSON the first, Python and Go the
 * last), so such a body could be classified by one value and read by the
 * upstream as the other: it is refused. */
static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *duplicate_key(const cJSON *item, int *oom)
{
    for (; item; item = item->next) {
        if (!item->child)
            continue;
        if (cJSON_IsObject(item)) {
            int n = 0;
            for (const cJSON *c = item->child; c; c = c->next)
                n++;
            if (n > 1 && n <= 16) {
                for (const cJSON *a = item->child; a; a = a->next)
                    for (const cJSON *b = a->next; b; b = b->next)
                        if (a->string && b->string && strcmp(a->string, b->string) == 0)
                            return a->string;
            } else if (n > 16) {
                const char **keys = malloc((size_t)n * sizeof *keys);
                if (!keys) {
                    *oom = 1;
                    return NULL;
                }
                int k = 0;
                for (const cJSON *c = item->child; c; c = c->next)
                    keys[k++] = c->string ? c->string : "";
                qsort(keys, (size_t)n, sizeof *keys, cmp_keys);
                const char *dup = NULL;
                for (int i = 1; i < n && !dup; i++)
                    if (strcmp(keys[i - 1], keys[i]) == 0)
                        dup = keys[i];
                free(keys);
                if (dup)
                    return dup;
            }
        }
        const char *d = duplicate_key(item->child, oom);
        if (d || *oom)
            return d;
    }
    return NULL;
}

/* The number tokens of a JSON text (outside strings) of 9 digits or more,
 * each followed by '\n', for the classifier: a card sent as a 19-digit
 * number is beyond a double's precision, so the parsed tree cannot show it
 * as written. Strings are skipped (json_skip_string); their text is classified
 * from the tree. */
static int number_tokens(const char *s, size_t n, struct buf *out)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"') {
            int escaped = 0;
            i = json_skip_string(s, i, n, &escaped);
            if (!i)
                return 0;       /* the parser has accepted the body, so never here */
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i, nd = 0;
            for (; j < n; j++) {
                char d = s[j];
                if (d >= '0' && d <= '9')
                    nd++;
                else if (d != '-' && d != '+' && d != '.' && d != 'e' && d != 'E')
                    break;
            }
            if (nd >= 9 && (buf_append(out, s + i, j - i) < 0 || buf_append(out, "\n", 1) < 0))
                return -1;
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

struct level_header {
    const struct config *cfg;
    int level;                  /* the highest asked for */
    const char *bad;            /* a value that is not a level */
};

static enum MHD_Result each_level_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    struct level_header *h = cls;
    (void)kind;
    if (!key || strcasecmp(key, h->cfg->sensitivity_header) != 0)
        return MHD_YES;
    int want = config_level_index(h->cfg, value ? value : "");
    if (want < 0)
        h->bad = value ? value : "";
    else if (want > h->level)
        h->level = want;
    return MHD_YES;
}

/* The client's level header may raise the level, never lower it. Sent more
 * than once, the highest counts; any value that is not a level is a 400. */
static int apply_level_header(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    struct level_header h = { cfg, -1, NULL };
    MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, each_level_value, &h);
    if (!h.bad && h.level < 0)
        return 0;
    int want = h.bad ? -1 : h.level;
    if (want < 0) {
        struct buf msg = { 0 };
        buf_appendf(&msg, "Invalid %s header: expected one of", cfg->sensitivity_header);
        for (int i = 0; i < cfg->n_levels; i++)
            buf_appendf(&msg, "%s %s", i ? "," : "", cfg->levels[i]);
        respond_error(ex, 400, "invalid_request_error", "invalid_level", cfg->sensitivity_header,
                      msg.data ? msg.data : "Invalid level header");
        buf_free(&msg);
        return -1;
    }
    if (want > ex->level)
        ex->level = want;
    return 0;
}

int handle_prepare(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    if (ex->body.len == 0) {
        respond_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                      "The request body is empty; expected a JSON object.");
        return -1;
    }
    if (!utf8_valid((const unsigned char *)ex->body.data, ex->body.len)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                      "The request body is not valid UTF-8.");
        return -1;
    }
    if (memchr(ex->body.data, '\0', ex->body.len)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                      "The request body contains a NUL byte.");
        return -1;
    }
    const char *end = NULL;
    ex->json = json_parse_scratch_whole(ex->body.data, ex->body.len, &end);
    if (!ex->json) {
        char msg[128];
        snprintf(msg, sizeof msg, "We could not parse the JSON body of your request (near byte %zu).",
                 end && end >= ex->body.data ? (size_t)(end - ex->body.data) : (size_t)0);
        respond_error(ex, 400, "invalid_request_error", "invalid_json", NULL, msg);
        return -1;
    }
    if (!cJSON_IsObject(ex->json)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_json", NULL,
                      "The request body must be a JSON object.");
        return -1;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(ex->json, "model");
    if (model && !cJSON_IsString(model)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_type", "model",
                      "'model' must be a string.");
        return -1;
    }
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(ex->json, "stream");
    if (stream && !cJSON_IsBool(stream) && !cJSON_IsNull(stream)) {
        respond_error(ex, 400, "invalid_request_error", "invalid_type", "stream",
                      "'stream' must be a boolean.");
        return -1;
    }
    ex->stream = cJSON_IsTrue(stream);

    int is_chat = ex->endpoint == EP_CHAT ||
                  (ex->endpoint == EP_EXPLAIN && cJSON_HasObjectItem(ex->json, "messages"));
    if (is_chat ? validate_chat(ex, ex->json) : validate_embeddings(ex, ex->json))
        return -1;
    if (ex->endpoint == EP_EMBEDDINGS)
        ex->stream = 0;

    int oom = 0;
    const char *dup = duplicate_key(ex->json, &oom);
    if (oom) {
        respond_error(ex, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    if (dup) {     /* the key is not named: it may be the sensitive text */
        respond_error(ex, 400, "invalid_request_error", "duplicate_key", NULL,
                      "The JSON body has an object with the same key twice.");
        return -1;
    }

    classify_request(cfg->classifier, cfg, ex->json, &ex->cls);
    /* Long numbers as written (see number_tokens); their hits carry no
     * offsets, the scanned text does not hold them. */
    struct buf nums = { 0 };
    struct classification num_cls;
    if (number_tokens(ex->body.data, ex->body.len, &nums) < 0) {
        buf_free(&nums);
        respond_error(ex, 500, "server_error", NULL, NULL, "out of memory");
        return -1;
    }
    if (nums.len) {
        classify_text(cfg->classifier, nums.data, nums.len, &num_cls);
        for (int i = 0; i < num_cls.n_hits; i++)
            num_cls.hits[i].n_offsets = 0;
        merge_hits(&ex->cls, &num_cls);
    }
    buf_free(&nums);
    ex->level = ex->cls.level;
    /* cJSON strings end at an escaped NUL, so text after one was never
     * scanned: fail closed. */
    if (memmem(ex->body.data, ex->body.len, "\\u0000", 6))
        ex->level = cfg->n_levels - 1;
    if (apply_level_header(ex) < 0)
        return -1;

    ex->prompt_tokens =
        text_quarter_tokens(cJSON_GetObjectItemCaseSensitive(ex->json, is_chat ? "messages" : "input")) / 4 + 1;
    struct route_input in = {
        .model = model ? model->valuestring : NULL,
        .client = NULL,
        .level = ex->level,
        .prompt_tokens = ex->prompt_tokens,
        .completion_tokens = is_chat ? completion_budget(ex->json) : 0,
        .stream = ex->stream,
        .budget_exhausted = 0,
    };
    route_plan(cfg, &in, &ex->plan);
    ex->classified = 1;
    for (int i = 0; i < ex->plan.n_excluded; i++)
        if (strcmp(ex->plan.excluded[i].reason, "clearance") == 0)
            ex->clearance_excluded = 1;
    return 0;
}

void handle_explain(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    const struct classification *c = &ex->cls;
    struct buf b = { 0 };

    buf_puts(&b, "{\"level\":");
    buf_append_json_string(&b, cfg->levels[ex->level]);
    buf_appendf(&b, ",\"level_index\":%d,\"classified_level\":", ex->level);
    buf_append_json_string(&b, cfg->levels[c->level >= 0 && c->level < cfg->n_levels ? c->level : cfg->n_levels - 1]);
    buf_appendf(&b, ",\"unreadable_parts\":%d,\"detectors\":[", c->unreadable);
    for (int i = 0; i < c->n_hits; i++) {
        const struct detector_hit *h = &c->hits[i];
        buf_appendf(&b, "%s{\"name\":", i ? "," : "");
        buf_append_json_string(&b, h->detector);
        buf_puts(&b, ",\"level\":");
        buf_append_json_string(&b, cfg->levels[h->level]);
        buf_appendf(&b, ",\"count\":%u,\"offsets\":[", h->count);
        for (int k = 0; k < h->n_offsets; k++)
            buf_appendf(&b, "%s%zu", k ? "," : "", h->offsets[k]);
        buf_puts(&b, "]}");
    }
    buf_appendf(&b, "],\"prompt_tokens_estimate\":%ld,\"stream\":%s,\"route\":", ex->prompt_tokens,
                ex->stream ? "true" : "false");
    if (ex->plan.route)
        buf_append_json_string(&b, ex->plan.route->name);
    else
        buf_puts(&b, "null");
    buf_puts(&b, ",\"candidates\":[");
    for (int i = 0; i < ex->plan.n_candidates; i++) {
        const struct candidate *cd = &ex->plan.candidates[i];
        const struct backend *be = &cfg->backends[cd->backend];
        double cost = (double)ex->prompt_tokens * be->price_input_per_mtok / 1e6;
        buf_appendf(&b, "%s{\"backend\":", i ? "," : "");
        buf_append_json_string(&b, be->name);
        buf_puts(&b, ",\"model\":");
        if (cd->model)
            buf_append_json_string(&b, cd->model);
        else
            buf_puts(&b, "null");
        buf_appendf(&b, ",\"zone\":\"%s\",\"clearance\":", be->zone == ZONE_LOCAL ? "local" : "cloud");
        buf_append_json_string(&b, cfg->levels[be->clearance]);
        buf_appendf(&b, ",\"state\":\"%s\"", state_describe(be));
        append_reason(&b, be);
        buf_appendf(&b, ",\"estimated_prompt_cost_usd\":%.6f}", cost);
    }
    buf_puts(&b, "],\"excluded\":[");
    for (int i = 0; i < ex->plan.n_excluded; i++) {
        const struct exclusion *e = &ex->plan.excluded[i];
        buf_appendf(&b, "%s{\"backend\":", i ? "," : "");
        buf_append_json_string(&b, cfg->backends[e->backend].name);
        buf_appendf(&b, ",\"reason\":\"%s\"}", e->reason);
    }
    buf_puts(&b, "]}\n");
    respond_json_buf(ex, 200, &b);
}
