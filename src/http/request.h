/* request.h — libmicrohttpd's callbacks: the access handler that reads a
 * request and dispatches it, and the completion callback that ends it. */
#ifndef AIRLOCK_HTTP_REQUEST_H
#define AIRLOCK_HTTP_REQUEST_H

#include <microhttpd.h>
#include "airlock/server.h"

enum MHD_Result request_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version,
                                const char *upload_data, size_t *upload_data_size,
                                void **con_cls);
void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                       enum MHD_RequestTerminationCode toe);
int request_in_flight(const struct worker *w);
/* Ends requests whose client half-closed before sending the whole body: MHD
 * (0.9.75, edge-triggered epoll) misses an EOF that arrives with the last
 * data, and such a connection would wait for its idle timeout. */
void request_reap_half_closed(struct worker *w);

#endif
