/*
 * gcra.h - the generic cell rate algorithm, as plain arithmetic.
 *
 * A bucket allows `burst` requests at once and then one every `interval_ms`.
 * Its whole state is one number, the theoretical arrival time (tat, ms): the
 * moment the bucket would be empty again. The same steps run inside Redis
 * (limit.c's script) and in-process (the fallback); this is the one copy in
 * C, tested alone. Uses nothing.
 */
#ifndef HERALD_LIMIT_GCRA_H
#define HERALD_LIMIT_GCRA_H

/* One request at now_ms against the bucket whose state is *tat (0: never
 * used). Returns 0 when allowed (and advances *tat), otherwise the
 * milliseconds to wait before the same request would be allowed (*tat is
 * left as it was). A clock that went backwards never makes the wait longer
 * than one interval: a tat further ahead than a full burst is clamped, and
 * the clamp is kept (the only change a refusal makes). */
double gcra_take(double *tat, double now_ms, double interval_ms, int burst);

/* Milliseconds after which a key last set to tat may be forgotten: from then
 * on it behaves exactly like an unused key. 0 when it already may. */
double gcra_ttl(double tat, double now_ms);

/* The interval of `rate` requests per `per_s` seconds (rate > 0, per_s > 0). */
double gcra_interval(double rate, double per_s);

#endif
