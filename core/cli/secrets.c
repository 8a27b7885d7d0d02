/*
 * secrets.c - fills the secrets of cfg_t from the environment (see cli.h):
 * the JWT secret, the encryption keys and the blind-index key, decoded and
 * checked, and the provider secrets. When auth.allow_dev_keys is set, an
 * absent JWT secret or encryption key comes from var/dev-keys/, generated
 * there on first use. Uses crypto/ (key decoding, HMAC, randomness, base64):
 * the reason it lives in the cli layer and not next to config.c in base/.
 */
#include "base/buf.h"
#include "base/log.h"
#include "cli/cli.h"
#include "crypto/codec.h"
#include "crypto/field.h"
#include "crypto/hash.h"
#include "crypto/jwt.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads an existing development key file; NULL with err when it is there
 * but empty or damaged (never silently replaced: data may be encrypted
 * with it). *missing is set when the file does not exist. */
static char *read_dev_key(const char *path, bool *missing, hd_err_t *err)
{
    *missing = false;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            *missing = true;
            return NULL;
        }
        hd_err_set(err, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[256] = {0};
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    line[strcspn(line, "\r\n")] = '\0';
    if (ok == NULL || strlen(line) < 40) {
        hd_err_set(err,
                   "%s is empty or damaged; delete it to generate a new development key "
                   "(data encrypted with the old one becomes unreadable)",
                   path);
        return NULL;
    }
    return xstrdup(line);
}

/* Reads var/dev-keys/<name>, creating it with 32 random bytes (base64) when
 * absent. Returns the base64 text (caller frees). The key is written to a
 * temporary file and linked into place, so the file is complete or absent,
 * and two processes starting together agree on one key. */
static char *dev_key(const char *var_dir, const char *name, hd_err_t *err)
{
    char dir[1024], path[1100], tmp[1200];
    snprintf(dir, sizeof(dir), "%s/dev-keys", var_dir);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    mkdir(var_dir, 0755);
    mkdir(dir, 0700);
    bool missing;
    char *key = read_dev_key(path, &missing, err);
    if (key != NULL || !missing)
        return key;
    uint8_t raw[32];
    if (hash_random(raw, sizeof(raw)) != 0) {
        hd_err_set(err, "cannot generate a development key: no randomness");
        return NULL;
    }
    char *b64 = b64_encode(raw, sizeof(raw));
    snprintf(tmp, sizeof(tmp), "%s/.%s.%d", dir, name, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    bool written = fd >= 0 && dprintf(fd, "%s\n", b64) == (int)strlen(b64) + 1 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!written) {
        hd_err_set(err, "cannot write %s: %s", tmp, strerror(errno));
        unlink(tmp);
        free(b64);
        return NULL;
    }
    int rc = link(tmp, path); /* fails with EEXIST when another process won */
    int link_errno = errno;
    unlink(tmp);
    if (rc != 0) {
        free(b64);
        if (link_errno == EEXIST)
            return read_dev_key(path, &missing, err);
        hd_err_set(err, "cannot create %s: %s", path, strerror(link_errno));
        return NULL;
    }
    return b64;
}

/* Gets one secret from the environment, else the development key file.
 * With generate unset nothing is written: *out stays NULL when the key
 * would have been generated (for `herald check`). */
static int get_secret(cfg_t *cfg, const char *var, const char *devname, bool generate, char **out,
                      bool *is_dev, hd_err_t *err)
{
    *out = NULL;
    const char *v = getenv(var);
    if (v && *v) {
        *out = xstrdup(v);
        *is_dev = false;
        return 0;
    }
    if (!cfg->allow_dev_keys)
        return hd_err_set(err,
                          "%s is not set and auth.allow_dev_keys is false; set it in the "
                          "environment",
                          var);
    *is_dev = true;
    if (!generate)
        return 0;
    *out = dev_key(cfg->var_dir, devname, err);
    if (*out == NULL)
        return -1;
    *is_dev = true;
    char path[1100];
    snprintf(path, sizeof(path), "%s/dev-keys/%s", cfg->var_dir, devname);
    log_warn("DEVELOPMENT KEY IN USE - NOT FOR PRODUCTION: set the variable in the environment",
             "variable", var, "file", path);
    return 0;
}

/* Provider secrets: required by the drivers that use them, never from the
 * file, never generated. */
static int provider_secrets(cfg_t *cfg, hd_err_t *err)
{
    static const struct {
        const char *var, *driver_value;
        size_t driver_off, out_off;
    } need[] = {
        {"HERALD_SMTP_PASSWORD", NULL, 0, offsetof(cfg_t, smtp_password)},
        {"HERALD_TWILIO_AUTH_TOKEN", "twilio", offsetof(cfg_t, sms_driver),
         offsetof(cfg_t, twilio_token)},
        {"HERALD_WHATSAPP_TOKEN", "whatsapp", offsetof(cfg_t, wa_driver),
         offsetof(cfg_t, wa_token)},
        /* webhooks: without them the WhatsApp webhook answers 403 to all */
        {"HERALD_WHATSAPP_APP_SECRET", NULL, 0, offsetof(cfg_t, wa_app_secret)},
        {"HERALD_WHATSAPP_VERIFY_TOKEN", NULL, 0, offsetof(cfg_t, wa_verify_token)},
        /* a path, not a secret; read here with the provider settings */
        {"HERALD_DKIM_KEY_FILE", NULL, 0, offsetof(cfg_t, dkim_key_file)},
    };
    for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
        const char *v = getenv(need[i].var);
        char **slot = (char **)((char *)cfg + need[i].out_off);
        free(*slot);
        *slot = (v && *v) ? xstrdup(v) : NULL;
        if (*slot == NULL && need[i].driver_value) {
            const char *driver = *(char **)((char *)cfg + need[i].driver_off);
            if (driver && strcmp(driver, need[i].driver_value) == 0)
                return hd_err_set(err, "%s is not set; the %s driver needs it", need[i].var,
                                  need[i].driver_value);
        }
    }
    return 0;
}

/* HERALD_JWT_OLD_SECRETS: earlier signing secrets, comma- or
 * space-separated, that still verify tokens (each 32 to 128 bytes, so a
 * secret listed there cannot hold a comma or a space). Two keys with one
 * id would make a token's kid ambiguous: refused. */
static int jwt_old_secrets(cfg_t *cfg, hd_err_t *err)
{
    cfg->jwt_old_count = 0;
    const char *old = getenv("HERALD_JWT_OLD_SECRETS");
    if (old == NULL || *old == '\0')
        return 0;
    char *copy = xstrdup(old), *save = NULL;
    int rc = -1;
    for (char *t = strtok_r(copy, ", \t\n", &save); t; t = strtok_r(NULL, ", \t\n", &save)) {
        int i = cfg->jwt_old_count;
        size_t n = strlen(t);
        if (i == CFG_MAX_OLD_KEYS) {
            hd_err_set(err, "HERALD_JWT_OLD_SECRETS: at most %d secrets", CFG_MAX_OLD_KEYS);
            goto done;
        }
        if (n < 32 || n > sizeof(cfg->jwt_old_secrets[i])) {
            hd_err_set(err, "HERALD_JWT_OLD_SECRETS: secret %d: expected 32 to %zu bytes, got %zu",
                       i + 1, sizeof(cfg->jwt_old_secrets[i]), n);
            goto done;
        }
        memcpy(cfg->jwt_old_secrets[i], t, n);
        cfg->jwt_old_lens[i] = n;
        jwt_key_id(cfg->jwt_old_secrets[i], n, cfg->jwt_old_kids[i]);
        bool same_as_current = n == cfg->jwt_secret_len && memcmp(t, cfg->jwt_secret, n) == 0;
        if (!same_as_current && strcmp(cfg->jwt_old_kids[i], cfg->jwt_kid) == 0) {
            hd_err_set(err, "HERALD_JWT_OLD_SECRETS: secret %d has the key id of another", i + 1);
            goto done;
        }
        for (int k = 0; k < i; k++)
            if (strcmp(cfg->jwt_old_kids[k], cfg->jwt_old_kids[i]) == 0 &&
                (cfg->jwt_old_lens[k] != n || memcmp(cfg->jwt_old_secrets[k], t, n) != 0)) {
                hd_err_set(err, "HERALD_JWT_OLD_SECRETS: secret %d has the key id of another",
                           i + 1);
                goto done;
            }
        cfg->jwt_old_count++;
    }
    rc = 0;
done:
    memset(copy, 0, strlen(old));
    free(copy);
    return rc;
}

static int load_secrets(cfg_t *cfg, bool generate, hd_err_t *err)
{
    if (provider_secrets(cfg, err) != 0)
        return -1;
    char *jwt = NULL, *enc = NULL;
    int rc = -1;
    if (get_secret(cfg, "HERALD_JWT_SECRET", "jwt_secret", generate, &jwt, &cfg->jwt_secret_is_dev,
                   err))
        goto done;
    if (jwt == NULL)
        jwt = xstrdup("not-generated-in-a-check-not-generated-in-a-check");
    size_t n = strlen(jwt);
    if (n < 32 || n > sizeof(cfg->jwt_secret)) {
        hd_err_set(err, "HERALD_JWT_SECRET: expected 32 to %zu bytes, got %zu",
                   sizeof(cfg->jwt_secret), n);
        goto done;
    }
    memcpy(cfg->jwt_secret, jwt, n);
    cfg->jwt_secret_len = n;
    jwt_key_id(cfg->jwt_secret, n, cfg->jwt_kid);
    if (jwt_old_secrets(cfg, err) != 0)
        goto done;

    if (get_secret(cfg, "HERALD_ENCRYPTION_KEY", "encryption_key", generate, &enc,
                   &cfg->enc_key_is_dev, err))
        goto done;
    if (enc == NULL)
        enc = xstrdup("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    if (fe_decode_key(enc, cfg->enc_key, err) != 0) {
        hd_err_prefix(err, "HERALD_ENCRYPTION_KEY");
        goto done;
    }
    cfg->enc_old_count = 0;
    const char *old = getenv("HERALD_ENCRYPTION_OLD_KEYS");
    if (old && *old) {
        char *copy = xstrdup(old), *save = NULL;
        for (char *t = strtok_r(copy, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
            if (cfg->enc_old_count == CFG_MAX_OLD_KEYS) {
                hd_err_set(err, "HERALD_ENCRYPTION_OLD_KEYS: at most %d keys", CFG_MAX_OLD_KEYS);
                free(copy);
                goto done;
            }
            if (fe_decode_key(t, cfg->enc_old_keys[cfg->enc_old_count], err) != 0) {
                hd_err_prefix(err, "HERALD_ENCRYPTION_OLD_KEYS: key %d", cfg->enc_old_count + 1);
                free(copy);
                goto done;
            }
            cfg->enc_old_count++;
        }
        free(copy);
    }
    /* The blind index must not change when the encryption key rotates, or
     * look-ups break; without its own variable it derives from the current
     * key, and docs/configuration.md says to pin it before rotating. */
    const char *bi = getenv("HERALD_BLIND_INDEX_KEY");
    if (bi && *bi) {
        if (fe_decode_key(bi, cfg->blind_index_key, err) != 0) {
            hd_err_prefix(err, "HERALD_BLIND_INDEX_KEY");
            goto done;
        }
    } else {
        static const char label[] = "herald blind index v1";
        hash_hmac_sha256(cfg->enc_key, 32, label, sizeof(label) - 1, cfg->blind_index_key);
    }
    rc = 0;
done:
    free(jwt);
    free(enc);
    return rc;
}

int cli_load_secrets(cfg_t *cfg, hd_err_t *err)
{
    return load_secrets(cfg, true, err);
}

int cli_check_secrets(cfg_t *cfg, hd_err_t *err)
{
    return load_secrets(cfg, false, err);
}
