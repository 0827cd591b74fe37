/*
 * metrics_http.c - `metrics = "127.0.0.1:9325";`: an HTTP endpoint on the
 * server's event loop (libevent's evhttp) answering GET /metrics with the
 * Prometheus text exposition of metrics.c. Off unless set. Bound with the
 * listeners, before the privilege drop; only GET and HEAD, no request
 * body, small header limit and a timeout, so a scraper (or anyone who can
 * reach the port: keep it on loopback or a management network) costs
 * little.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "server/log.h"
#include "server/metrics.h"
#include "server/server_internal.h"

#define METRICS_MAX (1 << 20) /* the exposition never comes near this */

static void metrics_request(struct evhttp_request *req, void *arg)
{
    sk_server *srv = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || strcmp(path, "/metrics") != 0) {
        evhttp_send_error(req, HTTP_NOTFOUND, "Not Found: the metrics are at /metrics");
        return;
    }
    sk_buf b;
    sk_buf_init(&b, METRICS_MAX);
    struct evbuffer *body = evbuffer_new();
    int rc = sk_metrics_render(&srv->metrics, srv->nconns, &b);
    if (rc == 0 && srv->agent) {
        sk_agent_queue_stats q;
        (void)sk_agent_stats(srv->agent, &q); /* an unreadable queue: zeros */
        rc = sk_metrics_render_queue(&q, (long long)time(NULL), &b);
    }
    if (!body || rc != 0 || evbuffer_add(body, b.data, b.len) != 0) {
        if (body)
            evbuffer_free(body);
        sk_buf_free(&b);
        evhttp_send_error(req, HTTP_INTERNAL, "Internal Server Error");
        return;
    }
    sk_buf_free(&b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

int sk_metrics_http_start(sk_server *srv, char *err, size_t errlen)
{
    const sk_config *cfg = srv->cfg;
    if (!cfg->metrics_address)
        return 0;
    srv->metrics_http = evhttp_new(srv->base);
    if (!srv->metrics_http) {
        snprintf(err, errlen, "metrics: cannot create the HTTP server");
        return -1;
    }
    evhttp_set_allowed_methods(srv->metrics_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(srv->metrics_http, 8192);
    evhttp_set_max_body_size(srv->metrics_http, 0);
    evhttp_set_timeout(srv->metrics_http, 10);
    evhttp_set_gencb(srv->metrics_http, metrics_request, srv);
    if (!evhttp_bind_socket_with_handle(srv->metrics_http, cfg->metrics_address,
                                        (unsigned short)cfg->metrics_port)) {
        snprintf(err, errlen, "%s: metrics: cannot listen on %s port %u", cfg->path,
                 cfg->metrics_address, cfg->metrics_port);
        return -1;
    }
    sk_log(LOG_INFO, "event=metrics-listening address=%s port=%u path=/metrics",
           cfg->metrics_address, cfg->metrics_port);
    return 0;
}

void sk_metrics_http_free(sk_server *srv)
{
    if (srv->metrics_http)
        evhttp_free(srv->metrics_http);
    srv->metrics_http = NULL;
}
