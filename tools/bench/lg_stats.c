/* lg_stats.c - see lg_stats.h. */
#include "lg_stats.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

void lg_sort_u32(uint32_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof(uint32_t), cmp_u32);
}

double lg_pct_ms(const uint32_t *sorted_us, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0)
        i--;
    if (i >= n)
        i = n - 1;
    return sorted_us[i] / 1000.0;
}

static int cmp_sec(const void *a, const void *b)
{
    const lg_sample_t *x = a, *y = b;
    return x->sec < y->sec ? -1 : x->sec > y->sec;
}

int lg_timeline_write(const char *path, lg_sample_t *s, size_t n)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    if (n > 1)
        qsort(s, n, sizeof(*s), cmp_sec);
    uint32_t *lat = malloc((n ? n : 1) * sizeof(uint32_t));
    uint32_t *ans = malloc((n ? n : 1) * sizeof(uint32_t));
    if (lat == NULL || ans == NULL) {
        free(lat);
        free(ans);
        fclose(f);
        return -1;
    }
    fprintf(f, "# second answered p50_ms p99_ms max_ms sent_late_max_ms answer_p99_ms "
               "answer_max_ms\n");
    for (size_t i = 0; i < n;) {
        size_t j = i, k = 0;
        uint32_t late_max = 0;
        for (; j < n && s[j].sec == s[i].sec; j++, k++) {
            lat[k] = s[j].lat_us;
            ans[k] = s[j].ans_us;
            uint32_t late = s[j].lat_us - s[j].ans_us;
            if (late > late_max)
                late_max = late;
        }
        lg_sort_u32(lat, k);
        lg_sort_u32(ans, k);
        fprintf(f, "%u %zu %.2f %.2f %.2f %.2f %.2f %.2f\n", s[i].sec, k, lg_pct_ms(lat, k, 50),
                lg_pct_ms(lat, k, 99), lg_pct_ms(lat, k, 100), late_max / 1000.0,
                lg_pct_ms(ans, k, 99), lg_pct_ms(ans, k, 100));
        i = j;
    }
    free(lat);
    free(ans);
    return fclose(f) == 0 ? 0 : -1;
}
