/*
 * p11kms render TEMPLATE [-o OUT]   (TEMPLATE "-": standard input)
 *
 * Everything is resolved in memory first; nothing is written unless every
 * placeholder resolved. OUT is written by pk_cli_write_file_atomic: mode
 * 0600, a temp file in OUT's folder renamed over it; on any failure OUT is
 * untouched.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli_session.h"

int pk_cmd_render(pk_cli *cli, int argc, char **argv)
{
    const char *tmpl = NULL, *out = NULL, *v;
    pk_buf text = {0};
    pk_cli_session s = {0};
    p11kms_buf *res = NULL;
    p11kms_rc rc;
    int ex = PK_EXIT_OK;

    for (int i = 1; i < argc; i++) {
        if (pk_cli_common_opt(cli, argc, argv, &i)) continue;
        if (pk_cli_optv(argc, argv, &i, "-o", &v) || pk_cli_optv(argc, argv, &i, "--out", &v)) out = v;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') return pk_cli_usage("render: unexpected '%s'", argv[i]);
        else if (tmpl == NULL) tmpl = argv[i];
        else return pk_cli_usage("render TEMPLATE [-o OUT]");
    }
    if (tmpl == NULL) return pk_cli_usage("render TEMPLATE [-o OUT]");
    /* Bounded here as well as in the library: an endless input is never read into memory. */
    if ((ex = pk_cli_read_file(tmpl, P11KMS_RENDER_MAX_TEMPLATE_BYTES, "a template is at most 1048576 bytes (1 MiB)",
                               &text)) != PK_EXIT_OK)
        goto done;
    if ((ex = pk_cli_session_open(cli, &s)) != PK_EXIT_OK) goto done;
    rc = p11kms_render(s.h, s.caller, (const char *)text.data, text.len, &res);
    if (rc != P11KMS_OK) ex = pk_cli_fail(rc);
    else if (out != NULL) ex = pk_cli_write_file_atomic(out, p11kms_buf_data(res), p11kms_buf_len(res));
    else ex = pk_cli_write_secret(NULL, p11kms_buf_data(res), p11kms_buf_len(res));
done:
    p11kms_buf_free(res);
    pk_buf_free(&text);
    pk_cli_session_close(&s);
    return ex;
}
