/* custom.h — keywords and regex detectors compiled into one Hyperscan
 * database (custom.c). Private to src/policy. */
#ifndef AIRLOCK_CUSTOM_H
#define AIRLOCK_CUSTOM_H

#include <hs.h>
#include "airlock/config.h"
#include "policy/detectors/detectors.h"

struct custom_db;

/* Compiles every keywords/regex detector of cfg. *out stays NULL when there is
 * none. Returns -1 with a message in err on a bad pattern. */
int custom_build(const struct config *cfg, struct custom_db **out, char *err, size_t errlen);
void custom_free(struct custom_db *cdb);

/* Scans s; each match goes to k->hit with det = the detector's index in
 * cfg->detectors. *scratch / *gen are the calling thread's Hyperscan scratch
 * and the database it was last sized for; they are (re)allocated as needed.
 * Returns -1 if scanning was not possible (the caller fails closed). */
int custom_scan(const struct custom_db *cdb, hs_scratch_t **scratch, unsigned long *gen,
                const unsigned char *s, size_t n, const struct hit_sink *k);

#endif
