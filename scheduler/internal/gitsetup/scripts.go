package gitsetup

import (
	"maps"
	"time"

	"berth/shared/wire"
)

// StorePath is berth's credential store file in the workspace: written at
// every setup with exactly the create's credentials (mode 600, in a
// directory of mode 700, owned by dev), and named in the global git config
// as a `store --file` credential helper.
const StorePath = Home + "/.config/berth/git-credentials"

// execUser is who the setup runs as: the workspace user, so that what it
// writes is theirs.
const execUser = "dev"

// exitDirNotEmpty is cloneScript's exit code for a target directory that
// exists and is not a clone (git's own codes are 128 and 129).
const exitDirNotEmpty = 3

// execEnv is the environment of every setup exec: no secret, only what
// makes git non-interactive and its messages the English ones Classify
// reads.
var execEnv = map[string]string{
	"HOME":                Home,
	"LC_ALL":              "C",
	"GIT_TERMINAL_PROMPT": "0", // fail instead of asking for a user name
	"GIT_ASKPASS":         "",  // empty: no askpass program either (not even SSH_ASKPASS)
	"GCM_INTERACTIVE":     "never",
	"GIT_SSH_COMMAND":     "ssh -o BatchMode=yes",
}

// writeStore is the shell function both scripts share: it writes $creds
// (never an argument or an exported variable: printf is a bash builtin)
// to the file $1 through a temporary file of mode 600 renamed over it, in
// a directory of mode 700.
const writeStore = `
write_store() {
	local dir=${1%/*} tmp
	mkdir -p -- "$dir" && chmod 700 -- "$dir" || return 1
	tmp=$(mktemp -- "$1.XXXXXX") || return 1
	chmod 600 -- "$tmp" && printf '%s\n' "$creds" >"$tmp" && mv -f -- "$tmp" "$1"
}
`

// configureScript sets the identity ($1 user.name and $2 user.email, each
// only when given) and, when $4 is 1, writes the credentials it reads on
// its input into the store file $3 and names it as a credential helper in
// the global config (once; other helpers the user set are kept). When $4
// is 0, the store file is removed: it holds the create's credentials and
// nothing else.
const configureScript = `set -eu
name=$1 email=$2 store=$3 have_store=$4
` + writeStore + `
if [ -n "$name" ]; then git config --global user.name "$name"; fi
if [ -n "$email" ]; then git config --global user.email "$email"; fi
if [ "$have_store" = 1 ]; then
	creds=$(cat)
	write_store "$store"
	helper="store --file=$store"
	if ! git config --global --get-all credential.helper | grep -qxF -- "$helper"; then
		git config --global --add credential.helper "$helper"
	fi
else
	rm -f -- "$store"
fi
`

// cloneScript clones $1 into the directory $2 on branch $3 ("" = the
// default branch), with the store file $4 as the only credential helper
// when $5 is 1 (the credentials arrive on its input and are written
// before the clone and again after it, since git erases credentials a
// server refused). A directory that already holds a clone is left alone
// ("present"); one that exists and is not empty is refused (exit 3). The
// clone is made in a hidden directory beside the target and renamed into
// place when complete ("cloned"), so an interrupted clone never looks
// like a repository; the next attempt removes its leftovers.
const cloneScript = `set -u
url=$1 dir=$2 branch=$3 store=$4 have_store=$5
` + writeStore + `
if [ "$have_store" = 1 ]; then
	creds=$(cat)
	write_store "$store" || exit 1
fi
if [ -e "$dir/.git" ]; then echo present; exit 0; fi
if [ -L "$dir" ] || { [ -e "$dir" ] && { [ ! -d "$dir" ] || [ -n "$(ls -A -- "$dir")" ]; }; }; then
	echo "berth: $dir exists and is not an empty directory" >&2
	exit 3
fi
parent=${dir%/*} name=${dir##*/}
rm -rf -- "$parent/.berth-clone-$name".*
work=$(mktemp -d -- "$parent/.berth-clone-$name.XXXXXX") || exit 1
trap 'rm -rf -- "$work"' EXIT
args=(-c credential.helper=)
if [ "$have_store" = 1 ]; then args+=(-c "credential.helper=store --file=$store"); fi
args+=(clone --quiet)
if [ -n "$branch" ]; then args+=(--branch "$branch"); fi
git "${args[@]}" -- "$url" "$work/repo"
code=$?
if [ "$have_store" = 1 ]; then write_store "$store" || true; fi
[ "$code" = 0 ] || exit "$code"
if [ -d "$dir" ]; then rmdir -- "$dir" || exit 3; fi
mv -T -- "$work/repo" "$dir" || exit 1
echo cloned
`

// Outcomes cloneScript prints last on success.
const (
	outPresent = "present"
	outCloned  = "cloned"
)

// ConfigureRequest is the exec that sets the identity and writes the
// credential store; the credentials are its input.
func (p Plan) ConfigureRequest(timeout time.Duration) wire.ExecRequest {
	return p.configure(timeout, StorePath)
}

// CloneRequest is the exec that clones e; the credentials are its input.
func (p Plan) CloneRequest(e Entry, timeout time.Duration) wire.ExecRequest {
	return p.clone(e, timeout, StorePath)
}

func (p Plan) configure(timeout time.Duration, store string) wire.ExecRequest {
	return p.request(timeout, "berth-git-setup", configureScript, p.Name, p.Email, store, p.haveStore())
}

func (p Plan) clone(e Entry, timeout time.Duration, store string) wire.ExecRequest {
	return p.request(timeout, "berth-git-clone", cloneScript, e.URL, e.Dir, p.Branch, store, p.haveStore())
}

func (p Plan) haveStore() string {
	if p.store == nil {
		return "0"
	}
	return "1"
}

// request runs script with bash as the workspace user, with args as its
// positional parameters ($0 is name, what ps shows) and the credential
// store as its input.
func (p Plan) request(timeout time.Duration, name, script string, args ...string) wire.ExecRequest {
	return wire.ExecRequest{
		Cmd:            append([]string{"bash", "-c", script, name}, args...),
		User:           execUser,
		WorkingDir:     Home,
		Env:            maps.Clone(execEnv),
		Stdin:          p.store,
		TimeoutSeconds: max(1, int((timeout+time.Second-1)/time.Second)),
	}
}
