/* denylist.c - the Redis deny list of revoked tokens (see denylist.h). */
#include "cache/denylist.h"
#include "base/buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define KEY_PREFIX "herald:deny:v1:jti:"
#define KEY_LOADED "herald:deny:v1:loaded"

/* KEYS: the marker; ARGV: the marker's TTL, then jti, ttl pairs. */
static const char LOAD_SCRIPT[] =
    "for i = 2, #ARGV, 2 do "
    "redis.call('SET', '" KEY_PREFIX "' .. ARGV[i], '1', 'EX', ARGV[i + 1]) end "
    "redis.call('SET', KEYS[1], '1', 'EX', ARGV[1]) return 1";

void deny_keys(const char *jti, char marker[DENY_KEY_MAX], char entry[DENY_KEY_MAX])
{
    snprintf(marker, DENY_KEY_MAX, "%s", KEY_LOADED);
    snprintf(entry, DENY_KEY_MAX, KEY_PREFIX "%s", jti);
}

deny_status_t deny_status_of(bool marker_present, bool entry_present)
{
    if (!marker_present)
        return DENY_NOT_LOADED;
    return entry_present ? DENY_REVOKED : DENY_ALLOWED;
}

deny_status_t deny_check(rd_client_t *rd, const char *jti, hd_err_t *err)
{
    char marker[DENY_KEY_MAX], entry[DENY_KEY_MAX];
    deny_keys(jti, marker, entry);
    const char *argv[] = {"MGET", marker, entry};
    redisReply *r = rd_command_argv(rd, 3, argv, err);
    if (r == NULL)
        return DENY_DOWN;
    deny_status_t st = DENY_DOWN;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2)
        hd_err_set(err, "unexpected answer to MGET");
    else
        st = deny_status_of(r->element[0]->type != REDIS_REPLY_NIL,
                            r->element[1]->type != REDIS_REPLY_NIL);
    freeReplyObject(r);
    return st;
}

int deny_add(rd_client_t *rd, const char *jti, int64_t ttl_s, hd_err_t *err)
{
    buf_t key;
    buf_init(&key);
    buf_printf(&key, KEY_PREFIX "%s", jti);
    char ttl[32];
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_s < 1 ? 1 : ttl_s);
    const char *argv[] = {"SET", key.data, "1", "EX", ttl};
    redisReply *r = rd_command_argv(rd, 5, argv, err);
    buf_free(&key);
    if (r == NULL)
        return -1;
    int rc = r->type == REDIS_REPLY_STATUS ? 0 : hd_err_set(err, "Redis refused the SET");
    freeReplyObject(r);
    return rc;
}

int deny_load(rd_client_t *rd, const deny_entry_t *e, int n, hd_err_t *err)
{
    int argc = 5 + 2 * n;
    const char **argv = calloc((size_t)argc, sizeof(*argv));
    char(*ttls)[24] = calloc((size_t)n + 1, sizeof(*ttls));
    if (argv == NULL || ttls == NULL) {
        free(argv);
        free(ttls);
        return hd_err_set(err, "out of memory");
    }
    argv[0] = "EVAL", argv[1] = LOAD_SCRIPT, argv[2] = "1", argv[3] = KEY_LOADED;
    snprintf(ttls[n], sizeof(ttls[n]), "%d", DENY_LOADED_TTL_S);
    argv[4] = ttls[n];
    for (int i = 0; i < n; i++) {
        snprintf(ttls[i], sizeof(ttls[i]), "%" PRId64, e[i].ttl_s < 1 ? 1 : e[i].ttl_s);
        argv[5 + 2 * i] = e[i].jti;
        argv[6 + 2 * i] = ttls[i];
    }
    redisReply *r = rd_command_argv(rd, argc, argv, err);
    free(argv);
    free(ttls);
    if (r == NULL)
        return -1;
    int rc = r->type == REDIS_REPLY_INTEGER
                 ? 0
                 : hd_err_set(err, "Redis refused the load: %s",
                              r->type == REDIS_REPLY_ERROR ? r->str : "unexpected answer");
    freeReplyObject(r);
    return rc;
}
