/*
 * reload.c - the inotify watcher (see reload.h). Editors save in many ways
 * (write in place, write a temporary and rename, delete and create), so any
 * change under the two directories counts; a burst of events is collected
 * until things are quiet for a moment, then one reload runs.
 */
#include "lua/reload.h"
#include "base/buf.h"
#include "base/log.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define QUIET_MS    100  /* a burst ends after this much silence */
#define MAX_WAIT_MS 1000 /* and never waits longer than this */

struct lrt_watch {
    lrt_t *rt;
    int ifd;
    int stopfd;
    pthread_t thread;
};

static const uint32_t MASK = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                             IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB;

/* Watches dir and every directory below it (adding a watch twice is
 * harmless: inotify returns the same descriptor). */
static void watch_tree(int ifd, const char *dir)
{
    if (inotify_add_watch(ifd, dir, MASK) < 0) {
        log_warn("cannot watch directory; reload it with POST /api/crm/scripts/reload", "dir", dir,
                 "reason", strerror(errno));
        return;
    }
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            watch_tree(ifd, path);
    }
    closedir(d);
}

static void watch_all(lrt_watch_t *w)
{
    watch_tree(w->ifd, lrt_scripts_dir(w->rt));
    watch_tree(w->ifd, lrt_templates_dir(w->rt));
}

/* Reads and discards pending events; returns how many were read. */
static int drain(int ifd)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int events = 0;
    for (;;) {
        ssize_t n = read(ifd, buf, sizeof(buf));
        if (n <= 0)
            return events;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)p;
            events++;
            p += sizeof(*ev) + ev->len;
        }
    }
}

static void *run(void *arg)
{
    lrt_watch_t *w = arg;
    struct pollfd fds[2] = {{.fd = w->ifd, .events = POLLIN}, {.fd = w->stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        if (fds[1].revents)
            break;
        if (!(fds[0].revents & POLLIN))
            continue;
        drain(w->ifd);
        /* Collect the rest of the burst: an editor's save is several events. */
        int waited = 0;
        while (waited < MAX_WAIT_MS) {
            int r = poll(fds, 2, QUIET_MS);
            if (r > 0 && fds[1].revents)
                return NULL;
            if (r <= 0)
                break;
            drain(w->ifd);
            waited += QUIET_MS;
        }
        watch_all(w); /* new or recreated directories */
        lrt_reload(w->rt, NULL);
    }
    return NULL;
}

lrt_watch_t *lrt_watch_start(lrt_t *rt, hd_err_t *err)
{
    lrt_watch_t *w = xcalloc(1, sizeof(*w));
    w->rt = rt;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->ifd < 0 || w->stopfd < 0) {
        hd_err_set(err, "cannot watch scripts: %s", strerror(errno));
        goto fail;
    }
    watch_all(w);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        hd_err_set(err, "cannot start the script watcher thread");
        goto fail;
    }
    return w;
fail:
    if (w->ifd >= 0)
        close(w->ifd);
    if (w->stopfd >= 0)
        close(w->stopfd);
    free(w);
    return NULL;
}

void lrt_watch_stop(lrt_watch_t *w)
{
    if (w == NULL)
        return;
    uint64_t one = 1;
    if (write(w->stopfd, &one, sizeof(one)) < 0)
        log_warn("cannot signal the script watcher");
    pthread_join(w->thread, NULL);
    close(w->ifd);
    close(w->stopfd);
    free(w);
}
