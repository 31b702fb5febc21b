/* notify.h — systemd service notifications (obs/notify.c); each is a
 * no-op without NOTIFY_SOCKET. */
#ifndef AIRLOCK_NOTIFY_H
#define AIRLOCK_NOTIFY_H

/* READY=1 with STATUS=status: after the listeners are up, and after each
 * reload (accepted or rejected). */
void notify_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC=now, before a reload starts. */
void notify_reloading(void);
/* STOPPING=1, as the drain begins. */
void notify_stopping(void);

#endif
