/* errors.c — every response airlock writes itself goes through here, and
 * every error has OpenAI's shape {"error":{message,type,param,code}} so the
 * official SDKs raise the right exception. */
#include <string.h>

#include "airlock/exchange.h"

void respond_ready(struct exchange *ex, struct MHD_Response *r, unsigned status)
{
    if (!r) {
        ex->state = EX_DONE;    /* out of memory: the handler answers MHD_NO */
        return;
    }
    request_add_common_headers(ex, r);
    ex->response = r;
    ex->response_status = status;
    ex->state = EX_RESPOND;
    exchange_resume(ex);
}

void respond_buffer(struct exchange *ex, unsigned status, const char *content_type,
                    const char *data, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    ex->bytes_out += len;
    respond_ready(ex, r, status);
}

void respond_error(struct exchange *ex, unsigned status, const char *type,
                   const char *code, const char *param, const char *message)
{
    struct buf b = { 0 };
    int bad = buf_puts(&b, "{\"error\":{\"message\":") < 0 ||
              buf_append_json_string(&b, message) < 0 ||
              buf_puts(&b, ",\"type\":") < 0 ||
              buf_append_json_string(&b, type) < 0 ||
              buf_puts(&b, ",\"param\":") < 0 ||
              (param ? buf_append_json_string(&b, param) : buf_puts(&b, "null")) < 0 ||
              buf_puts(&b, ",\"code\":") < 0 ||
              (code ? buf_append_json_string(&b, code) : buf_puts(&b, "null")) < 0 ||
              buf_puts(&b, "}}\n") < 0;
    if (bad) {
        buf_free(&b);
        respond_ready(ex, NULL, status);
        return;
    }
    ex->bytes_out += b.len;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        buf_free(&b);
        respond_ready(ex, NULL, status);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    /* Refusals that will not change on retry say so; SDKs honour it. */
    if (strcmp(type, "airlock_policy") == 0 || strcmp(type, "airlock_budget") == 0 ||
        status == 400 || status == 404 || status == 405 || status == 413)
        MHD_add_response_header(r, "x-should-retry", "false");
    respond_ready(ex, r, status);
}
