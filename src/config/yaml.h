/* yaml.h — config/'s private reader over libyaml's document (yaml.c),
 * shared by the schema walk in load.c. */
#ifndef AIRLOCK_CONFIG_YAML_H
#define AIRLOCK_CONFIG_YAML_H

#include <stddef.h>
#include <yaml.h>

#include "airlock/config.h"

#define MAX_NESTING 64
#define MAX_NODES_VISITED 200000

struct loader {
    yaml_document_t *doc;
    struct config *cfg;
    struct config_errors *errs;
    long visited;               /* aliases can make a small file a huge tree */
};

/* One key of a mapping we know; read_fields sets its value and key node. */
struct field {
    const char *key;
    yaml_node_t *value;
    yaml_node_t *key_node;
};

static inline int is_scalar(const yaml_node_t *n) { return n && n->type == YAML_SCALAR_NODE; }
static inline int is_map(const yaml_node_t *n) { return n && n->type == YAML_MAPPING_NODE; }
static inline int is_seq(const yaml_node_t *n) { return n && n->type == YAML_SEQUENCE_NODE; }
static inline const char *text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

__attribute__((format(printf, 3, 4))) void error_at(struct loader *l, const yaml_node_t *n, const char *fmt, ...);
__attribute__((format(printf, 4, 5))) void error_pos(struct config_errors *errs, int line, int col, const char *fmt, ...);
yaml_node_t *node_at(struct loader *l, int id);
const char *kind_name(const yaml_node_t *n);
int is_null(const yaml_node_t *n);
int read_fields(struct loader *l, yaml_node_t *map, struct field *fields, const char *what);
yaml_node_t *field_value(struct field *fields, const char *key);
int get_string(struct loader *l, yaml_node_t *n, const char *what, char **out);
int get_long(struct loader *l, yaml_node_t *n, const char *what, long min, long max, long *out);
int get_int(struct loader *l, yaml_node_t *n, const char *what, int min, int max, int *out);
int get_double(struct loader *l, yaml_node_t *n, const char *what, double *out);
int get_bool(struct loader *l, yaml_node_t *n, const char *what, int *out);
int get_level(struct loader *l, yaml_node_t *n, const char *what, int *out);
int get_enum(struct loader *l, yaml_node_t *n, const char *what, const char *const *names);
int valid_name(const char *s);
int get_name(struct loader *l, yaml_node_t *n, const char *what, char **out);
void *list_alloc(struct loader *l, yaml_node_t *n, const char *what, long max, size_t size, long *count);
int flow_depth_ok(const char *s, size_t len, struct config_errors *errs);

#endif
