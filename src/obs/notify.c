/* notify.c — systemd's service notifications (Type=notify) through
 * libsystemd's sd_notify: READY once listening, RELOADING around a SIGHUP
 * reload, STOPPING at drain, STATUS with a short summary. Every call is a
 * no-op when NOTIFY_SOCKET is not set (not started by systemd). */
#include <stdio.h>
#include <time.h>
#include <systemd/sd-daemon.h>

#include "airlock/notify.h"

void notify_ready(const char *status)
{
    sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_reloading(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu", usec);
}

void notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=draining");
}
