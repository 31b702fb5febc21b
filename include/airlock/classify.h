/* classify.h — sensitivity classification: detectors compiled once per config,
 * then one pass over the decoded text of everything a backend would receive.
 * The result is a level (index into config->levels) and, per detector, how many
 * matches and where — never the matched text. */
#ifndef AIRLOCK_CLASSIFY_H
#define AIRLOCK_CLASSIFY_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "airlock/config.h"

#define CLASSIFY_MAX_HITS 32     /* distinct detectors reported */
#define CLASSIFY_MAX_OFFSETS 8   /* offsets kept per detector */

struct detector_hit {
    const char *detector;        /* detector name (points into the config) */
    int level;
    unsigned count;
    size_t offsets[CLASSIFY_MAX_OFFSETS];   /* byte offsets into the scanned text */
    int n_offsets;
};

struct classification {
    int level;                   /* max over hits, unreadable content, and 0 */
    int unreadable;              /* count of parts the classifier cannot read */
    struct detector_hit hits[CLASSIFY_MAX_HITS];
    int n_hits;
};

/* Compiles cfg->detectors. Returns NULL and writes a message to err on failure
 * (e.g. a bad regex). Immutable afterwards and safe to share between threads. */
struct classifier *classifier_build(const struct config *cfg, char *err, size_t errlen);
void classifier_free(struct classifier *c);

/* Classifies a parsed request body (chat, embeddings, or anything else): every
 * string in it, decoded, including keys; text parts of a content array are also
 * scanned joined together; unreadable parts raise the level to
 * cfg->unreadable_level. Never fails: on internal trouble (allocation) it returns
 * the top level (fail closed). Thread-safe; uses per-thread scratch. */
void classify_request(const struct classifier *c, const struct config *cfg,
                      const cJSON *body, struct classification *out);

/* Classifies one buffer of text (already decoded). Same result shape. */
void classify_text(const struct classifier *c, const char *text, size_t len,
                   struct classification *out);

#endif
