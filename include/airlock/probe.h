/* probe.h — active health probes: one thread with its own curl multi handle
 * probes each backend whose `health` is enabled, every interval_ms, and
 * tells the shared backend state. Requests never wait on a probe. */
#ifndef AIRLOCK_PROBE_H
#define AIRLOCK_PROBE_H

int probe_start(void);
void probe_stop(void);

#endif
