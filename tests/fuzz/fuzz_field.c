/* fuzz_field.c - libFuzzer harness: arbitrary stored values through field
 * decryption; nothing forged may ever decrypt. */
#include "crypto/field.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static fe_keyring_t *kr;
    if (kr == NULL) {
        uint8_t k[32], ik[32];
        memset(k, 7, sizeof(k));
        memset(ik, 9, sizeof(ik));
        kr = fe_keyring_new(k, ik);
    }
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *pt = NULL;
    size_t n = 0;
    hd_err_t err;
    if (fe_decrypt(kr, "email", s, &pt, &n, &err) == 0)
        abort();
    if (pt != NULL)
        abort(); /* failure never hands out bytes */
    free(s);
    return 0;
}
