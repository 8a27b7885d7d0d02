/*
 * runtime.c - generations and per-thread states (see runtime.h). Uses
 * lua/state for sandboxed states and lua/convert for plain data.
 */
#include "lua/runtime.h"
#include "base/buf.h"
#include "base/log.h"
#include "lua/convert.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES      512
#define MAX_FILE_BYTES (4 << 20)

/* Entry points checked at every load (docs/scripting.md). */
static const char *const entry_points[][2] = {
    {"strategy", "decide"}, {"strategy", "explain"},    {"strategy", "refusal"},
    {"strategy", "when"},   {"retry", "policy"},        {"classify", "classify"},
    {"content", "render"},  {"content", "compile_all"}, {"retry", "no_receipt"},
    {"retry", "alert"},     {"types", "check"},         {"types", "list"},
    {"inbound", "keyword"}, {"whatsapp", "choose"},     {"limits", "buckets"},
    {"limits", "cap"},
};

typedef struct gen {
    long id;
    atomic_int refs;
    time_t loaded_at;
    lstate_source_t src;
} gen_t;

typedef struct tctx {
    lrt_t *rt;
    gen_t *gen;
    lua_State *L;
} tctx_t;

struct lrt {
    char *scripts_dir, *templates_dir;
    lstate_limits_t limits;
    long deadline_ms[2];                 /* by lrt_deadline_t */
    char *default_timezone, *public_url; /* owned copies behind limits */
    pthread_key_t key;
    pthread_mutex_t mu;        /* guards current and status */
    pthread_mutex_t reload_mu; /* one reload at a time */
    gen_t *current;
    atomic_long gen_id;
    lrt_status_t status;
};

static void free_files(lstate_file_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        free(f[i].name);
        free(f[i].path);
        free(f[i].source);
    }
    free(f);
}

static void gen_release(gen_t *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    free_files(g->src.scripts, g->src.nscripts);
    free_files(g->src.templates, g->src.ntemplates);
    free_files(g->src.compiled, g->src.ncompiled);
    free(g);
}

static bool skip_name(const char *n)
{
    size_t len = strlen(n);
    /* hidden files, editor swap and backup files are never policy */
    return n[0] == '.' || n[0] == '#' || (len && n[len - 1] == '~') ||
           (len > 4 && strcmp(n + len - 4, ".swp") == 0);
}

static int read_file(const char *path, lstate_file_t *f, hd_err_t *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return hd_err_set(err, "%s: cannot read: %s", path, strerror(errno));
    buf_t b;
    buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
        buf_append(&b, chunk, n);
        if (b.len > MAX_FILE_BYTES) {
            fclose(fp);
            buf_free(&b);
            return hd_err_set(err, "%s: larger than %d bytes", path, MAX_FILE_BYTES);
        }
    }
    fclose(fp);
    f->len = b.len;
    f->source = buf_steal(&b);
    return 0;
}

/* Collects files under dir and its folders: with modules set, "lib/x.lua"
 * is module "lib.x"; otherwise a file is named by its path ("fr/welcome.html",
 * a locale's template). */
static int collect(const char *dir, const char *rel, bool modules, lstate_file_t **files, int *n,
                   hd_err_t *err)
{
    char path[1024];
    if (strlen(rel) > 256) /* a symbolic link's loop, or worse: never policy */
        return hd_err_set(err, "%s/%.64s...: folders nested too deep", dir, rel);
    snprintf(path, sizeof(path), "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (d == NULL)
        return hd_err_set(err, "%s: cannot open directory: %s", path, strerror(errno));
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (skip_name(e->d_name))
            continue;
        char relpath[1024], full[2100];
        snprintf(relpath, sizeof(relpath), "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof(full), "%s/%s", dir, relpath);
        struct stat st;
        if (stat(full, &st) != 0)
            continue; /* vanished while we looked: the next event reloads */
        if (S_ISDIR(st.st_mode)) {
            rc = collect(dir, relpath, modules, files, n, err);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        size_t len = strlen(relpath);
        if (modules && (len < 5 || strcmp(relpath + len - 4, ".lua") != 0))
            continue;
        if (*n == MAX_FILES) {
            rc = hd_err_set(err, "%s: more than %d files", dir, MAX_FILES);
            break;
        }
        if (*n % 32 == 0) {
            lstate_file_t *grown = realloc(*files, (size_t)(*n + 32) * sizeof(**files));
            if (grown == NULL)
                abort();
            *files = grown;
        }
        lstate_file_t *f = &(*files)[*n];
        memset(f, 0, sizeof(*f));
        f->path = xstrdup(full);
        if (modules) {
            f->name = strndup(relpath, len - 4);
            for (char *p = f->name; *p; p++)
                if (*p == '/')
                    *p = '.';
        } else {
            f->name = xstrdup(relpath);
        }
        (*n)++;
        rc = read_file(full, f, err);
    }
    closedir(d);
    return rc;
}

static gen_t *read_generation(const lrt_t *rt, hd_err_t *err)
{
    gen_t *g = xcalloc(1, sizeof(*g));
    atomic_init(&g->refs, 1);
    if (collect(rt->scripts_dir, "", true, &g->src.scripts, &g->src.nscripts, err) != 0 ||
        collect(rt->templates_dir, "", false, &g->src.templates, &g->src.ntemplates, err) != 0) {
        gen_release(g);
        return NULL;
    }
    return g;
}

/* stack: errors table from compile_all -> "a; b; c (and N more)" */
static void join_errors(lua_State *L, int idx, hd_err_t *err)
{
    buf_t b;
    buf_init(&b);
    lua_Integer n = luaL_len(L, idx);
    for (lua_Integer i = 1; i <= n && i <= 5; i++) {
        lua_rawgeti(L, idx, i);
        if (i > 1)
            buf_puts(&b, "; ");
        buf_puts(&b, lua_isstring(L, -1) ? lua_tostring(L, -1) : "?");
        lua_pop(L, 1);
    }
    if (n > 5)
        buf_printf(&b, " (and %lld more)", (long long)(n - 5));
    hd_err_set(err, "%s", b.len ? b.data : "template check failed");
    buf_free(&b);
}

/* Copies content.export_compiled()'s templates into g, for every state of
 * the generation (herald.compiled): a thread's new state then loads them
 * instead of compiling 100 templates again. Optional: without it a state
 * compiles what it renders. */
static void keep_compiled(lua_State *L, gen_t *g)
{
    hd_err_t err;
    int top = lua_gettop(L);
    if (lstate_require(L, "content", &err) != 0)
        goto out;
    lua_getfield(L, -1, "export_compiled");
    if (!lua_isfunction(L, -1) || lstate_pcall(L, 0, 1, &err) != 0 || !lua_istable(L, -1))
        goto out;
    int n = 0, cap = 0;
    lstate_file_t *f = NULL;
    lua_pushnil(L);
    while (lua_next(L, -2) != 0 && n < MAX_FILES * 4) {
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                f = realloc(f, (size_t)cap * sizeof(*f));
                if (f == NULL)
                    abort();
            }
            size_t len;
            const char *text = lua_tolstring(L, -1, &len);
            f[n].name = xstrdup(lua_tostring(L, -2));
            f[n].path = NULL;
            f[n].source = xmalloc(len + 1);
            memcpy(f[n].source, text, len + 1);
            f[n].len = len;
            n++;
        }
        lua_pop(L, 1);
    }
    g->src.compiled = f;
    g->src.ncompiled = n;
out:
    lua_settop(L, top);
}

/* Loads every script, checks entry points, compiles every template. */
static int validate(const lrt_t *rt, gen_t *g, hd_err_t *err)
{
    lua_State *L = lstate_new(&g->src, &rt->limits, err);
    if (L == NULL)
        return -1;
    int rc = 0;
    for (int i = 0; i < g->src.nscripts && rc == 0; i++) {
        lstate_file_t *f = &g->src.scripts[i];
        char chunk[1100];
        snprintf(chunk, sizeof(chunk), "@%s", f->path);
        if (luaL_loadbufferx(L, f->source, f->len, chunk, "t") != LUA_OK)
            rc = hd_err_set(err, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < sizeof(entry_points) / sizeof(entry_points[0]) && rc == 0; i++) {
        const char *mod = entry_points[i][0], *fn = entry_points[i][1];
        if (lstate_require(L, mod, err) != 0) {
            rc = -1;
            break;
        }
        if (!lua_istable(L, -1)) {
            rc = hd_err_set(err, "scripts/%s.lua: must return a table of functions", mod);
        } else {
            lua_getfield(L, -1, fn);
            if (!lua_isfunction(L, -1))
                rc = hd_err_set(err, "scripts/%s.lua: entry point %s.%s is missing", mod, mod, fn);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    if (rc == 0) {
        lstate_require(L, "content", err);
        lua_getfield(L, -1, "compile_all");
        lua_remove(L, -2);
        if (lstate_pcall(L, 0, 2, err) != 0) {
            rc = -1;
        } else {
            if (!lua_toboolean(L, -2)) {
                if (lua_istable(L, -1))
                    join_errors(L, lua_gettop(L), err);
                else
                    hd_err_set(err, "content.compile_all: %s",
                               lua_isstring(L, -1) ? lua_tostring(L, -1) : "failed");
                rc = -1;
            }
            lua_pop(L, 2);
        }
    }
    if (rc == 0)
        keep_compiled(L, g);
    lstate_free(L);
    return rc;
}

static void tctx_free(void *p)
{
    tctx_t *c = p;
    if (c == NULL)
        return;
    lstate_free(c->L);
    gen_release(c->gen);
    free(c);
}

lrt_t *lrt_new(const lrt_opts_t *opts, hd_err_t *err)
{
    lrt_t *rt = xcalloc(1, sizeof(*rt));
    rt->scripts_dir = xstrdup(opts->scripts_dir);
    rt->templates_dir = xstrdup(opts->templates_dir);
    rt->limits = opts->limits;
    rt->deadline_ms[LRT_DECISION] = opts->decision_ms;
    rt->deadline_ms[LRT_RENDER] = opts->render_ms;
    rt->default_timezone =
        xstrdup(opts->limits.default_timezone ? opts->limits.default_timezone : "UTC");
    rt->public_url = xstrdup(opts->limits.public_url ? opts->limits.public_url : "");
    rt->limits.default_timezone = rt->default_timezone;
    rt->limits.public_url = rt->public_url;
    pthread_mutex_init(&rt->mu, NULL);
    pthread_mutex_init(&rt->reload_mu, NULL);
    pthread_key_create(&rt->key, tctx_free);
    atomic_init(&rt->gen_id, 0);
    if (lrt_reload(rt, err) != 0) {
        lrt_free(rt);
        return NULL;
    }
    return rt;
}

void lrt_free(lrt_t *rt)
{
    if (rt == NULL)
        return;
    tctx_free(pthread_getspecific(rt->key));
    pthread_setspecific(rt->key, NULL);
    pthread_key_delete(rt->key);
    gen_release(rt->current);
    pthread_mutex_destroy(&rt->mu);
    pthread_mutex_destroy(&rt->reload_mu);
    free(rt->scripts_dir);
    free(rt->templates_dir);
    free(rt->default_timezone);
    free(rt->public_url);
    free(rt);
}

int lrt_reload(lrt_t *rt, hd_err_t *err)
{
    hd_err_t local;
    if (err == NULL)
        err = &local;
    pthread_mutex_lock(&rt->reload_mu);
    gen_t *g = read_generation(rt, err);
    int rc = g ? validate(rt, g, err) : -1;
    pthread_mutex_lock(&rt->mu);
    if (rc == 0) {
        g->id = atomic_load(&rt->gen_id) + 1;
        g->loaded_at = time(NULL);
        gen_t *old = rt->current;
        rt->current = g;
        rt->status.generation = g->id;
        rt->status.loaded_at = g->loaded_at;
        rt->status.nscripts = g->src.nscripts;
        rt->status.ntemplates = g->src.ntemplates;
        rt->status.failing = false;
        atomic_store(&rt->gen_id, g->id);
        pthread_mutex_unlock(&rt->mu);
        gen_release(old);
        char id[24];
        snprintf(id, sizeof(id), "%ld", g->id);
        log_info("policy loaded", "generation", id, "scripts", rt->scripts_dir, "templates",
                 rt->templates_dir);
    } else {
        rt->status.failing = true;
        rt->status.reload_errors++;
        rt->status.error_at = time(NULL);
        snprintf(rt->status.error, sizeof(rt->status.error), "%s", err->msg);
        bool first = rt->current == NULL;
        pthread_mutex_unlock(&rt->mu);
        gen_release(g);
        log_error(first ? "policy failed to load"
                        : "policy reload failed; the previous generation keeps running",
                  "error", err->msg);
    }
    pthread_mutex_unlock(&rt->reload_mu);
    return rc;
}

/* A call tripped the thread's state (lstate_pcall_within): nothing of it may
 * reach the next call, so it is closed; lrt_state builds a fresh one. */
static void abandon_if_tripped(tctx_t *c)
{
    if (c->L == NULL || !lstate_tripped(c->L))
        return;
    lstate_free(c->L);
    gen_release(c->gen);
    c->L = NULL;
    c->gen = NULL;
    log_warn("a policy call exceeded its budget: this thread's Lua state was closed and is "
             "rebuilt for the next call");
}

lua_State *lrt_state(lrt_t *rt, hd_err_t *err)
{
    tctx_t *c = pthread_getspecific(rt->key);
    if (c == NULL) {
        c = xcalloc(1, sizeof(*c));
        c->rt = rt;
        pthread_setspecific(rt->key, c);
    }
    abandon_if_tripped(c);
    long want = atomic_load(&rt->gen_id);
    if (c->L != NULL && c->gen != NULL && c->gen->id == want)
        return c->L;
    pthread_mutex_lock(&rt->mu);
    gen_t *g = rt->current;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&rt->mu);
    lua_State *L = lstate_new(&g->src, &rt->limits, err);
    if (L == NULL) {
        gen_release(g);
        return c->L; /* keep serving the generation this thread has */
    }
    lstate_free(c->L);
    gen_release(c->gen);
    c->L = L;
    c->gen = g;
    return L;
}

int lrt_call_within(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                    cJSON *const *args, int nargs, cJSON **out, hd_err_t *err)
{
    return lrt_call_private(rt, within, module, fn, args, nargs, 0, out, err);
}

int lrt_call_private(lrt_t *rt, lrt_deadline_t within, const char *module, const char *fn,
                     cJSON *const *args, int nargs, unsigned private_args, cJSON **out,
                     hd_err_t *err)
{
    *out = NULL;
    lua_State *L = lrt_state(rt, err);
    if (L == NULL)
        return -1;
    int top = lua_gettop(L);
    if (lstate_require(L, module, err) != 0) {
        lua_settop(L, top);
        abandon_if_tripped(pthread_getspecific(rt->key));
        return -1;
    }
    lua_getfield(L, -1, fn); /* stack: module, fn */
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_settop(L, top);
        return hd_err_set(err, "scripts/%s.lua: %s.%s is not a function", module, module, fn);
    }
    for (int i = 0; i < nargs; i++)
        lconv_push_json(L, args[i]);
    cJSON *priv[8];
    int npriv = 0;
    for (int i = 0; i < nargs && i < 8; i++)
        if (private_args & (1u << i))
            priv[npriv++] = args[i];
    lstate_set_private(L, priv, npriv);
    int prc = lstate_pcall_within(L, rt->deadline_ms[within], nargs, 1, err);
    lstate_set_private(L, NULL, 0);
    if (prc != 0) {
        lua_settop(L, top);
        bool tripped = lstate_tripped(L);
        abandon_if_tripped(pthread_getspecific(rt->key));
        return tripped ? LRT_TRIPPED : -1;
    }
    *out = lconv_to_json(L, -1, err);
    lua_settop(L, top);
    if (*out == NULL)
        return hd_err_prefix(err, "%s.%s returned a value that is not plain data", module, fn);
    return 0;
}

int lrt_call(lrt_t *rt, const char *module, const char *fn, cJSON *const *args, int nargs,
             cJSON **out, hd_err_t *err)
{
    return lrt_call_within(rt, LRT_DECISION, module, fn, args, nargs, out, err);
}

void lrt_where(lrt_t *rt, const char *module, const char *fn, char *out, size_t n)
{
    snprintf(out, n, "scripts/%s.lua", module);
    hd_err_t err;
    lua_State *L = lrt_state(rt, &err);
    if (L == NULL)
        return;
    int top = lua_gettop(L);
    if (lstate_require(L, module, &err) == 0) {
        lua_getfield(L, -1, fn); /* stack: module, fn */
        lua_Debug ar;
        if (lua_isfunction(L, -1) && lua_getinfo(L, ">S", &ar) && ar.linedefined > 0)
            snprintf(out, n, "%s:%d", ar.short_src, ar.linedefined);
    }
    lua_settop(L, top);
}

void lrt_status(lrt_t *rt, lrt_status_t *out)
{
    pthread_mutex_lock(&rt->mu);
    *out = rt->status;
    pthread_mutex_unlock(&rt->mu);
}

const char *lrt_scripts_dir(const lrt_t *rt)
{
    return rt->scripts_dir;
}

const char *lrt_templates_dir(const lrt_t *rt)
{
    return rt->templates_dir;
}
