/* fuzz_lua.c - libFuzzer harness: plain data across the C <-> Lua boundary
 * (lua/convert.c), both ways, in a sandboxed state (lua/state.c) with an
 * instruction budget, a memory cap and a deadline.
 *
 * First byte even: the rest is JSON. Pushed into Lua and converted back, it
 * converts back when its numbers are finite and it nests no deeper than
 * LCONV_MAX_DEPTH (and, without duplicate keys, only then), equal to what
 * came in (numbers as numbers, [] as [], {} as {}) when it has no duplicate
 * keys; a second round trip changes nothing.
 *
 * First byte odd: the rest is a Lua expression run in the sandbox. Whatever
 * it returns either converts or fails with a reason; what converts survives
 * JSON -> Lua -> JSON unchanged, and a string keeps its bytes. A state that
 * tripped its budget or deadline is replaced, as the engine does. */
#include "base/buf.h"
#include "base/log.h"
#include "lua/convert.h"
#include "lua/state.h"

#include <lauxlib.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static lua_State *L;

static void fresh_state(void)
{
    static lstate_source_t src;
    static const lstate_limits_t lim = {.instruction_limit = 20000,
                                        .memory_limit = 16 << 20,
                                        .deadline_ms = 2000,
                                        .pattern_max = 4096,
                                        .retry_scale = 1.0,
                                        .default_timezone = "UTC",
                                        .public_url = "https://herald.example"};
    hd_err_t err;
    if (L != NULL)
        lstate_free(L);
    L = lstate_new(&src, &lim, &err);
    if (L == NULL)
        abort();
}

/* Deepest nesting of j (a scalar at the top is 0); whether every number is
 * finite and every object's keys are distinct. */
static int shape(const cJSON *j, int depth, bool *finite, bool *distinct)
{
    if (cJSON_IsNumber(j) && !isfinite(j->valuedouble))
        *finite = false;
    int max = depth;
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        if (cJSON_IsObject(j))
            for (const cJSON *o = j->child; o != e; o = o->next)
                if (strcmp(o->string, e->string) == 0)
                    *distinct = false;
        int d = shape(e, depth + 1, finite, distinct);
        if (d > max)
            max = d;
    }
    return max;
}

/* JSON -> Lua -> JSON; NULL when it does not convert back. */
static cJSON *through_lua(const cJSON *j)
{
    int top = lua_gettop(L);
    lconv_push_json(L, j);
    hd_err_t err;
    cJSON *back = lconv_to_json(L, -1, &err);
    lua_pop(L, 1);
    if (lua_gettop(L) != top)
        abort(); /* the stack is left as found */
    return back;
}

static void json_case(const char *s, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(s, n);
    if (j == NULL)
        return;
    bool finite = true, distinct = true;
    int depth = shape(j, 0, &finite, &distinct);
    cJSON *back = through_lua(j);
    bool plain = finite && depth <= LCONV_MAX_DEPTH;
    if (plain && back == NULL)
        abort();
    /* (with duplicate keys the last one wins, and the value it replaced may
     * have been the one too deep or not finite) */
    if (!plain && distinct && back != NULL)
        abort();
    if (back != NULL) {
        if (distinct && !cJSON_Compare(j, back, true))
            abort();
        cJSON *again = through_lua(back);
        if (again == NULL || !cJSON_Compare(back, again, true))
            abort();
        cJSON_Delete(again);
    }
    cJSON_Delete(back);
    cJSON_Delete(j);
}

static void lua_case(const char *s, size_t n)
{
    buf_t code;
    buf_init(&code);
    buf_puts(&code, "return ");
    buf_append(&code, s, n);
    int top = lua_gettop(L);
    if (luaL_loadbufferx(L, code.data, code.len, "=fuzz", "t") != LUA_OK) {
        lua_pop(L, 1);
        buf_free(&code);
        return;
    }
    buf_free(&code);
    lstate_push_env(L);
    lua_setupvalue(L, -2, 1); /* the chunk's _ENV is the sandbox */
    hd_err_t err;
    if (lstate_pcall_within(L, 2000, 0, 1, &err) != 0) {
        if (lua_gettop(L) != top || err.msg[0] == '\0')
            abort();
        if (lstate_tripped(L))
            fresh_state();
        return;
    }
    cJSON *j = lconv_to_json(L, -1, &err);
    if (j != NULL) {
        if (lua_type(L, -1) == LUA_TSTRING) {
            size_t len;
            const char *str = lua_tolstring(L, -1, &len);
            if (!cJSON_IsString(j) || strlen(j->valuestring) != len ||
                memcmp(j->valuestring, str, len) != 0)
                abort(); /* a string keeps its bytes (or does not convert) */
        }
        cJSON *back = through_lua(j);
        if (back == NULL || !cJSON_Compare(j, back, true))
            abort();
        cJSON_Delete(back);
        cJSON_Delete(j);
    } else if (err.msg[0] == '\0') {
        abort(); /* a refusal says why */
    }
    lua_pop(L, 1);
    if (lua_gettop(L) != top)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (L == NULL) {
        log_set_level(LOG_CRIT); /* script errors are expected here, by the thousand */
        fresh_state();
    }
    if (size == 0)
        return 0;
    if (data[0] & 1)
        lua_case((const char *)data + 1, size - 1);
    else
        json_case((const char *)data + 1, size - 1);
    /* What the run made is freed in the run: libFuzzer looks for leaks
     * (a full LSan scan) after any run that freed less than it allocated. */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
