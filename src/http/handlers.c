/* handlers.c — what airlock answers itself: health, readiness, the model
 * list and the explain endpoint; and handle_prepare, which turns a body into
 * a level and a plan for both explain and the proxy. */
#include <stdio.h>
#include <string.h>

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

void handle_readyz(struct exchange *ex)
{
    struct buf b = { 0 };
    int usable = 0;
    buf_puts(&b, "{\"backends\":[");
    for (int i = 0; i < ex->cfg->n_backends; i++) {
        const struct backend *be = &ex->cfg->backends[i];
        int up = state_usable(be);
        usable += up;
        buf_appendf(&b, "%s{\"name\":", i ? "," : "");
        buf_append_json_string(&b, be->name);
        buf_appendf(&b, ",\"state\":\"%s\"}", state_describe(be));
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
        if (!g || strpbrk(g, "*?") || seen_model(cfg, cfg->n_backends, g))
            continue;
        buf_appendf(&b, "%s{\"id\":", n++ ? "," : "");
        buf_append_json_string(&b, g);
        buf_puts(&b, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"airlock\"}");
    }
    buf_puts(&b, "]}\n");
    respond_json_buf(ex, 200, &b);
}

/* A rough token estimate (4 bytes a token) of the text a model will read. */
static long text_bytes(const cJSON *item)
{
    long n = 0;
    for (const cJSON *c = item; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring)
            n += (long)strlen(c->valuestring);
        if (c->child)
            n += text_bytes(c->child);
    }
    return n;
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

/* The client's level header may raise the level, never lower it. */
static int apply_level_header(struct exchange *ex)
{
    const struct config *cfg = ex->cfg;
    const char *v = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, cfg->sensitivity_header);
    if (!v)
        return 0;
    int want = config_level_index(cfg, v);
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
    ex->json = cJSON_ParseWithLengthOpts(ex->body.data, ex->body.len + 1, &end, 1);
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
    ex->client_model = model ? model->valuestring : NULL;
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

    classify_request(cfg->classifier, cfg, ex->json, &ex->cls);
    /* The raw bytes too: a card number sent as a JSON number is no string,
     * and whatever an upstream's parser makes of odd input, it was these
     * bytes. The level is the higher of the two readings. */
    struct classification raw;
    classify_text(cfg->classifier, ex->body.data, ex->body.len, &raw);
    merge_hits(&ex->cls, &raw);
    ex->level = ex->cls.level;
    /* cJSON strings end at an escaped NUL, so text after one was never
     * scanned: fail closed. */
    if (memmem(ex->body.data, ex->body.len, "\\u0000", 6))
        ex->level = cfg->n_levels - 1;
    if (apply_level_header(ex) < 0)
        return -1;

    ex->prompt_tokens = text_bytes(cJSON_GetObjectItemCaseSensitive(ex->json, is_chat ? "messages" : "input")) / 4 + 1;
    struct route_input in = {
        .model = ex->client_model,
        .client = NULL,
        .level = ex->level,
        .prompt_tokens = ex->prompt_tokens,
        .stream = ex->stream,
        .budget_exhausted = 0,
    };
    route_plan(cfg, &in, &ex->plan);
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
        buf_appendf(&b, ",\"state\":\"%s\",\"estimated_prompt_cost_usd\":%.6f}",
                    state_describe(be), cost);
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
