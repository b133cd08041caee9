/*
 * The configuration file reader (src/conf/conf.c) through its public entry,
 * p11kms_config_load: the input is written to a private file (mode 0600, so
 * the trust check passes) and loaded; every entry is then read back.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "conf/conf.h"
#include "fuzz/fuzz.h"

static char path[64];

static void write_input(const uint8_t *data, size_t size)
{
    int fd;
    if (path[0] == '\0') {
        char dir[] = "/tmp/p11kms-fuzz-conf.XXXXXX";
        if (mkdtemp(dir) == NULL) abort();
        snprintf(path, sizeof(path), "%s/p11kms.conf", dir);
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size) || close(fd) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    p11kms_config *cfg = NULL;
    const char *k, *v;
    unsigned long n;

    write_input(data, size);
    if (p11kms_config_load(path, &cfg) != P11KMS_OK) return 0;
    for (size_t i = 0; p11kms_config_entry(cfg, i, &k, &v); i++) {
        char *resolved = pk_conf_resolve(cfg, v);
        if (p11kms_config_get(cfg, k) == NULL || resolved == NULL) abort();
        free(resolved);
    }
    if (pk_failed(pk_conf_uint(cfg, "workers", 4, 1, 1024, &n))) pk_error_clear();
    (void)pk_conf_path_value(cfg, "store");
    p11kms_config_free(cfg);
    return 0;
}
