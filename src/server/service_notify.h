/*
 * service_notify.h - readiness and state notifications to a service
 * manager (systemd's Type=notify, sd_notify(3)): one datagram per state
 * change on the Unix socket named by $NOTIFY_SOCKET.
 */
#ifndef SMTPKIT_SERVER_SERVICE_NOTIFY_H
#define SMTPKIT_SERVER_SERVICE_NOTIFY_H

/* Connect to $NOTIFY_SOCKET now, while still privileged, and remove it from
 * the environment. Nothing to do (0) when it is not set; -1 with the
 * reason in err when it is set but unusable. */
int sk_notify_open(char *err, unsigned long errlen);

/* Send one notification ("READY=1", "RELOADING=1\nMONOTONIC_USEC=..."),
 * printf-style; nothing when no socket is open. */
void sk_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void sk_notify_close(void);

#endif
