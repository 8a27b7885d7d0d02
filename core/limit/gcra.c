/*
 * gcra.c - the generic cell rate algorithm (see gcra.h). The Lua script in
 * limit.c is a line-for-line copy of gcra_take: change both together.
 */
#include "limit/gcra.h"

double gcra_take(double *tat, double now_ms, double interval_ms, int burst)
{
    double tolerance = interval_ms * (burst < 1 ? 1 : burst);
    double t = *tat;
    if (t < now_ms)
        t = now_ms;
    if (t > now_ms + tolerance) { /* the clock went back: wait one interval from now, */
        t = now_ms + tolerance;   /* and remember so the next one goes through */
        *tat = t;
    }
    double next = t + interval_ms;
    double allow_at = next - tolerance;
    if (now_ms < allow_at)
        return allow_at - now_ms;
    *tat = next;
    return 0;
}

double gcra_ttl(double tat, double now_ms)
{
    return tat > now_ms ? tat - now_ms : 0;
}

double gcra_interval(double rate, double per_s)
{
    return per_s * 1000.0 / rate;
}
