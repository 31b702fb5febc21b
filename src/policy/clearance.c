/* clearance.c — the one "may backend B receive level L" check. The upstream
 * layer calls it immediately before every transfer starts, whatever the
 * route filter said earlier, so no routing bug can send a request above a
 * backend's clearance. It fails closed. */
#include "airlock/policy.h"

int clearance_allows(const struct config *cfg, const struct backend *b, int level)
{
    if (!cfg || !b)
        return 0;
    if (level < 0 || level >= cfg->n_levels)
        return 0;
    if (b->clearance < 0 || b->clearance >= cfg->n_levels)
        return 0;
    return level <= b->clearance;
}
