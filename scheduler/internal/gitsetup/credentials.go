package gitsetup

import (
	"net/url"
	"slices"
	"strings"
)

// defaultUser is the user name given with a bare token (git_credentials
// without a colon), as podex's own workspace image does.
const defaultUser = "x-access-token"

// credentialStore builds the content of the credential store file
// (git-credential-store's format: one scheme://user:password@host line per
// host, percent-encoded) from git_credentials and the repos' http(s)
// hosts, and the redactor that hides every secret in it. git_credentials is
// either "<user>:<token>" (the podex API's form; a bare token gets the user
// x-access-token), given for every http(s) host of the repos, or one or
// more http(s) URLs with a user, one a line, each for its own host. User
// info an entry carried itself comes first, for its host. nil content: no
// line (no credentials, or no http(s) repo to use them for).
func credentialStore(credentials string, repos []Entry) ([]byte, redactor, error) {
	var lines []string
	var red redactor
	seen := map[string]bool{}
	add := func(host string, user *url.Userinfo) {
		if seen[host] {
			return
		}
		seen[host] = true
		scheme, hostport, _ := strings.Cut(host, "://")
		lines = append(lines, scheme+"://"+user.String()+"@"+hostport)
		red.hide(user)
	}
	for _, e := range repos {
		if e.Err == nil && e.user != nil {
			add(e.credHost, e.user)
		}
	}
	var err error
	creds := strings.TrimSpace(credentials)
	red.add(creds)
	switch {
	case creds == "":
	case strings.Contains(creds, "://"):
		for line := range strings.SplitSeq(creds, "\n") {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			u, perr := url.Parse(line)
			if perr != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User == nil || u.User.String() == "" {
				err = ErrInvalidCredentials
				if u != nil && u.User != nil {
					red.hide(u.User)
				}
				continue
			}
			add(strings.ToLower(u.Scheme)+"://"+u.Host, u.User)
		}
	default:
		user, pass, ok := strings.Cut(creds, ":")
		if !ok {
			user, pass = defaultUser, creds
		}
		info := url.UserPassword(user, pass)
		red.add(pass)
		for _, e := range repos {
			if e.Err == nil && e.credHost != "" {
				add(e.credHost, info)
			}
		}
	}
	red.sort()
	if len(lines) == 0 {
		return nil, red, err
	}
	return []byte(strings.Join(lines, "\n") + "\n"), red, err
}

// redactor hides secrets in text meant for people (git's error output).
type redactor struct {
	secrets []string
}

// add hides s, and its percent-encoded forms.
func (r *redactor) add(s string) {
	if s == "" {
		return
	}
	userinfo := strings.TrimPrefix(url.UserPassword("", s).String(), ":") // as the store file has it
	r.secrets = append(r.secrets, s, url.QueryEscape(s), url.PathEscape(s), userinfo)
}

// hide hides what user info carries: the password, or a user given
// without one (a token used as the user name).
func (r *redactor) hide(u *url.Userinfo) {
	if pass, ok := u.Password(); ok {
		r.add(pass)
		return
	}
	r.add(u.Username())
}

// sort puts longer secrets first, so that a secret containing another is
// hidden whole.
func (r *redactor) sort() {
	slices.SortFunc(r.secrets, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	r.secrets = slices.Compact(r.secrets)
}

// redact hides every secret of r and the user info of any URL in s.
func (r redactor) redact(s string) string {
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, "***")
	}
	return redactUserinfo(s)
}
