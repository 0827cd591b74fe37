/*
 * config_fixture.h - a configuration file in a fresh temporary directory
 * for the config tests: write a text, load it with sk_config_load, and
 * check that an error names FILE:LINE.
 */
#ifndef SMTPKIT_TEST_CONFIG_FIXTURE_H
#define SMTPKIT_TEST_CONFIG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smtpkit/config.h"

static char dir[64];
static char path[128];
static char err[1024];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/sk-test-config-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/smtpkit.conf", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static sk_config *load_text(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    err[0] = '\0';
    return sk_config_load(path, err, sizeof err);
}

/* The last error starts with "FILE:LINE: " and mentions needle. */
static void assert_error_at(int line, const char *needle)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) != 0)
        fail_msg("error '%s' does not start with '%s'", err, prefix);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

#endif
