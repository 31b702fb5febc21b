/* yaml.c — libyaml's document read as typed values: every error collected
 * with its FILE:LINE:COL position, mappings checked against the keys a
 * caller knows, scalars turned into strings, numbers, booleans and levels,
 * sequences sized, and hostile documents (deep nesting, alias bombs) cut off.
 * It knows nothing of airlock's schema; load.c does. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/yaml.h"

/* ---- errors ------------------------------------------------------------ */

__attribute__((format(printf, 4, 0)))
static void add_error(struct config_errors *errs, int line, int col, const char *fmt, va_list ap)
{
    if (errs->n == errs->cap) {
        int ncap = errs->cap ? errs->cap * 2 : 16;
        struct config_error *p = realloc(errs->items, (size_t)ncap * sizeof(*p));
        if (!p)
            return;
        errs->items = p;
        errs->cap = ncap;
    }
    struct config_error *e = &errs->items[errs->n++];
    e->line = line;
    e->col = col;
    vsnprintf(e->message, sizeof e->message, fmt, ap);
}

__attribute__((format(printf, 3, 4)))
void error_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(l->errs, n ? (int)n->start_mark.line + 1 : 0, n ? (int)n->start_mark.column + 1 : 0, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 4, 5)))
void error_pos(struct config_errors *errs, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_error(errs, line, col, fmt, ap);
    va_end(ap);
}

/* ---- node access ------------------------------------------------------- */

yaml_node_t *node_at(struct loader *l, int id)
{
    if (++l->visited > MAX_NODES_VISITED)
        return NULL;
    return yaml_document_get_node(l->doc, id);
}


const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a scalar";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "empty";
    }
}

/* A null scalar: `key:` with nothing, `~` or `null` (plain, not quoted). */
int is_null(const yaml_node_t *n)
{
    if (!is_scalar(n) || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = text(n);
    return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0;
}

/* Matches a mapping's keys against `fields` (NULL-key terminated). Unknown
 * and duplicate keys are errors; `what` names the mapping in messages. */
int read_fields(struct loader *l, yaml_node_t *map, struct field *fields, const char *what)
{
    if (!is_map(map)) {
        error_at(l, map, "%s must be a mapping, not %s", what, kind_name(map));
        return -1;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(l, p->key), *v = node_at(l, p->value);
        if (!k || !v)
            continue;
        if (!is_scalar(k)) {
            error_at(l, k, "%s: keys must be plain names", what);
            continue;
        }
        struct field *f = fields;
        while (f->key && strcmp(f->key, text(k)) != 0)
            f++;
        if (!f->key) {
            char expected[512] = "";
            size_t used = 0;
            for (struct field *g = fields; g->key && used < sizeof expected; g++)
                used += (size_t)snprintf(expected + used, sizeof expected - used, "%s%s",
                                         g == fields ? "" : ", ", g->key);
            error_at(l, k, "unknown key '%.60s' in %s (expected one of: %s)", text(k), what, expected);
            continue;
        }
        if (f->value) {
            error_at(l, k, "duplicate key '%s' in %s", f->key, what);
            continue;
        }
        f->value = v;
        f->key_node = k;
    }
    return 0;
}

yaml_node_t *field_value(struct field *fields, const char *key)
{
    for (struct field *f = fields; f->key; f++)
        if (strcmp(f->key, key) == 0)
            return f->value && !is_null(f->value) ? f->value : NULL;
    return NULL;
}

/* ---- typed scalars ----------------------------------------------------- */

int get_string(struct loader *l, yaml_node_t *n, const char *what, char **out)
{
    if (!is_scalar(n)) {
        error_at(l, n, "%s must be a string, not %s", what, kind_name(n));
        return -1;
    }
    if (!*text(n)) {
        error_at(l, n, "%s must not be empty", what);
        return -1;
    }
    char *s = strdup(text(n));
    if (!s)
        return -1;
    free(*out);
    *out = s;
    return 0;
}

/* A number's text, or NULL (reported) when the node is not a scalar. */
static const char *number_text(struct loader *l, yaml_node_t *n, const char *what)
{
    if (!is_scalar(n)) {
        error_at(l, n, "%s must be a number, not %s", what, kind_name(n));
        return NULL;
    }
    errno = 0;      /* for the strto* call that follows */
    return text(n);
}

int get_long(struct loader *l, yaml_node_t *n, const char *what, long min, long max, long *out)
{
    const char *s = number_text(l, n, what);
    if (!s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || isspace((unsigned char)*s)) {
        error_at(l, n, "%s must be a whole number, not '%.40s'", what, s);
        return -1;
    }
    if (v < min || v > max) {
        error_at(l, n, "%s must be between %ld and %ld, not %ld", what, min, max, v);
        return -1;
    }
    *out = v;
    return 0;
}

int get_int(struct loader *l, yaml_node_t *n, const char *what, int min, int max, int *out)
{
    long v;
    if (get_long(l, n, what, min, max, &v) < 0)
        return -1;
    *out = (int)v;
    return 0;
}

int get_double(struct loader *l, yaml_node_t *n, const char *what, double *out)
{
    const char *s = number_text(l, n, what);
    if (!s)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < 0 || isspace((unsigned char)*s)) {
        error_at(l, n, "%s must be a number of 0 or more, not '%.40s'", what, s);
        return -1;
    }
    *out = v;
    return 0;
}

int get_bool(struct loader *l, yaml_node_t *n, const char *what, int *out)
{
    static const char *const yes[] = { "true", "True", "TRUE", "yes", "Yes", "on", "On" };
    static const char *const no[] = { "false", "False", "FALSE", "no", "No", "off", "Off" };
    if (is_scalar(n)) {
        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
            if (strcmp(text(n), yes[i]) == 0) {
                *out = 1;
                return 0;
            }
            if (strcmp(text(n), no[i]) == 0) {
                *out = 0;
                return 0;
            }
        }
    }
    error_at(l, n, "%s must be true or false", what);
    return -1;
}

int get_level(struct loader *l, yaml_node_t *n, const char *what, int *out)
{
    if (!is_scalar(n)) {
        error_at(l, n, "%s must be a level name, not %s", what, kind_name(n));
        return -1;
    }
    int i = config_level_index(l->cfg, text(n));
    if (i < 0) {
        char names[256] = "";
        size_t used = 0;
        for (int k = 0; k < l->cfg->n_levels && used < sizeof names; k++)
            used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", k ? ", " : "", l->cfg->levels[k]);
        error_at(l, n, "%s: unknown level '%.40s' (levels: %s)", what, text(n), names);
        return -1;
    }
    *out = i;
    return 0;
}

/* Picks one of `names` (NULL-terminated); the index, or -1 with an error. */
int get_enum(struct loader *l, yaml_node_t *n, const char *what, const char *const *names)
{
    if (is_scalar(n))
        for (int i = 0; names[i]; i++)
            if (strcasecmp(text(n), names[i]) == 0)
                return i;
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; names[i] && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    error_at(l, n, "%s must be one of: %s", what, list);
    return -1;
}

/* Names of backends, routes, detectors, levels: letters, digits, . _ - : */
int valid_name(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-:", *s))
            return 0;
    return 1;
}

int get_name(struct loader *l, yaml_node_t *n, const char *what, char **out)
{
    if (get_string(l, n, what, out) < 0)
        return -1;
    if (!valid_name(*out)) {
        error_at(l, n, "%s '%.40s' may only use letters, digits, '.', '_', '-' and ':' (at most 64)", what, *out);
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

/* A list of at most `max` items: an array of that many zeroed elements of
 * `size` bytes (at least one), or NULL with an error. `*count` = items. */
void *list_alloc(struct loader *l, yaml_node_t *n, const char *what, long max, size_t size, long *count)
{
    if (!is_seq(n)) {
        error_at(l, n, "%s must be a list, not %s", what, kind_name(n));
        return NULL;
    }
    *count = n->data.sequence.items.top - n->data.sequence.items.start;
    if (*count > max) {
        error_at(l, n, "%s: at most %ld", what, max);
        return NULL;
    }
    return calloc((size_t)(*count ? *count : 1), size);
}

/* libyaml's composer recurses once per nesting level; a hostile file of a
 * few kilobytes of '[' would exhaust the stack. Flow collections are the
 * only cheap way to nest deeply, so count them before parsing. */
int flow_depth_ok(const char *s, size_t len, struct config_errors *errs)
{
    int depth = 0, line = 1, col = 0;
    char quote = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        col++;
        if (c == '\n') {
            line++;
            col = 0;
            quote = 0;
            continue;
        }
        if (quote) {
            if (c == quote)
                quote = 0;
            continue;
        }
        if (c == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
            while (i + 1 < len && s[i + 1] != '\n')
                i++;
        } else if (c == '"' || c == '\'') {
            quote = c;
        } else if (c == '[' || c == '{') {
            if (++depth > MAX_NESTING) {
                error_pos(errs, line, col, "nesting deeper than %d levels", MAX_NESTING);
                return 0;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 1;
}
