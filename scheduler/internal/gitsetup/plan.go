package gitsetup

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode"

	"berth/scheduler/internal/registry"
)

// Home is the workspace user's home directory: repos are cloned into it.
const Home = "/home/dev"

// maxNameLen bounds a repo's directory name.
const maxNameLen = 100

// Repo is one entry of a create's repos, parsed and ready to clone.
type Repo struct {
	// URL is what git clones: the entry without the user info of an
	// http(s) URL (moved to the credential store) or the password of
	// another URL, so that no secret is in a command line or in the
	// clone's .git/config. It is also how the repo is shown.
	URL  string
	Name string // the directory name, derived from the URL as git does
	Dir  string // Home/Name

	// credHost is scheme://host[:port] of an http(s) URL, where the
	// credentials apply; "" for ssh and git URLs.
	credHost string
	// user is the user info an http(s) entry carried itself.
	user *url.Userinfo
}

// scpLike is git's other ssh syntax: [user@]host:path, with no "/" before
// the colon.
var scpLike = regexp.MustCompile(`^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9.-]+:([^/].*|/.+)$`)

// safeName is a directory name berth clones into: not hidden, no path
// separators, no shell or terminal surprises.
var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseRepo parses one entry of a create's repos: an http(s), ssh or git
// URL, or scp-like user@host:path. The directory is the URL's last path
// element without a trailing ".git" (as `git clone` names it); an entry
// whose name would be hidden, empty or unusual is refused (ErrUnsafeName),
// and so is any other kind of entry — local paths, file://, ext:: remote
// helpers, "owner/repo" (ErrUnsupportedURL).
func ParseRepo(entry string) (Repo, error) {
	s := strings.TrimSpace(entry)
	if s == "" || strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return Repo{}, fmt.Errorf("%w: empty, or has spaces or control characters", ErrUnsupportedURL)
	}
	if strings.Contains(s, "::") { // <transport>::<address>: a remote helper, which runs programs
		return Repo{}, fmt.Errorf("%w: remote helper syntax (::)", ErrUnsupportedURL)
	}
	var r Repo
	var path string
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			// Not err: it quotes the entry, which may hold a password.
			return Repo{}, fmt.Errorf("%w: malformed URL", ErrUnsupportedURL)
		}
		u.Scheme = strings.ToLower(u.Scheme)
		switch u.Scheme {
		case "https", "http":
			r.credHost = u.Scheme + "://" + u.Host
			if u.User != nil && u.User.String() != "" {
				r.user = u.User
			}
			u.User = nil
		case "ssh", "git+ssh", "ssh+git", "git":
			if u.User != nil {
				u.User = url.User(u.User.Username()) // a password has no place in an ssh URL
			}
		default:
			return Repo{}, fmt.Errorf("%w: scheme %q (want https, http, ssh or git)", ErrUnsupportedURL, u.Scheme)
		}
		if u.Host == "" {
			return Repo{}, fmt.Errorf("%w: no host", ErrUnsupportedURL)
		}
		r.URL, path = u.String(), u.Path
	} else {
		m := scpLike.FindStringSubmatch(s)
		if m == nil {
			return Repo{}, fmt.Errorf("%w: want a URL (https://host/owner/repo.git) or user@host:path", ErrUnsupportedURL)
		}
		r.URL, path = s, m[1]
	}
	r.Name = dirName(path)
	if !safeName.MatchString(r.Name) || len(r.Name) > maxNameLen {
		return Repo{URL: r.URL}, fmt.Errorf("%w: %q", ErrUnsafeName, r.Name)
	}
	r.Dir = Home + "/" + r.Name
	return r, nil
}

// dirName is the directory `git clone` makes for a repository path: the
// last element, after trailing slashes and a "/.git" are dropped, without
// its ".git" suffix.
func dirName(path string) string {
	p := strings.TrimRight(path, "/")
	p = strings.TrimRight(strings.TrimSuffix(p, "/.git"), "/")
	if i := strings.LastIndexAny(p, "/:"); i >= 0 {
		p = p[i+1:]
	}
	return strings.TrimSuffix(p, ".git")
}

// checkBranch refuses a branch git would take for an option, or that no
// ref can be named.
func checkBranch(b string) error {
	if strings.HasPrefix(b, "-") || strings.ContainsFunc(b, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%w: %q", ErrInvalidBranch, b)
	}
	return nil
}

// Entry is one of a Plan's repos.
type Entry struct {
	Repo
	// Shown is how the entry appears in metadata, events and logs: the
	// URL berth clones, or the entry redacted when it did not parse.
	Shown string
	// Err is why the entry is not cloned (ErrUnsupportedURL,
	// ErrUnsafeName, ErrDuplicateDir, ErrInvalidBranch); nil: it is.
	Err error
}

// Plan is one workspace's setup: the identity, the branch, the repos and
// the credential store. It holds the credentials; never log a Plan.
type Plan struct {
	Name, Email string // git config --global user.name / user.email; "" = left as it is
	Branch      string // "" = each repo's default branch
	Repos       []Entry

	// store is the credential store file's content; nil when there is
	// nothing to store (berth's store file is then removed).
	store []byte
	// CredentialsErr is why the credentials could not be used, if so.
	CredentialsErr error
	red            redactor
}

// NewPlan plans the setup of a workspace with repos and settings as
// recorded and its git_credentials. Entries that cannot be cloned keep
// their reason (Entry.Err); empty entries are skipped.
func NewPlan(repos []string, s registry.Settings, credentials string) Plan {
	p := Plan{Name: s.GitName, Email: s.GitEmail, Branch: s.GitBranch}
	branchErr := checkBranch(s.GitBranch)
	dirs := map[string]bool{}
	for _, entry := range repos {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		r, err := ParseRepo(entry)
		e := Entry{Repo: r, Shown: r.URL, Err: err}
		switch {
		case err != nil:
			if e.Shown == "" {
				e.Shown = redactUserinfo(strings.TrimSpace(entry))
			}
		case dirs[r.Dir]:
			e.Err = fmt.Errorf("%w: %s", ErrDuplicateDir, r.Dir)
		case branchErr != nil:
			e.Err = branchErr
		}
		if e.Err == nil {
			dirs[r.Dir] = true
		}
		p.Repos = append(p.Repos, e)
	}
	p.store, p.red, p.CredentialsErr = credentialStore(credentials, p.Repos)
	return p
}

// Empty reports whether the plan has nothing to do: no repos and no
// identity.
func (p Plan) Empty() bool { return len(p.Repos) == 0 && p.Name == "" && p.Email == "" }
