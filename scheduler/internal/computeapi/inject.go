package computeapi

import (
	"bytes"
	_ "embed"
	"strings"
)

// The preview proxy (§3.20) injects a DevTools bridge into the HTML pages
// it serves: devtools.js, our own script, inline in a
// <script data-podex-devtools="true"> element. The proxy calls isHTML on
// the response's content type and injectDevTools on its body, then
// recomputes Content-Length.

//go:embed devtools.js
var devtoolsJS string

// devtoolsMarker marks the injected element; a page that holds it already
// gets nothing more.
const devtoolsMarker = "data-podex-devtools"

var devtoolsScript = []byte("<script " + devtoolsMarker + `="true">` + "\n" + devtoolsJS + "</script>")

// isHTML reports whether a response of this Content-Type gets the bridge:
// one naming text/html or application/xhtml (application/xhtml+xml), in
// any case, as Python's check did.
func isHTML(contentType string) bool {
	ct := strings.ToLower(contentType)
	return strings.Contains(ct, "text/html") || strings.Contains(ct, "application/xhtml")
}

// injectDevTools returns html with the DevTools bridge script inserted, in
// this order of preference: just after the <head…> start tag; otherwise in
// a new <head> just after the <html…> start tag; otherwise just after the
// <!DOCTYPE…> declaration; otherwise at the very start. html is returned
// unchanged when the marker data-podex-devtools is already in it. Tags
// match in any case and with attributes (quoted values may hold '>');
// <header> is not <head>; tags inside <!-- comments --> do not count. The
// bytes are not decoded, so any charset survives. html is never modified.
func injectDevTools(html []byte) []byte {
	if bytes.Contains(bytes.ToLower(html), []byte(devtoolsMarker)) {
		return html
	}
	if end, ok := startTagEnd(html, "head"); ok {
		return insertAt(html, end, devtoolsScript)
	}
	if end, ok := startTagEnd(html, "html"); ok {
		return insertAt(html, end, []byte("<head>"), devtoolsScript, []byte("</head>"))
	}
	if end, ok := startTagEnd(html, "!doctype"); ok {
		return insertAt(html, end, devtoolsScript)
	}
	return insertAt(html, 0, devtoolsScript)
}

// insertAt is a new slice: html[:at], the parts, html[at:].
func insertAt(html []byte, at int, parts ...[]byte) []byte {
	n := len(html)
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	out = append(out, html[:at]...)
	for _, p := range parts {
		out = append(out, p...)
	}
	return append(out, html[at:]...)
}

// startTagEnd finds the first start tag named name (lower case; "!doctype"
// for the declaration) outside comments, and returns the offset just past
// its closing '>'.
func startTagEnd(html []byte, name string) (int, bool) {
	for i := 0; i < len(html); i++ {
		if html[i] != '<' {
			continue
		}
		if bytes.HasPrefix(html[i:], []byte("<!--")) {
			end := bytes.Index(html[i+4:], []byte("-->"))
			if end < 0 {
				return 0, false
			}
			i += 4 + end + 2
			continue
		}
		j := i + 1 + len(name)
		if j > len(html) || !strings.EqualFold(string(html[i+1:j]), name) {
			continue
		}
		if j < len(html) && !isTagNameEnd(html[j]) {
			continue // <header>, <htmlfoo>
		}
		if end, ok := tagClose(html, j); ok {
			return end, true
		}
		return 0, false
	}
	return 0, false
}

// isTagNameEnd reports whether c ends a tag name: whitespace, '/' or '>'.
func isTagNameEnd(c byte) bool { return isSpace(c) || c == '/' || c == '>' }

// tagClose returns the offset just past the '>' that closes the tag whose
// attributes start at from, skipping quoted attribute values (a quote
// opens one only right after '=', as in HTML).
func tagClose(html []byte, from int) (int, bool) {
	var quote, last byte // last: the previous byte that is not whitespace
	for k := from; k < len(html); k++ {
		c := html[k]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case (c == '"' || c == '\'') && last == '=':
			quote = c
		case c == '>':
			return k + 1, true
		}
		if !isSpace(c) {
			last = c
		}
	}
	return 0, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
