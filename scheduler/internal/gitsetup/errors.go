package gitsetup

import "errors"

// Why a repo entry or a setting cannot be used. Each maps to one Reason
// (reasonOf).
var (
	// ErrUnsupportedURL: the entry is not an http(s), ssh or git URL, nor
	// scp-like (user@host:path).
	ErrUnsupportedURL = errors.New("unsupported repository URL")
	// ErrUnsafeName: the directory name derived from the URL is empty, hidden
	// (starts with a dot), or has characters other than letters, digits,
	// '.', '_' and '-'.
	ErrUnsafeName = errors.New("unsafe repository directory name")
	// ErrDuplicateDir: an earlier entry of the same create clones into the
	// same directory.
	ErrDuplicateDir = errors.New("another repository clones into the same directory")
	// ErrInvalidBranch: git_branch starts with '-' or has spaces or control
	// characters.
	ErrInvalidBranch = errors.New("invalid branch name")
	// ErrInvalidCredentials: git_credentials is a URL list with an entry
	// that is not an http(s) URL with a user.
	ErrInvalidCredentials = errors.New("git_credentials is neither <user>:<token> nor http(s) URLs with a user")
)
