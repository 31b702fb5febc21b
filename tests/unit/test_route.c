/* test_route.c — route matching (first match wins, every condition), the
 * candidate filter's order and reasons, and the clearance check. */
#include "t.h"
#include "airlock/policy.h"

static struct backend backends[3];
static struct route routes[3];
static struct route_target use_private[1], use_gpt[2], use_default[3];
static struct config cfg;

static void setup(void)
{
    memset(&cfg, 0, sizeof cfg);
    static char *levels[] = { "public", "internal", "confidential", "secret" };
    for (int i = 0; i < 4; i++)
        cfg.levels[i] = levels[i];
    cfg.n_levels = 4;
    backends[0] = (struct backend){ .index = 0, .name = "local", .zone = ZONE_LOCAL, .model = "llama", .clearance = 3, .context_window = 8192 };
    backends[1] = (struct backend){ .index = 1, .name = "cloud", .zone = ZONE_CLOUD, .model = "gpt-4o-mini", .clearance = 1 };
    backends[2] = (struct backend){ .index = 2, .name = "tiny", .zone = ZONE_LOCAL, .model = "tiny", .clearance = 3, .context_window = 100 };
    cfg.backends = backends;
    cfg.n_backends = 3;
    use_private[0] = (struct route_target){ 0, NULL };
    use_gpt[0] = (struct route_target){ 1, "gpt-4o" };
    use_gpt[1] = (struct route_target){ 0, NULL };
    use_default[0] = (struct route_target){ 2, NULL };
    use_default[1] = (struct route_target){ 0, NULL };
    use_default[2] = (struct route_target){ 1, NULL };
    routes[0] = (struct route){ .name = "private", .level_at_least = 2, .prompt_tokens_over = -1,
                                .prompt_tokens_under = -1, .budget_exhausted = TRI_ANY, .stream = TRI_ANY,
                                .use = use_private, .n_use = 1 };
    routes[1] = (struct route){ .name = "gpt4", .model_glob = "gpt-4*", .level_at_least = -1,
                                .prompt_tokens_over = -1, .prompt_tokens_under = -1,
                                .budget_exhausted = TRI_ANY, .stream = TRI_FALSE, .use = use_gpt, .n_use = 2 };
    routes[2] = (struct route){ .name = "default", .level_at_least = -1, .prompt_tokens_over = -1,
                                .prompt_tokens_under = -1, .budget_exhausted = TRI_ANY, .stream = TRI_ANY,
                                .use = use_default, .n_use = 3 };
    cfg.routes = routes;
    cfg.n_routes = 3;
}

static void test_glob(void)
{
    CHECK(glob_match("gpt-4*", "gpt-4o"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("a?c", "abc"));
    CHECK(glob_match("*mini", "gpt-4o-mini"));
    CHECK(glob_match("gpt-[45]*", "gpt-4o") && glob_match("gpt-[45]*", "gpt-5") && !glob_match("gpt-[45]*", "gpt-3.5"));
    CHECK(glob_match("llama3.[!0]*", "llama3.1:8b") && !glob_match("llama3.[!0]*", "llama3.0"));
    CHECK(glob_match("openai/*", "openai/gpt-4o") && glob_match("*4o", "openai/gpt-4o"));
    CHECK(glob_match("what\\?", "what?") && !glob_match("what\\?", "whatx"));
    CHECK(glob_match("a*b*c", "axxbyyc"));
    CHECK(!glob_match("gpt-4*", "gpt-3.5"));
    CHECK(!glob_match("a?c", "ac"));
    CHECK(!glob_match("abc", "abcd"));
}

static void test_first_match_wins(void)
{
    setup();
    struct route_input in = { .model = "gpt-4o", .level = 0 };
    CHECK_STR(route_match(&cfg, &in)->name, "gpt4");
    in.level = 2;               /* level rule comes first */
    CHECK_STR(route_match(&cfg, &in)->name, "private");
    in.level = 0;
    in.stream = 1;              /* gpt4 requires stream: false */
    CHECK_STR(route_match(&cfg, &in)->name, "default");
    in.model = NULL;
    in.stream = 0;
    CHECK_STR(route_match(&cfg, &in)->name, "default");
}

static void test_token_conditions(void)
{
    setup();
    routes[1].model_glob = NULL;
    routes[1].prompt_tokens_over = 100;
    routes[1].prompt_tokens_under = 200;
    struct route_input in = { .prompt_tokens = 150 };
    CHECK_STR(route_match(&cfg, &in)->name, "gpt4");
    in.prompt_tokens = 100;
    CHECK_STR(route_match(&cfg, &in)->name, "default");
    in.prompt_tokens = 200;
    CHECK_STR(route_match(&cfg, &in)->name, "default");
}

static void test_no_route(void)
{
    setup();
    cfg.n_routes = 2;
    struct route_input in = { .model = "llama", .level = 0 };
    struct plan p;
    route_plan(&cfg, &in, &p);
    CHECK(p.route == NULL);
    CHECK(p.n_candidates == 0);
}

static void test_plan_filters_with_reasons(void)
{
    setup();
    struct route_input in = { .model = "x", .level = 2, .prompt_tokens = 500 };
    struct plan p;
    routes[0].level_at_least = 3;   /* let the default route see a confidential request */
    route_plan(&cfg, &in, &p);
    CHECK_STR(p.route->name, "default");
    CHECK(p.n_candidates == 1);
    CHECK(p.candidates[0].backend == 0);
    CHECK_STR(p.candidates[0].model, "llama");
    CHECK(p.n_excluded == 2);
    CHECK(p.excluded[0].backend == 2);
    CHECK_STR(p.excluded[0].reason, "context_window");
    CHECK(p.excluded[1].backend == 1);
    CHECK_STR(p.excluded[1].reason, "clearance");
    /* the completion the client asked for must fit too (tiny: 100 tokens) */
    struct route_input fits = { .model = "x", .level = 2, .prompt_tokens = 80, .completion_tokens = 20 };
    route_plan(&cfg, &fits, &p);
    CHECK(p.n_candidates == 2 && p.candidates[0].backend == 2);
    fits.completion_tokens = 21;
    route_plan(&cfg, &fits, &p);
    CHECK(p.n_candidates == 1 && p.n_excluded == 2 && strcmp(p.excluded[0].reason, "context_window") == 0);
    /* a backend whose key variable is unset is never a candidate */
    backends[0].key_missing = 1;
    route_plan(&cfg, &fits, &p);
    CHECK(p.n_candidates == 0 && p.excluded[1].backend == 0 && strcmp(p.excluded[1].reason, "no_api_key") == 0);
    backends[0].key_missing = 0;
}

static void test_pinned_model(void)
{
    setup();
    struct route_input in = { .model = "gpt-4-turbo", .level = 0 };
    struct plan p;
    route_plan(&cfg, &in, &p);
    CHECK(p.n_candidates == 2);
    CHECK_STR(p.candidates[0].model, "gpt-4o");
    CHECK_STR(p.candidates[1].model, "llama");
}

static void test_clearance_fails_closed(void)
{
    setup();
    CHECK(clearance_allows(&cfg, &backends[0], 3));
    CHECK(clearance_allows(&cfg, &backends[1], 1));
    CHECK(!clearance_allows(&cfg, &backends[1], 2));
    CHECK(!clearance_allows(&cfg, &backends[1], -1));
    CHECK(!clearance_allows(&cfg, &backends[0], 4));
    CHECK(!clearance_allows(&cfg, NULL, 0));
    backends[1].clearance = 9;  /* a corrupt clearance never allows */
    CHECK(!clearance_allows(&cfg, &backends[1], 0));
}

int main(void)
{
    RUN(test_glob);
    RUN(test_first_match_wins);
    RUN(test_token_conditions);
    RUN(test_no_route);
    RUN(test_plan_filters_with_reasons);
    RUN(test_pinned_model);
    RUN(test_clearance_fails_closed);
    TEST_DONE();
}
