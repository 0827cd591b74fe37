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
    /* the first file's inode goes with its descriptor; the second one's
     * lock (create_locked) comes with its descriptor */
    close(m->fd);
    m->fd = with->fd;
    m->size = with->size;
    m->wblen = 0;
    m->err = SK_STORE_OK;
    with->fd = -1;
    sk_store_msg_free(with);
    return SK_STORE_OK;
}
