/* fuzz_jwt.c - libFuzzer harness: arbitrary bytes as a bearer token. */
#include "crypto/jwt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *tok = malloc(size + 1);
    if (tok == NULL)
        return 0;
    memcpy(tok, data, size);
    tok[size] = '\0';
    static const uint8_t key[] = "fuzzing-key-fuzzing-key-fuzzing-key!";
    jwt_verify_opts_t o = {.key = key,
                           .keylen = sizeof(key) - 1,
                           .issuer = "herald",
                           .audience = "herald-api",
                           .now = 1700000000,
                           .leeway = 60,
                           .require_exp = 1};
    cJSON *claims = NULL;
    /* Without the key no input may verify. */
    if (jwt_verify_hs256(tok, &o, &claims) == JWT_OK)
        abort();
    cJSON_Delete(claims);
    free(tok);
    return 0;
}
