package gitsetup

import (
	"errors"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reason says why a repo was not cloned, or why the setup failed; it is
// metadata.git_setup.repos[].reason (and .reason of the setup).
type Reason string

// The reasons. Git's output is read in the C locale (the execs set
// LC_ALL=C), so its messages are the English ones matched here.
const (
	ReasonBadCredentials Reason = "bad_credentials"  // refused or missing credentials (HTTP 401/403, ssh publickey)
	ReasonBranchNotFound Reason = "branch_not_found" // the repo has no git_branch
	ReasonRepoNotFound   Reason = "repo_not_found"   // the server has no such repository (HTTP 404)
	ReasonUnreachable    Reason = "unreachable"      // name resolution, connection or TLS failed
	ReasonTimeout        Reason = "timeout"          // the setup's time (Config.Timeout) ran out
	ReasonDirNotEmpty    Reason = "dir_not_empty"    // the directory exists, is not a clone and is not empty
	ReasonUnsupportedURL Reason = "unsupported_url"  // ErrUnsupportedURL
	ReasonUnsafeName     Reason = "unsafe_name"      // ErrUnsafeName
	ReasonDuplicateDir   Reason = "duplicate_dir"    // ErrDuplicateDir
	ReasonInvalidBranch  Reason = "invalid_branch"   // ErrInvalidBranch
	ReasonInterrupted    Reason = "interrupted"      // the workspace stopped or moved, or its server did not answer
	ReasonFailed         Reason = "failed"           // anything else: the error says what git said
)

// reasonOf is the reason of an entry berth refused before running git.
func reasonOf(err error) Reason {
	switch {
	case errors.Is(err, ErrUnsupportedURL):
		return ReasonUnsupportedURL
	case errors.Is(err, ErrUnsafeName):
		return ReasonUnsafeName
	case errors.Is(err, ErrDuplicateDir):
		return ReasonDuplicateDir
	case errors.Is(err, ErrInvalidBranch):
		return ReasonInvalidBranch
	}
	return ReasonFailed
}

// The messages of git (2.x, C locale), libcurl and ssh that decide a
// reason, tried in this order: a 403 is "unable to access" too, and must
// read as bad credentials, not as unreachable.
var classes = []struct {
	reason Reason
	re     *regexp.Regexp
}{
	{ReasonBranchNotFound, regexp.MustCompile(`(?i)remote branch .* not found in upstream|could not find remote branch`)},
	{ReasonBadCredentials, regexp.MustCompile(`(?i)authentication failed|could not read (username|password)|` +
		`terminal prompts disabled|returned error: 40[13]\b|permission denied \(publickey|invalid username or password`)},
	{ReasonRepoNotFound, regexp.MustCompile(`(?i)repository '.*' not found|returned error: 404\b|repository not found|` +
		`does not appear to be a git repository|no such repository`)},
	{ReasonUnreachable, regexp.MustCompile(`(?i)could not resolve (host|hostname|proxy)|failed to connect|couldn't connect|` +
		`connection (refused|timed out|reset)|operation timed out|network is unreachable|no route to host|` +
		`unable to connect to|name or service not known|temporary failure in name resolution|ssl certificate problem|` +
		`ssl connect error|ssl_connect|gnutls_handshake|certificate verification failed`)},
}

// Classify reads git's standard error of a failed clone and says why it
// failed; ReasonFailed when no known message is there.
func Classify(stderr string) Reason {
	for _, c := range classes {
		if c.re.MatchString(stderr) {
			return c.reason
		}
	}
	return ReasonFailed
}

// maxErrorLen bounds the error text kept per repo.
const maxErrorLen = 300

// errorLine is the line of git's standard error that says what went
// wrong: the last "fatal:" or "error:" line, else the last line; printable
// characters only, at most maxErrorLen bytes. Redact it before keeping it.
func errorLine(stderr string) string {
	var last, lastFatal string
	for line := range strings.SplitSeq(stderr, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		last = line
		if strings.HasPrefix(line, "fatal:") || strings.HasPrefix(line, "error:") {
			lastFatal = line
		}
	}
	if lastFatal != "" {
		last = lastFatal
	}
	last = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, last)
	if len(last) > maxErrorLen {
		cut := maxErrorLen
		for cut > 0 && !utf8.RuneStart(last[cut]) {
			cut--
		}
		last = last[:cut] + "…"
	}
	return last
}

// userinfo is the user info of a URL in text: "scheme://user[:pass]@".
var userinfo = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s'"]*@`)

// redactUserinfo drops the user info of every URL in s.
func redactUserinfo(s string) string { return userinfo.ReplaceAllString(s, "$1") }
