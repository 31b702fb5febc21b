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

/* Empties out: level 0, nothing unreadable, no hits (the hits are written in
 * full when added, so the 2.8 KB table is not cleared). */
void classification_clear(struct classification *out);

/* Compiles cfg->detectors. Returns NULL and writes a message to err on failure
 * (e.g. a bad regex). Immutable afterwards and safe to share between threads. */
struct classifier *classifier_build(const struct config *cfg, char *err, size_t errlen);
void classifier_free(struct classifier *c);

/* Classifies a parsed request body (chat, embeddings, or anything else): every
 * string in it, decoded, including keys; text parts of a content array are also
 * scanned joined together; unreadable parts raise the level to
 * cfg->unreadable_level. Never fails: on internal trouble (allocation) it returns
 * the top level (fail closed). Thread-safe; uses per-thread scratch.
 * Offsets are into the "scanned text": a depth-first, document-order walk that
 * appends every object key and string value, decoded, each followed by '\n'
 * (integers of 9+ digits in decimal); after a content array with two or more
 * text parts, those texts joined with no separator and a '\n'; after a string
 * holding JSON with escapes (tool call arguments), its keys and strings decoded
 * once more; after a key or string holding escapes that is not JSON, itself
 * once more with them decoded (up to three levels). See docs/policy.md. */
void classify_request(const struct classifier *c, const struct config *cfg,
                      const cJSON *body, struct classification *out);

/* Classifies one buffer of text (already decoded). Same result shape. */
void classify_text(const struct classifier *c, const char *text, size_t len,
                   struct classification *out);

/* Frees the calling thread's scratch (Hyperscan scratch, text buffer). Also
 * done automatically when a thread exits; call it from the main thread before
 * exit, or from a worker that will not classify again. */
void classify_thread_release(void);

#endif
