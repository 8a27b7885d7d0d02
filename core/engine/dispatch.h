/*
 * dispatch.h - a claimed job, made ready for the transport or settled: a
 * send is checked with the policy (strategy.refusal before every attempt,
 * the moment again), rendered and tracked; a no-receipt timer fires or
 * goes; a parked receipt is applied; an alert becomes its POST or email.
 */
#ifndef HERALD_ENGINE_DISPATCH_H
#define HERALD_ENGINE_DISPATCH_H

#include "engine/app.h"
#include "store/repo_comms.h"
#include "transport/transport.h"

/* 1 with *out ready to send (the caller marks a send job's message
 * 'sending' first), 0 when the job was settled here, -1 on a transient
 * problem (the lease brings the job back). */
int dispatch_job(app_t *app, comm_job_t *j, tr_message_t **out);

/* Reads the recipients of the send jobs among jobs[0..n) and their
 * suppression facts, the facts in one round trip for all, into j->who,
 * which dispatch_job then uses. A job left without (an error) is read by
 * dispatch_job alone, which reports what fails. */
void dispatch_prefetch(app_t *app, comm_job_t *jobs, int n);

#endif
