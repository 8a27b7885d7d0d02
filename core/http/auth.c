/* auth.c - access tokens (see auth.h). Uses crypto/jwt and base/scope. */
#include "http/auth.h"
#include "base/log.h"
#include "cache/denylist.h"
#include "crypto/hash.h"
#include "crypto/jwt.h"
#include "engine/revoke.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The signing key's id: the one secrets.c derived, or derived here for a
 * cfg_t filled by other means. */
static const char *signing_kid(const cfg_t *cfg, char buf[9])
{
    if (cfg->jwt_kid[0])
        return cfg->jwt_kid;
    jwt_key_id(cfg->jwt_secret, cfg->jwt_secret_len, buf);
    return buf;
}

int auth_mint(const cfg_t *cfg, const char *sub, unsigned scopes_mask, int ttl, int64_t now,
              char **token_out, hd_err_t *err)
{
    char scope[64];
    scope_format(scopes_mask, scope, sizeof(scope));
    char *jti = hash_uuid4();
    if (jti == NULL)
        return hd_err_set(err, "cannot generate a token id");
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "iss", cfg->jwt_issuer);
    cJSON_AddStringToObject(c, "aud", cfg->jwt_audience);
    cJSON_AddStringToObject(c, "sub", sub);
    cJSON_AddStringToObject(c, "scope", scope);
    cJSON_AddNumberToObject(c, "iat", (double)now);
    cJSON_AddNumberToObject(c, "exp", (double)(now + ttl));
    cJSON_AddStringToObject(c, "jti", jti);
    free(jti);
    char kid[9];
    int rc = jwt_sign_hs256_kid(cfg->jwt_secret, cfg->jwt_secret_len, signing_kid(cfg, kid), c,
                                token_out);
    cJSON_Delete(c);
    return rc == 0 ? 0 : hd_err_set(err, "cannot sign the token");
}

int auth_verify_bearer(const cfg_t *cfg, const char *header, int64_t now, auth_principal_t *out,
                       hd_err_t *err)
{
    if (header == NULL || *header == '\0')
        return hd_err_set(err, "missing Authorization header (expected \"Bearer <token>\")");
    if (strncasecmp(header, "Bearer ", 7) != 0)
        return hd_err_set(err, "Authorization must use the Bearer scheme");
    const char *tok = header + 7;
    while (*tok == ' ')
        tok++;
    /* the signing key and every older one still configured */
    jwt_key_t keys[1 + CFG_MAX_OLD_KEYS];
    size_t nkeys = 0;
    char kid[9];
    keys[nkeys++] = (jwt_key_t){signing_kid(cfg, kid), cfg->jwt_secret, cfg->jwt_secret_len};
    for (int i = 0; i < cfg->jwt_old_count; i++)
        keys[nkeys++] =
            (jwt_key_t){cfg->jwt_old_kids[i], cfg->jwt_old_secrets[i], cfg->jwt_old_lens[i]};
    jwt_verify_opts_t o = {
        .keys = keys,
        .nkeys = nkeys,
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .now = now,
        .leeway = AUTH_LEEWAY_S,
        .require_exp = 1,
    };
    cJSON *claims = NULL;
    jwt_status_t st = jwt_verify_hs256(tok, &o, &claims);
    if (st != JWT_OK)
        return hd_err_set(err, "invalid token: %s", jwt_status_str(st));
    int rc = 0;
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(claims, "sub");
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(claims, "scope");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(claims, "exp");
    const cJSON *jti = cJSON_GetObjectItemCaseSensitive(claims, "jti");
    memset(out, 0, sizeof(*out));
    if (!cJSON_IsString(sub) || !cJSON_IsString(scope)) {
        rc = hd_err_set(err, "invalid token: sub and scope claims are required");
    } else if (strlen(sub->valuestring) >= sizeof(out->sub) || sub->valuestring[0] == '\0') {
        /* never truncate an identity: it keys idempotency and audit rows */
        rc = hd_err_set(err, "invalid token: sub must be 1 to %zu bytes", sizeof(out->sub) - 1);
    } else {
        snprintf(out->sub, sizeof(out->sub), "%s", sub->valuestring);
        /* A token naming a scope we do not know grants nothing from it. */
        out->scopes = 0;
        unsigned m;
        if (scope_parse(scope->valuestring, &m, NULL) == 0)
            out->scopes = m;
        out->exp = cJSON_IsNumber(exp) ? (int64_t)exp->valuedouble : 0;
        if (cJSON_IsString(jti))
            snprintf(out->jti, sizeof(out->jti), "%s", jti->valuestring);
    }
    cJSON_Delete(claims);
    return rc;
}

int auth_check_revocation(pg_pool_t *db, rd_client_t *rd, const auth_principal_t *p, int64_t now,
                          deny_status_t deny, hd_err_t *err)
{
    if (p->jti[0] == '\0')
        return 0;
    hd_err_t why;
    switch (revoke_resolve(db, rd, p->jti, now, AUTH_LEEWAY_S, deny, &why)) {
    case REVOKE_VALID:
        return 0;
    case REVOKE_REVOKED:
        hd_err_set(err, "invalid token: revoked");
        return -1;
    case REVOKE_UNKNOWN:
        break;
    }
    log_warn("cannot tell whether a token is revoked; refusing it", "reason", why.msg);
    hd_err_set(err, "cannot check the token now; retry later");
    return -2;
}

int auth_authenticate(const cfg_t *cfg, pg_pool_t *db, rd_client_t *rd, const char *header,
                      int64_t now, auth_principal_t *out, hd_err_t *err)
{
    if (auth_verify_bearer(cfg, header, now, out, err) != 0)
        return -1;
    if (out->jti[0] == '\0')
        return 0;
    hd_err_t why;
    deny_status_t deny = deny_check(rd, out->jti, &why);
    return auth_check_revocation(db, rd, out, now, deny, err);
}
