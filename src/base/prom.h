/*
 * prom.h: reading Prometheus text (the exposition format instances answer /metrics with).
 * Pure; no state.
 */
#ifndef MS_PROM_H
#define MS_PROM_H

/* The value of the first sample of metric `name` ("name{labels} value" or "name value"
 * lines) in `text`, as an integer (a fraction is cut); -1 when there is none. */
long long msi_prom_value(const char *text, const char *name);

#endif
