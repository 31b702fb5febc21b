/* test_wire.c — the clearance check at the wire on its own: attempt_begin()
 * is handed plans that a routing bug could produce (a cloud backend for a
 * secret request, first, on fallback, forced) and must refuse each before
 * any transfer exists, recording why. No network: a refusal never gets as
 * far as curl. */
#include "t.h"
#include "airlock/exchange.h"
#include "upstream/attempt.h"

enum { PUBLIC, INTERNAL, CONFIDENTIAL, SECRET };

static char *levels[] = { "public", "internal", "confidential", "secret" };
static struct backend backends[3];
static struct config cfg;

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    for (int i = 0; i < 4; i++)
        cfg.levels[i] = levels[i];
    cfg.n_levels = 4;
    backends[0] = (struct backend){ .index = 0, .name = "cloud", .zone = ZONE_CLOUD, .clearance = PUBLIC };
    backends[1] = (struct backend){ .index = 1, .name = "partner", .zone = ZONE_CLOUD, .clearance = INTERNAL };
    backends[2] = (struct backend){ .index = 2, .name = "broken", .zone = ZONE_LOCAL, .clearance = 7 };
    cfg.backends = backends;
    cfg.n_backends = 3;
}

/* A fresh exchange at `level`; attempt_begin never reaches the worker when
 * it refuses, so none is needed. */
static void exchange_at(struct exchange *ex, int level)
{
    memset(ex, 0, sizeof *ex);
    ex->cfg = &cfg;
    ex->level = level;
    ex->backend = -1;
    strcpy(ex->request_id, "req_test");
}

static void test_refused_above_clearance(void)
{
    setup();
    struct exchange ex;
    for (int level = PUBLIC; level <= SECRET; level++) {
        for (int b = 0; b < 2; b++) {
            if (level <= backends[b].clearance)
                continue;
            exchange_at(&ex, level);
            ex.plan.candidates[0] = (struct candidate){ .backend = b };
            ex.plan.n_candidates = 1;
            CHECK(attempt_begin(&ex, 0) == -1);
            CHECK(ex.n_tries == 1 && ex.tries[0].backend == b && ex.tries[0].outcome == OUT_POLICY);
            CHECK(ex.easy == NULL && ex.upstream_body.len == 0);
        }
    }
}

/* Every attempt is checked anew: a plan of three uncleared candidates (a
 * misordered route, a fallback, a forced try) is refused three times. */
static void test_every_attempt_checked(void)
{
    setup();
    struct exchange ex;
    exchange_at(&ex, SECRET);
    int chain[3] = { 0, 1, 0 };
    for (int i = 0; i < 3; i++)
        ex.plan.candidates[i] = (struct candidate){ .backend = chain[i] };
    ex.plan.n_candidates = 3;
    for (int i = 0; i < 3; i++)
        CHECK(attempt_begin(&ex, i) == -1);
    CHECK(ex.n_tries == 3);
    for (int i = 0; i < ex.n_tries; i++)
        CHECK(ex.tries[i].outcome == OUT_POLICY);
}

/* Levels and clearances out of range never pass (fail closed). */
static void test_out_of_range_fails_closed(void)
{
    setup();
    struct exchange ex;
    int bad_levels[] = { -1, 4, 1000 };
    for (size_t i = 0; i < sizeof bad_levels / sizeof bad_levels[0]; i++) {
        exchange_at(&ex, bad_levels[i]);
        ex.plan.candidates[0] = (struct candidate){ .backend = 1 };
        ex.plan.n_candidates = 1;
        CHECK(attempt_begin(&ex, 0) == -1);
    }
    exchange_at(&ex, PUBLIC);
    ex.plan.candidates[0] = (struct candidate){ .backend = 2 };     /* clearance 7 of 4 levels */
    ex.plan.n_candidates = 1;
    CHECK(attempt_begin(&ex, 0) == -1);
    CHECK(!clearance_allows(&cfg, &backends[2], PUBLIC));
    CHECK(!clearance_allows(NULL, &backends[0], PUBLIC));
    CHECK(clearance_allows(&cfg, &backends[1], INTERNAL) && clearance_allows(&cfg, &backends[1], PUBLIC));
}

int main(void)
{
    RUN(test_refused_above_clearance);
    RUN(test_every_attempt_checked);
    RUN(test_out_of_range_fails_closed);
    TEST_DONE();
}
