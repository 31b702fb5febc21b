/* schema.h — the parts of airlock's schema that live in files of their own,
 * called by load.c's walk of the document in its fixed order (private to
 * src/config/). */
#ifndef AIRLOCK_CONFIG_SCHEMA_H
#define AIRLOCK_CONFIG_SCHEMA_H

#include <yaml.h>

#include "airlock/config.h"

struct loader;

/* backends.c: the `backends:` list, into cfg->backends. */
void load_backends(struct loader *l, yaml_node_t *n);

/* sensitivity.c: every built-in at its default level (for an absent
 * `detectors:`), and the `sensitivity:` map; *detectors_node gets the
 * detectors list's node, for the errors of compiling it later. */
void default_detectors(struct config *cfg);
void load_sensitivity(struct loader *l, yaml_node_t *n, yaml_node_t **detectors_node);

#endif
