# What the runtimes' install scripts share (runtimes/real/install.sh,
# runtimes/cluster/install.sh): messages, cached steps, and Go wrapper
# modules. Sourced, not run.

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# A step is skipped when its stamp file holds the same key (what it was
# built from); the key changes with the versions and with the step's
# inputs, so an edit rebuilds just what it touches.
step() {
    local name=$1 stamp=$2 key=$3
    shift 3
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; then
        say "$name: up to date"
        return 0
    fi
    say "$name: building (first time takes minutes; later runs are cached)"
    local started=$SECONDS
    "$@"
    mkdir -p "$(dirname "$stamp")"
    printf '%s' "$key" >"$stamp"
    say "$name: done in $((SECONDS - started)) s"
}

# A wrapper module that requires `module@version` with the replace
# directives of that module's own go.mod (go ignores a dependency's replace
# lines, and `go install` refuses a module that has any), generated from the
# upstream go.mod rather than copied. A replace into the module's own tree
# (Kubernetes' `./staging/src/k8s.io/X`) becomes `k8s.io/X@$STAGING_VERSION`,
# the published copy of that staging module; the `sample-*` ones, which
# nothing imports and which are not all published, are left out.
wrapper_module() {
    local dir=$1 module=$2 version=$3
    shift 3
    mkdir -p "$dir"
    rm -f "$dir/go.mod" "$dir/go.sum"
    local upstream
    upstream=$(cd "$dir" && go mod download -json "$module@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
    local go_version
    go_version=$(go mod edit -json "$upstream" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Go"])')
    (
        cd "$dir"
        go mod init "todo.local/$(basename "$dir")" >/dev/null 2>&1
        go mod edit -go="$go_version" -require="$module@$version"
        go mod edit -json "$upstream" | STAGING_VERSION=${STAGING_VERSION:-} python3 -c '
import json, os, sys
staging = os.environ["STAGING_VERSION"]
for r in json.load(sys.stdin).get("Replace") or []:
    old = r["Old"]["Path"] + ("@" + r["Old"]["Version"] if r["Old"].get("Version") else "")
    if r["New"]["Path"].startswith("./"):
        if not staging or "/sample-" in r["Old"]["Path"]:
            continue
        new = r["Old"]["Path"] + "@" + staging
    else:
        new = r["New"]["Path"] + ("@" + r["New"]["Version"] if r["New"].get("Version") else "")
    print(f"-replace={old}={new}")
' | xargs -r go mod edit
        {
            echo "//go:build tools"
            echo
            echo "package tools"
            echo
            echo "import ("
            for package in "$@"; do echo "	_ \"$package\""; done
            echo ")"
        } >tools.go
        go mod tidy
    )
}
