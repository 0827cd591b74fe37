/*
 * pid_file.h - the `pid_file` setting: the server's process id in a file,
 * for init scripts and monitoring that do not get it from a service
 * manager.
 */
#ifndef SMTPKIT_SERVER_PID_FILE_H
#define SMTPKIT_SERVER_PID_FILE_H

#include <stddef.h>

/* Write getpid() and a newline to path (replacing what is there, never
 * through a symlink). 0, or -1 with the reason in err. */
int sk_pid_file_write(const char *path, char *err, size_t errlen);

/* Remove it if it still holds our pid (best effort: after the privilege
 * drop its directory may not be writable; a service manager's runtime
 * directory is cleaned up anyway). */
void sk_pid_file_remove(const char *path);

#endif
