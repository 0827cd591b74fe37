/*
 * spool_rewrite.c - reading back and replacing a message still in the
 * spool, before its commit: content filters (milters) read the message
 * the client sent and may change its header or body. The new text is
 * written into a second spool file, which then takes the first one's name
 * (rename(2) in the spool directory) and place, so the message keeps its
 * id and nothing half-written is ever under that name.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store_internal.h"

long sk_store_msg_read(sk_store_msg *m, unsigned long long off, char *buf, size_t n)
{
    if (!m || sk_store_msg_flush(m) != SK_STORE_OK)
        return -1;
    ssize_t r;
    do
        r = pread(m->fd, buf, n, (off_t)off);
    while (r < 0 && errno == EINTR);
    return (long)r;
}

unsigned long long sk_store_msg_size(const sk_store_msg *m)
{
    return m ? m->size : 0;
}

sk_store_result sk_store_msg_replace(sk_store_msg *m, sk_store_msg *with)
{
    if (!m || !with || m->st != with->st) {
        sk_store_abort(with);
        return SK_STORE_IOERR;
    }
    if (sk_store_msg_flush(with) != SK_STORE_OK) {
        sk_store_result r = with->err;
        sk_store_abort(with);
        return r;
    }
    if (renameat(with->st->tmp_fd, with->name, m->st->tmp_fd, m->name) != 0) {
        sk_store_result r = sk_store_result_of(errno);
        sk_store_abort(with);
        return r;
    }
    /* m takes everything of `with` (its descriptor and lock, sizes, write
     * buffer) but its own identity: id, name (now the new file's), store,
     * start time. What m had is then released: the first file's inode goes
     * with its descriptor. Nothing has been committed yet, so neither has
     * directories or outcomes to free. */
    sk_store_msg old = *m;
    *m = *with;
    m->st = old.st;
    m->begun = old.begun;
    memcpy(m->id, old.id, sizeof m->id);
    memcpy(m->name, old.name, sizeof m->name);
    close(old.fd);
    free(old.wb);
    for (size_t i = 0; i < old.ndirs; i++)
        free(old.dirs[i].path);
    free(old.dirs);
    free(with);
    return SK_STORE_OK;
}
