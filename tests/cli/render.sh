#!/bin/bash
# CLI scenarios for render's output filters and limits (issue items 2, 14):
# values that would inject configuration are refused without a filter, and
# with |yaml, |json, |properties and |shell they parse back (PyYAML, Python
# json, a java.util.Properties reader, sh) to exactly the stored value; one
# audit record per secret however often a template names it; the
# placeholder and template-size limits; no value in any message.
. "${P11KMS_TOP_SRCDIR:-.}/tests/cli/lib.sh"

T=$WORK/tok
new_token "$T" p11kms
export P11KMS_CONFIG=$T/p11kms.conf
ADM=arn:aws:iam::111122223333:role/key-admin
OPR=arn:aws:iam::111122223333:role/flink-operator
admin() { run "$P11KMS" --as "$ADM" "$@"; }
oper() { run "$P11KMS" --as "$OPR" "$@"; }
PY=${PYTHON:-python3}
# Every value must be found nowhere but in rendered output.
MARK="nasty-$RANDOM-kilo"

admin init --admin "$ADM" --operator '*'
expect_rc 0 "init"

# The nasty values, as a JSON object (field name -> value).
$PY - "$MARK" >"$WORK/nasty.json" <<'EOF'
import json, sys
m = sys.argv[1]
print(json.dumps({
    "hash": "Xy7 #9!q" + m, "colon": "a: b" + m, "inject": m + "x\nadmin: true",
    "crlf": m + "a\r\nb: c\r", "tab": m + "\tt", "dquote": m + 'say "hi"', "squote": m + "it's",
    "mixquote": "'\"" + m + "\"'", "backslash": m + "\\n\\\\end\\", "unicode": m + "p\u00e4ss \u2603 \U0001d11e",
    "spaces": "  " + m + " lead and trail  ", "item": "- item" + m, "anchor": "*anchor" + m,
    "braces": "{}" + m, "brackets": "[" + m, "amp": "&a " + m, "bang": "!tag " + m, "pct": "%" + m,
    "at": "@" + m, "tick": "`" + m, "pipe": "| " + m, "gt": "> " + m, "qmark": "? " + m, "truthy": "true",
    "tilde": "~", "num": "0x1F", "props": "=:#!" + m + " \\", "ctl": m + "\u0001\u001b\u007f",
    "c1": m + "\u0085\u009f", "seps": m + "\u2028\u2029", "bom": m + "\ufeff\ufffe\uffff",
    "shell": "$(touch " + m + ") `id` $HOME \"$x\" \\", "empty": "",
    "worst": "\u0001" * 40,
}))
EOF
oper secret put --from-json "$WORK/nasty.json"
expect_rc 0 "put the nasty values"; S=$(cat "$OUT")
FIELDS=$($PY -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$WORK/nasty.json")

# Without a filter: refused with the placeholder and the line, never the value; nothing written.
mkdir "$WORK/out"
printf 'a: 1\nb: ${secret:%s:hash}\npassword: ${secret:%s:inject}\n' "$S" "$S" >"$WORK/inject.tmpl"
oper render "$WORK/inject.tmpl" -o "$WORK/out/config.yaml"
expect_rc 2 "newline without a filter"
expect_err "p11kms: render: line 3: \${secret:$S:inject} holds a control character; use |yaml, |json, |properties, |shell or |raw" "control character message"
[ ! -e "$WORK/out/config.yaml" ] && ok || bad "nothing written after a refused value"
for f in crlf tab ctl c1 seps; do
    printf 'x: ${secret:%s:%s}\n' "$S" "$f" >"$WORK/ctl.tmpl"
    oper render "$WORK/ctl.tmpl"
    expect_rc 2 "$f without a filter"
    expect_err "p11kms: render: line 1: \${secret:$S:$f} holds a control character; use |yaml, |json, |properties, |shell or |raw" "$f refused"
    expect_out "" "$f: nothing printed"
done
printf 'x: ${secret:%s:hash}\n' "$S" >"$WORK/plain.tmpl"
oper render "$WORK/plain.tmpl"
expect_rc 0 "no control character: rendered as before"; expect_out "x: Xy7 #9!q$MARK" "unfiltered value"
# |raw: as before, unchecked.
printf 'x: ${secret:%s:inject|raw}\n' "$S" >"$WORK/raw.tmpl"
oper render "$WORK/raw.tmpl"
expect_rc 0 "raw"; expect_out "x: ${MARK}x
admin: true" "raw writes the value as is"

# Unknown filter, unknown placeholder with a filter.
printf 'a: b\nx: ${secret:%s:hash|yml}\n' "$S" >"$WORK/badfilter.tmpl"
oper render "$WORK/badfilter.tmpl"
expect_rc 2 "unknown filter"
expect_err "p11kms: render: line 2: unknown filter 'yml' in \${secret:$S:hash|yml}: use |yaml, |json, |properties, |shell or |raw" "unknown filter message"
printf 'x: ${secret:%s:hash|}\n' "$S" >"$WORK/emptyfilter.tmpl"
oper render "$WORK/emptyfilter.tmpl"
expect_rc 2 "empty filter"
expect_err "p11kms: render: line 1: unknown filter '' in \${secret:$S:hash|}: use |yaml, |json, |properties, |shell or |raw" "empty filter message"
printf 'x: ${vault:a|json}\n' >"$WORK/badkind.tmpl"
oper render "$WORK/badkind.tmpl"
expect_rc 2 "unknown placeholder with a filter"
expect_err "p11kms: render: line 1: unknown placeholder '\${vault:a|json}': use \${secret:ID:FIELD}, \${connection:NAME:OPTION} or \${kms:BLOB}" "unknown placeholder message"

# |yaml: block and flow context, read back by PyYAML.
{
    for f in $FIELDS; do printf '%s: ${secret:%s:%s|yaml}\n' "$f" "$S" "$f"; done
    printf 'flow: {'; for f in $FIELDS; do printf '%s: ${secret:%s:%s|yaml}, ' "$f" "$S" "$f"; done; printf '}\n'
    printf 'seq:\n'; for f in $FIELDS; do printf '  - ${secret:%s:%s|yaml}\n' "$S" "$f"; done
} >"$WORK/all.yaml.tmpl"
oper render "$WORK/all.yaml.tmpl" -o "$WORK/out/all.yaml"
expect_rc 0 "render |yaml"
$PY - "$WORK/nasty.json" "$WORK/out/all.yaml" <<'EOF' && ok || bad "|yaml parses back to the stored values"
import json, sys, yaml
want = json.load(open(sys.argv[1]))
got = yaml.safe_load(open(sys.argv[2], encoding="utf-8"))
seq = got.pop("seq")
flow = got.pop("flow")
assert set(got) == set(want), sorted(set(got) ^ set(want))
for k, v in want.items():
    for g in (got[k], flow[k], seq[list(want).index(k)]):
        assert g == v, (k, g)
EOF

# |json: a JSON document read back by Python's json.
{
    printf '{"list": ['; for f in $FIELDS; do printf '${secret:%s:%s|json}, ' "$S" "$f"; done; printf '"end"],\n'
    sep=""; for f in $FIELDS; do printf '%s"%s": ${secret:%s:%s|json}' "$sep" "$f" "$S" "$f"; sep=",
"; done; printf '}\n'
} >"$WORK/all.json.tmpl"
oper render "$WORK/all.json.tmpl" -o "$WORK/out/all.json"
expect_rc 0 "render |json"
$PY - "$WORK/nasty.json" "$WORK/out/all.json" <<'EOF' && ok || bad "|json parses back to the stored values"
import json, sys
want = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], "rb").read()
raw.decode("utf-8")  # valid UTF-8
got = json.loads(raw)
lst = got.pop("list")
assert lst[-1] == "end" and lst[:-1] == list(want.values())
assert got == want
EOF

# |properties: read back by a reader that follows java.util.Properties.load,
# and, when a JDK is installed, by java.util.Properties itself.
for f in $FIELDS; do printf '%s=${secret:%s:%s|properties}\n' "$f" "$S" "$f"; done >"$WORK/all.properties.tmpl"
printf 'spaced = ${secret:%s:spaces|properties}\ncolon:${secret:%s:props|properties}\n' "$S" "$S" >>"$WORK/all.properties.tmpl"
oper render "$WORK/all.properties.tmpl" -o "$WORK/out/all.properties"
expect_rc 0 "render |properties"
$PY - "$WORK/nasty.json" "$WORK/out/all.properties" >"$WORK/props.py.out" <<'EOF' && ok || bad "|properties parses back to the stored values"
import json, sys
want = json.load(open(sys.argv[1]))
want["spaced"], want["colon"] = want["spaces"], want["props"]
text = open(sys.argv[2], "rb").read().decode("ascii")  # all escaped: readable as ISO 8859-1 and UTF-8

def logical_lines(t):
    # Properties.load: natural lines, comments, and '\' line continuations.
    lines = t.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1 and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        yield line

def unescape(s):
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c != "\\":
            out.append(c); i += 1; continue
        i += 1
        if i == len(s):
            break
        c = s[i]; i += 1
        if c == "u":
            out.append(chr(int(s[i:i + 4], 16))); i += 4
        else:
            out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(c, c))
    # UTF-16 surrogate pairs, as Java strings hold them.
    return "".join(out).encode("utf-16", "surrogatepass").decode("utf-16")

got = {}
for line in logical_lines(text):
    i = 0
    while i < len(line) and line[i] not in "=: \t\f":
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:]
    rest = rest.lstrip(" \t\f")
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(" \t\f")
    got[unescape(key)] = unescape(rest)
assert got == want, [(k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
EOF
if command -v java >/dev/null 2>&1; then
    cat >"$WORK/Props.java" <<'EOF'
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;
public class Props {
    public static void main(String[] a) throws Exception {
        Properties p = new Properties(), q = new Properties();
        try (InputStream in = new FileInputStream(a[0])) { p.load(in); }  // ISO 8859-1
        try (Reader in = new InputStreamReader(new FileInputStream(a[0]), StandardCharsets.UTF_8)) { q.load(in); }
        if (!p.equals(q)) throw new Exception("ISO 8859-1 and UTF-8 readings differ");
        for (String k : new TreeSet<>(p.stringPropertyNames())) {
            StringBuilder h = new StringBuilder();
            for (byte b : p.getProperty(k).getBytes(StandardCharsets.UTF_8)) h.append(String.format("%02x", b));
            System.out.println(k + " " + h);
        }
    }
}
EOF
    java "$WORK/Props.java" "$WORK/out/all.properties" >"$WORK/java.out" 2>"$WORK/java.err"
    $PY - "$WORK/nasty.json" "$WORK/java.out" <<'EOF' && ok || bad "|properties read by java.util.Properties"
import json, sys
want = json.load(open(sys.argv[1]))
want["spaced"], want["colon"] = want["spaces"], want["props"]
got = {}
for line in open(sys.argv[2]):
    k, _, h = line.rstrip("\n").partition(" ")
    got[k] = bytes.fromhex(h).decode("utf-8")
assert got == want, [(k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
EOF
fi

# |shell: each assignment, sourced by sh, gives back the value.
for f in $FIELDS; do printf 'v_%s=${secret:%s:%s|shell}\n' "$f" "$S" "$f"; done >"$WORK/all.sh.tmpl"
oper render "$WORK/all.sh.tmpl" -o "$WORK/out/all.env"
expect_rc 0 "render |shell"
$PY - "$WORK/nasty.json" "$WORK/out/all.env" <<'EOF' && ok || bad "|shell evaluates back to the stored values"
import json, subprocess, sys
want = json.load(open(sys.argv[1]))
for k, v in want.items():
    got = subprocess.run(["sh", "-c", '. "$1"; eval "printf %s \\"\\$v_$2\\""', "sh", sys.argv[2], k],
                         capture_output=True, check=True).stdout.decode("utf-8")
    assert got == v, (k, got)
EOF
ls "$WORK" | grep -q -- "$MARK" && bad "a command substitution in a value ran" || ok

# Connection options and kms blobs take filters too; bytes that are not UTF-8.
oper connection create kafka "sasl.jaas.config=$MARK \"q\" #c" bootstrap=k:9092
expect_rc 0 "connection"
printf '\377\001%s\n' "$MARK" >"$WORK/bin"
oper encrypt --key alias/p11kms/default --in "$WORK/bin"
expect_rc 0 "kms blob"; BLOB=$(cat "$OUT")
printf 'j: ${connection:kafka:sasl.jaas.config|yaml}\nb: ${connection:kafka:bootstrap|json}\ns: ${kms:%s|shell}\n' "$BLOB" >"$WORK/conn.tmpl"
oper render "$WORK/conn.tmpl" -o "$WORK/out/conn.yaml"
expect_rc 0 "render connection and kms with filters"
$PY - "$WORK/out/conn.yaml" "$MARK" <<'EOF' && ok || bad "connection and kms values filtered"
import sys, yaml
raw = open(sys.argv[1], "rb").read()
m = sys.argv[2].encode()
head, _, tail = raw.partition(b"\ns: ")
got = yaml.safe_load(head.decode())
assert got == {"j": sys.argv[2] + ' "q" #c', "b": "k:9092"}, got
assert tail == b"'\xff\x01" + m + b"\n'\n", tail
EOF
printf 'a: 1\ns: ${kms:%s}\n' "$BLOB" >"$WORK/bin.tmpl"
oper render "$WORK/bin.tmpl"
expect_rc 2 "binary kms plaintext without a filter"
expect_err "p11kms: render: line 2: \${kms:${BLOB:0:60}...} is not UTF-8 text; use |shell or |raw" "not UTF-8 message"
printf 's: ${kms:%s|json}\n' "$BLOB" >"$WORK/bin.tmpl"
oper render "$WORK/bin.tmpl"
expect_rc 2 "binary kms plaintext as json"
expect_err "p11kms: render: line 1: \${kms:${BLOB:0:60}...} is not UTF-8 text, which |json cannot represent; use |shell or |raw" "not UTF-8 for json"

# One audit record per secret, however often the template names it.
decrypts() { grep -F "\"secret_id\":\"$S\"" "$T/audit.log" | grep -c '"action":"kms:Decrypt"'; }
before=$(decrypts)
for i in $(seq 1 200); do printf 'k%d: ${secret:%s:hash|yaml} ${secret:%s:colon|json}\n' "$i" "$S" "$S"; done >"$WORK/many.tmpl"
oper render "$WORK/many.tmpl" -o "$WORK/out/many.yaml"
expect_rc 0 "400 placeholders, one secret"
[ "$(($(decrypts) - before))" = 1 ] && ok || bad "one audit record for a secret named 400 times (got $(($(decrypts) - before)))"
[ "$(grep -c "Xy7 #9!q$MARK" "$WORK/out/many.yaml")" = 200 ] && ok || bad "every placeholder rendered"

# Limits: 1024 placeholders, 1 MiB of template; refused before anything is decrypted.
for i in $(seq 1 1024); do printf '${secret:%s:hash}\n' "$S"; done >"$WORK/limit.tmpl"
oper render "$WORK/limit.tmpl" -o "$WORK/out/limit.txt"
expect_rc 0 "1024 placeholders"
before=$(decrypts)
printf 'x: ${secret:%s:hash}\n' "$S" >>"$WORK/limit.tmpl"
oper render "$WORK/limit.tmpl" -o "$WORK/out/over.txt"
expect_rc 2 "1025 placeholders"
expect_err "p11kms: render: line 1025: more than 1024 placeholders; the limit is 1024 per template" "placeholder limit message"
[ "$(decrypts)" = "$before" ] && ok || bad "nothing decrypted for a refused template"
[ ! -e "$WORK/out/over.txt" ] && ok || bad "nothing written over the limit"
head -c 1048576 /dev/zero | tr '\0' 'a' >"$WORK/big.tmpl"
oper render "$WORK/big.tmpl" -o "$WORK/out/big.txt"
expect_rc 0 "a 1 MiB template"
printf 'b' >>"$WORK/big.tmpl"
oper render "$WORK/big.tmpl" -o "$WORK/out/big2.txt"
expect_rc 2 "a template over 1 MiB"
expect_err "p11kms: $WORK/big.tmpl is too large: a template is at most 1048576 bytes (1 MiB)" "template size message"
# A stream that does not end is refused once the limit is read, not read to its end.
mkfifo "$WORK/endless"
(head -c 2000000 /dev/zero; exec sleep 60) >"$WORK/endless" &
writer=$!
timeout 30 "$P11KMS" --as "$OPR" render - <"$WORK/endless" >"$OUT" 2>"$ERR"; RC=$?
kill "$writer" 2>/dev/null; wait "$writer" 2>/dev/null
expect_rc 2 "endless template on stdin"
expect_err "p11kms: standard input is too large: a template is at most 1048576 bytes (1 MiB)" "endless template message"

# No value in the audit log or on stderr.
for f in "$T/audit.log" "$WORK/.all-stderr"; do
    if grep -qF -- "$MARK" "$f"; then bad "a value found in $(basename "$f")"; else ok; fi
done

finish
