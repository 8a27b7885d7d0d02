/* fuzz_http.c - libFuzzer harness: request paths through the router and
 * traceparent headers through their parser. */
#include "http/router.h"
#include "http/server.h"

#include <stdlib.h>
#include <string.h>

static int h;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static router_t r;
    static int ready;
    if (!ready) {
        router_init(&r);
        router_add(&r, "GET", "/api/crm/communications/{id}", &h, 0, BODY_NONE);
        router_add(&r, "POST", "/api/crm/communications", &h, 0, BODY_JSON);
        router_add(&r, "GET", "/a/{x}/b/{y}", &h, 0, BODY_NONE);
        ready = 1;
    }
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    route_match_t m;
    if (router_match(&r, "GET", s, &m) == ROUTE_FOUND) {
        for (int i = 0; i < m.nparams; i++)
            if (strchr(m.values[i], '/') != NULL || m.values[i][0] == '\0')
                abort(); /* a capture never holds a slash and is never empty */
    }
    char trace[33];
    if (http_parse_traceparent(s, trace) && strlen(trace) != 32)
        abort();
    free(s);
    return 0;
}
