#!/bin/bash
# Help for every command (`p11kms CMD [SUB] --help`, `p11kms help CMD [SUB]`)
# and the three things kept in step with its table in src/cli/cli_help.c:
# the man pages (docs/man), the bash completion (contrib/bash-completion)
# and the options the parsers in src/cli/cmd_*.c accept.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

S=$P11KMS_TOP_SRCDIR
# Every command path named in the issue, and help itself.
want="token info
token init
init
key create
key list
key describe
key enable
key disable
key rotate
key schedule-deletion
key cancel-deletion
key purge
key get-policy
key put-policy
alias create
alias delete
alias list
encrypt
decrypt
datakey
re-encrypt
policy eval
policy lint
audit verify
audit rotate
audit files
report keys
report policies
secret put
secret get
secret update
secret rm
secret list
secret rewrap
connection create
connection alter
connection drop
connection describe
connection show-create
connection resolve
connection list
render
access-key create
access-key list
access-key disable
access-key enable
access-key delete
encrypt-file
decrypt-file
rewrap-file
store accept-restore
help"
run "$P11KMS" help --commands
expect_rc 0 "help --commands"; expect_out "$want" "help --commands lists every command path"
paths=$(cat "$OUT")

# Each path: usage, description, example; the same from `help`, `--help` and `-h`.
: >"$WORK/all-help"
while IFS= read -r p; do
    # shellcheck disable=SC2086
    run "$P11KMS" help $p
    expect_rc 0 "help $p"; expect_err "" "help $p: no stderr"
    expect_out_has "usage: p11kms $p" "help $p: usage line"
    expect_out_has "Example:" "help $p: example"
    cp "$OUT" "$WORK/help.txt"; cat "$OUT" >>"$WORK/all-help"
    if sed -n '/^Example:$/{n;p;}' "$WORK/help.txt" | grep -q "p11kms.* $p\( \|$\)"; then ok; else bad "help $p: the example does not run '$p'"; fi
    long=$(grep -v '^  .*p11kms ' "$WORK/help.txt" | awk 'length($0) > 79')
    if [ -z "$long" ]; then ok; else bad "help $p: lines longer than 79 columns: $long"; fi
    # shellcheck disable=SC2086
    run "$P11KMS" $p --help
    expect_rc 0 "$p --help"
    if cmp -s "$OUT" "$WORK/help.txt"; then ok; else bad "$p --help differs from help $p"; fi
    # shellcheck disable=SC2086
    run "$P11KMS" --json $p --json -h
    if [ "$RC" -eq 0 ] && cmp -s "$OUT" "$WORK/help.txt"; then ok; else bad "$p -h after options differs from help $p"; fi
done <<<"$paths"

# --help after the arguments wins over the parser (it used to say: unexpected '--help').
run "$P11KMS" key create --alias alias/x --rotation-days 365 --help
expect_rc 0 "key create ARGS --help"; expect_out_has "usage: p11kms key create [--alias alias/NAME]" "key create ARGS --help"
run "$P11KMS" secret put user=flink --help
expect_rc 0 "secret put k=v --help"; expect_out_has "usage: p11kms secret put" "secret put k=v --help"
run "$P11KMS" encrypt --key alias/x --help
expect_rc 0 "encrypt --key K --help"; expect_out_has "--key KEY" "encrypt --help lists --key"

# A command with subcommands lists them.
for g in token key alias policy audit report secret connection; do
    run "$P11KMS" help "$g"
    expect_rc 0 "help $g"; expect_out_has "usage: p11kms $g SUBCOMMAND" "help $g"
    cp "$OUT" "$WORK/group.txt"
    for p in $(grep "^$g " <<<"$paths" | tr ' ' '+'); do
        if grep -q "^  ${p//+/ }\( \|$\)" "$WORK/group.txt"; then ok; else bad "help $g lacks ${p//+/ }"; fi
    done
    run "$P11KMS" "$g" --help
    if [ "$RC" -eq 0 ] && cmp -s "$OUT" "$WORK/group.txt"; then ok; else bad "$g --help differs from help $g"; fi
done

# The top-level usage lists every path.
run "$P11KMS" --help
expect_rc 0 "--help"; cp "$OUT" "$WORK/usage.txt"
while IFS= read -r p; do
    if grep -q "^  $p\( \|$\)" "$WORK/usage.txt"; then ok; else bad "--help lacks $p"; fi
done <<<"$paths"
run "$P11KMS" help
if [ "$RC" -eq 0 ] && cmp -s "$OUT" "$WORK/usage.txt"; then ok; else bad "help differs from --help"; fi
if [ -z "$(awk 'length($0) > 79' "$WORK/usage.txt")" ]; then ok; else bad "--help has lines longer than 79 columns"; fi

# Unknown commands: exit 2, one line, nothing on stdout.
run "$P11KMS" help foo
expect_rc 2 "help foo"; expect_err "p11kms: usage: unknown command 'foo' (see p11kms --help)" "help foo"; expect_out "" "help foo: no stdout"
run "$P11KMS" help key foo
expect_rc 2 "help key foo"; expect_err "p11kms: usage: unknown command 'key foo' (see p11kms --help)" "help key foo"
run "$P11KMS" key foo --help
expect_rc 2 "key foo --help"; expect_err "p11kms: usage: unknown command 'key foo' (see p11kms --help)" "key foo --help"
run "$P11KMS" help encrypt now
expect_rc 2 "help encrypt now"; expect_err "p11kms: usage: unknown command 'encrypt now' (see p11kms --help)" "help encrypt now"
run "$P11KMS" help key create now
expect_rc 2 "help key create now"; expect_err "p11kms: usage: help: unexpected 'now' (see p11kms --help)" "help key create now"
run "$P11KMS" help --bogus
expect_rc 2 "help --bogus"; expect_err "p11kms: usage: help: unexpected '--bogus' (see p11kms --help)" "help --bogus"
run "$P11KMS" frobnicate --help
expect_rc 2 "frobnicate --help"; expect_err "p11kms: usage: unknown command 'frobnicate' (see p11kms --help)" "frobnicate --help"

# Every option a parser in src/cli/cmd_*.c matches is in some command's help.
for o in $(grep -ohE '"-(-[a-z][a-z-]*|[a-z])"' "$S"/src/cli/cmd_*.c | tr -d '"' | sort -u); do
    if grep -qE -- "(^|[ [,])$o([ =,]|\]|$)" "$WORK/all-help"; then ok; else bad "option $o of src/cli/cmd_*.c is in no help"; fi
done

# The man pages: well-formed, p11kms.1 has every synopsis, p11kms.conf.5 every key.
for m in "$S/docs/man/p11kms.1" "$S/docs/man/p11kms.conf.5"; do
    if command -v mandoc >/dev/null 2>&1; then
        lint=$(mandoc -T lint -W warning "$m" 2>&1)
    else
        lint=$(groff -mdoc -Tutf8 -ww -z "$m" 2>&1)
    fi
    if [ -z "$lint" ]; then ok; else bad "$(basename "$m") has warnings: $lint"; fi
done
if command -v mandoc >/dev/null 2>&1; then
    mandoc -T ascii "$S/docs/man/p11kms.1" >"$WORK/man.txt"
else
    groff -mdoc -Tascii -P-cbou "$S/docs/man/p11kms.1" >"$WORK/man.txt" 2>/dev/null
fi
# Compared without whitespace: the page wraps lines where the help does not.
sed 's/.\x08//g' "$WORK/man.txt" | tr -d ' \n\t' >"$WORK/man.flat"
while IFS= read -r p; do
    # shellcheck disable=SC2086
    syn=$("$P11KMS" help $p | sed -n '1,/^$/p' | sed '1s/^usage: p11kms //' | tr -d ' \n\t')
    if grep -qF -- "$syn" "$WORK/man.flat"; then ok; else bad "p11kms.1 lacks the synopsis of $p: $("$P11KMS" help $p | head -n 1)"; fi
done <<<"$paths"
keys=$(sed -n '/known_keys\[\] = {/,/^};/s/^ *{"\([a-z_]*\)",.*/\1/p' "$S/src/conf/conf.c")
if [ "$(wc -w <<<"$keys")" -ge 10 ]; then ok; else bad "cannot read the keys of src/conf/conf.c: $keys"; fi
for k in $keys module_args; do
    if grep -q "^\.It Cm $k No = " "$S/docs/man/p11kms.conf.5"; then ok; else bad "p11kms.conf.5 lacks the key $k"; fi
done

# The bash completion offers every command, subcommand and option of the table.
# shellcheck disable=SC1091
. "$S/contrib/bash-completion/p11kms"
complete_line() {
    COMP_LINE=$1 COMP_POINT=${#1}
    read -ra COMP_WORDS <<<"$1"
    [[ $1 == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _p11kms
    printf '%s\n' "${COMPREPLY[@]}" >"$OUT"
}
complete_has() {
    if grep -qxF -- "$2" "$OUT"; then ok; else RC=0; : >"$ERR"; bad "completing '$1' does not offer $2"; fi
}
complete_line "p11kms "
for w in $(cut -d ' ' -f 1 <<<"$paths" | sort -u); do complete_has "p11kms " "$w"; done
while IFS= read -r p; do
    set -- $p
    if [ $# -eq 2 ]; then complete_line "p11kms $1 "; complete_has "p11kms $1 " "$2"; fi
    # shellcheck disable=SC2086
    opts=$("$P11KMS" help $p | sed -n '/^Options:$/,/^$/p' | grep '^  -' | sed 's/^  //; s/   .*//' |
        grep -oE -- '(^|[ ,])-(-[a-z][a-z-]*|[a-z])' | tr -d ' ,')
    globals="--config --as --json --help"
    [ "$p" = help ] && globals=""
    complete_line "p11kms $p -"
    for o in $opts $globals; do complete_has "p11kms $p -" "$o"; done
done <<<"$paths"
finish
