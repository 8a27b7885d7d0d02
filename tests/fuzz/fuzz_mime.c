/* fuzz_mime.c - libFuzzer harness: arbitrary request values through the MIME
 * builder. Whatever comes in, the output is 7-bit CRLF text with no line
 * over 998, and a value with CR or LF never yields a message. */
#include "transport/mime.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Split the input at NUL bytes into subject, name, text, html, filename. */
    char *copy = malloc(size + 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    const char *f[5] = {"", "", "", "", ""};
    size_t k = 0, start = 0;
    for (size_t i = 0; i <= size && k < 5; i++)
        if (i == size || copy[i] == '\0') {
            f[k++] = copy + start;
            start = i + 1;
        }
    mime_attachment_t att = {f[4][0] ? f[4] : "a.bin", "application/octet-stream",
                             (const uint8_t *)copy, size};
    mime_email_t m = {.from_addr = "events@herald.example",
                      .to_name = f[1],
                      .to_addr = "zoe@example.com",
                      .subject = f[0],
                      .text = f[2],
                      .html = f[3][0] ? f[3] : NULL,
                      .attachments = &att,
                      .nattachments = 1,
                      .comm_id = "c0ffee",
                      .date = 1795856400};
    buf_t out;
    buf_init(&out);
    hd_err_t err;
    if (mime_build(&m, &out, &err) == 0) {
        bool header_ctl = strpbrk(f[0], "\r\n") || strpbrk(f[1], "\r\n");
        if (header_ctl)
            abort(); /* an injection got through */
        size_t line = 0;
        for (size_t i = 0; i < out.len; i++) {
            unsigned char c = (unsigned char)out.data[i];
            if (c >= 0x80 || c == 0)
                abort(); /* not 7-bit */
            if (c == '\n' && (i == 0 || out.data[i - 1] != '\r'))
                abort(); /* a bare LF */
            line = c == '\n' ? 0 : line + 1;
            if (line > 998)
                abort();
        }
    }
    buf_free(&out);
    free(copy);
    return 0;
}
