package computeapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// The body of PUT …/files/content, {"path": …, "content": …}, is read as a
// stream: the content string is decoded piece by piece into a spool, never
// whole in memory, so a file of up to the limit is written with a bounded
// amount of memory whatever its size. Everything else in the body (the
// path, other members, a body that is not an object) is small and read
// whole, then decoded by encoding/json, so it means what it means to
// readBody.

// writeBodyLimits bound what readWriteBody reads.
type writeBodyLimits struct {
	content  int64  // decoded bytes of the content string kept (more are counted, not kept)
	raw      int64  // bytes of the whole body (escapes make it bigger than the content)
	other    int    // bytes of everything but the content string
	spoolDir string // where a big content is spooled ("" = os.TempDir())
}

// writeBody is a PUT …/files/content body read by readWriteBody.
type writeBody struct {
	// body is the request as the validator sees it. A content string
	// held in memory (at most spoolMemory bytes) is itself; a bigger one
	// stands for itself as a short placeholder string, so a 422 echoes
	// no megabytes of it.
	body requestBody
	// content is the decoded content string; nil when content is absent
	// or not a string.
	content *spool
}

// close releases the content's spool.
func (b writeBody) close() {
	if b.content != nil {
		_ = b.content.Close()
	}
}

// errRawTooLarge is a body longer than writeBodyLimits.raw.
var errRawTooLarge = errors.New("request body too large")

// errOtherTooLarge is a body whose parts other than the content string
// are longer than writeBodyLimits.other.
var errOtherTooLarge = errors.New("request body parts too large")

// readWriteBody reads a PUT …/files/content body as readBody reads others
// (JSON when the content type is absent or JSON, otherwise text that fails
// validation), with the content string streamed into a spool. Members may
// come in any order, with others among them; the last of repeated members
// wins, as in encoding/json. Its errors are the answers: 422 json_invalid
// for a body that is not JSON (position and message as readBody's), 400
// errBodyUnreadable when the body cannot be read or is not UTF-8 (FastAPI's
// answer to a body that does not decode), 413 when the body is longer than
// lim.raw or its parts other than the content longer than lim.other. A
// content above lim.content is not an error here: its spool counts it.
func readWriteBody(r *http.Request, lim writeBodyLimits) (writeBody, error) {
	if r.ContentLength > lim.raw {
		return writeBody{}, rawBodyTooLarge(lim.raw, lim.content)
	}
	src := &limitedBody{r: r.Body, left: lim.raw}
	if !jsonContentType(r.Header.Get("Content-Type")) {
		data, err := io.ReadAll(io.LimitReader(src, int64(lim.other)+1))
		switch {
		case err != nil:
			return writeBody{}, bodyReadError(err, lim)
		case len(data) > lim.other:
			return writeBody{}, errBodyTooLarge
		case len(data) == 0:
			return writeBody{}, nil
		}
		return writeBody{body: requestBody{present: true, raw: string(data)}}, nil
	}
	p := &bodyParser{r: bufio.NewReaderSize(src, 64<<10), lim: lim}
	wb, err := p.parse()
	if err != nil {
		wb.close()
		if errors.Is(err, errRawTooLarge) || errors.Is(err, errOtherTooLarge) || errors.Is(err, errReadFailed) || errors.Is(err, errNotText) {
			return writeBody{}, bodyReadError(err, lim)
		}
		return writeBody{}, err
	}
	return wb, nil
}

// bodyReadError is the answer to a body that could not be read whole.
func bodyReadError(err error, lim writeBodyLimits) error {
	switch {
	case errors.Is(err, errRawTooLarge):
		return rawBodyTooLarge(lim.raw, lim.content)
	case errors.Is(err, errOtherTooLarge):
		return errBodyTooLarge
	}
	return errBodyUnreadable
}

// limitedBody reads at most left bytes, then fails with errRawTooLarge
// for good.
type limitedBody struct {
	r        io.Reader
	left     int64
	tooLarge bool
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.tooLarge {
		return 0, errRawTooLarge
	}
	if l.left <= 0 {
		// One byte more tells a body of exactly the limit from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.tooLarge = true
			return 0, errRawTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// errReadFailed wraps a failure to read the body (not its end).
var errReadFailed = errors.New("read request body")

// errNotText is a body whose bytes are not UTF-8.
var errNotText = errors.New("request body is not UTF-8")

// bodyParser reads one JSON body from r, keeping the position of the next
// byte for the error answers.
type bodyParser struct {
	r     *bufio.Reader
	pos   int64 // bytes consumed
	lim   writeBodyLimits
	other int // bytes read whole so far (everything but the content string)
}

func (p *bodyParser) parse() (writeBody, error) {
	if _, err := p.peek(); errors.Is(err, io.EOF) {
		return writeBody{}, nil // no body at all
	}
	if err := p.skipSpace(); err != nil {
		return writeBody{}, err
	}
	var wb writeBody
	c, err := p.peek()
	if err != nil {
		return wb, p.readErr(err)
	}
	if c == '{' {
		obj, content, err := p.object()
		wb.content = content
		if err != nil {
			return wb, err
		}
		wb.body = requestBody{present: true, isJSON: true, value: obj}
	} else {
		v, err := p.value()
		if err != nil {
			return wb, err
		}
		wb.body = requestBody{present: true, isJSON: true, value: v}
	}
	if err := p.skipSpace(); err != nil {
		return wb, err
	}
	if _, err := p.peek(); err == nil {
		return wb, jsonInvalidAt(p.pos, "Extra data")
	} else if !errors.Is(err, io.EOF) {
		return wb, p.readErr(err)
	}
	return wb, nil
}

// object reads an object whose "content" member, when it is a string, is
// decoded into a spool; the other members are values read whole.
func (p *bodyParser) object() (obj map[string]any, content *spool, err error) {
	defer func() {
		if err != nil && content != nil {
			_ = content.Close()
			content = nil
		}
	}()
	obj = map[string]any{}
	p.advance() // {
	if err := p.skipSpace(); err != nil {
		return obj, content, err
	}
	if c, err := p.peek(); err != nil {
		return obj, content, p.readErr(err)
	} else if c == '}' {
		p.advance()
		return obj, content, nil
	}
	for {
		if err := p.skipSpace(); err != nil {
			return obj, content, err
		}
		c, err := p.peek()
		if err != nil {
			return obj, content, p.readErr(err)
		}
		if c != '"' {
			p.advance()
			return obj, content, p.syntax(c, "looking for beginning of object key string")
		}
		k, err := p.value()
		if err != nil {
			return obj, content, err
		}
		key, _ := k.(string)
		if err := p.skipSpace(); err != nil {
			return obj, content, err
		}
		if c, err := p.next(); err != nil {
			return obj, content, p.readErr(err)
		} else if c != ':' {
			return obj, content, p.syntax(c, "after object key")
		}
		if err := p.skipSpace(); err != nil {
			return obj, content, err
		}
		c, err = p.peek()
		if err != nil {
			return obj, content, p.readErr(err)
		}
		if content != nil && key == "content" { // a repeated member: the last wins
			_ = content.Close()
			content = nil
		}
		if key == "content" && c == '"' {
			content = newSpool(p.lim.spoolDir, p.lim.content)
			if err := p.decodeString(content); err != nil {
				return obj, content, err
			}
			obj[key] = contentValue(content)
		} else {
			v, err := p.value()
			if err != nil {
				return obj, content, err
			}
			obj[key] = v
		}
		if err := p.skipSpace(); err != nil {
			return obj, content, err
		}
		c, err = p.next()
		switch {
		case err != nil:
			return obj, content, p.readErr(err)
		case c == '}':
			return obj, content, nil
		case c != ',':
			return obj, content, p.syntax(c, "after object key:value pair")
		}
	}
}

// contentValue is how the validator sees a content string: itself when it
// is held in memory, a placeholder otherwise.
func contentValue(s *spool) any {
	if b, ok := s.memory(); ok {
		return string(b)
	}
	return fmt.Sprintf("<%d bytes, not repeated here>", s.Size())
}

// value reads one JSON value whole (it must fit what is left of
// lim.other) and decodes it as readBody does (numbers exact).
func (p *bodyParser) value() (any, error) {
	start := p.pos
	raw, err := p.capture()
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 { // a delimiter where a value should start
		c, err := p.peek()
		if err != nil {
			return nil, p.readErr(err)
		}
		return nil, jsonInvalidAt(p.pos, "invalid character "+quoteChar(c)+" looking for beginning of value")
	}
	if !utf8.Valid(raw) {
		return nil, errNotText
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, jsonInvalidAt(start+max(se.Offset-1, 0), se.Error())
		}
		return nil, jsonInvalidAt(start+int64(len(raw)), "Expecting value")
	}
	if off := dec.InputOffset(); off < int64(len(raw)) {
		return nil, jsonInvalidAt(start+off, "invalid character "+quoteChar(raw[off])+" after value")
	}
	return v, nil
}

// capture reads the bytes of one JSON value: a string to its closing
// quote, an object or array to its closing bracket (brackets counted
// outside strings), anything else up to the next delimiter. It checks no
// more than that: the decoder does.
func (p *bodyParser) capture() ([]byte, error) {
	var buf []byte
	take := func() (byte, error) {
		c, err := p.next()
		if err != nil {
			return 0, p.readErr(err)
		}
		if p.other++; p.other > p.lim.other {
			return 0, errOtherTooLarge
		}
		buf = append(buf, c)
		return c, nil
	}
	first, err := p.peek()
	if err != nil {
		return nil, p.readErr(err)
	}
	if first != '"' && first != '{' && first != '[' {
		for {
			c, err := p.peek()
			if errors.Is(err, io.EOF) || err == nil && isDelimiter(c) {
				return buf, nil
			}
			if err != nil {
				return nil, p.readErr(err)
			}
			if _, err := take(); err != nil {
				return nil, err
			}
		}
	}
	depth, inString, escaped := 0, false, false
	for {
		c, err := take()
		if err != nil {
			return nil, err
		}
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
		if depth <= 0 && !inString {
			return buf, nil
		}
	}
}

func isDelimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', ',', ':', '}', ']':
		return true
	}
	return false
}

// decodeString decodes the JSON string that starts at the reader (its
// opening quote next) into w, in pieces of up to 32 KiB: every escape is
// decoded (\" \\ \/ \b \f \n \r \t and \uXXXX, a surrogate pair into its
// character; a lone surrogate becomes U+FFFD, as encoding/json decodes
// it), raw bytes must be UTF-8 (errNotText otherwise), and a raw control
// character is a syntax error.
func (p *bodyParser) decodeString(w io.Writer) error {
	const flushAt = 32 << 10
	out := make([]byte, 0, flushAt+utf8.UTFMax)
	flush := func() error {
		if len(out) == 0 {
			return nil
		}
		_, err := w.Write(out)
		out = out[:0]
		return err
	}
	var text utf8Stream
	p.advance() // "
	for {
		if p.r.Buffered() == 0 {
			if _, err := p.r.Peek(1); err != nil {
				return p.readErr(err)
			}
		}
		chunk, _ := p.r.Peek(p.r.Buffered())
		i := 0
		for i < len(chunk) && chunk[i] != '"' && chunk[i] != '\\' && chunk[i] >= 0x20 {
			i++
		}
		if i > 0 {
			head, body, err := text.next(chunk[:i])
			if err != nil {
				return errNotText
			}
			out = append(out, head...)
			if len(out)+len(body) > flushAt {
				if err := flush(); err != nil {
					return err
				}
			}
			if len(body) > flushAt {
				if _, err := w.Write(body); err != nil {
					return err
				}
			} else {
				out = append(out, body...)
			}
			p.skip(i)
			continue
		}
		c := chunk[0]
		if c < 0x20 {
			p.advance()
			return p.syntax(c, "in string literal")
		}
		if text.end() != nil { // raw bytes cut short by a quote or an escape
			return errNotText
		}
		p.advance()
		if c == '"' {
			return flush()
		}
		r, err := p.escape()
		if err != nil {
			return err
		}
		out = utf8.AppendRune(out, r)
		if len(out) >= flushAt {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// escape reads what follows a backslash in a string and returns the
// character it stands for.
func (p *bodyParser) escape() (rune, error) {
	c, err := p.next()
	if err != nil {
		return 0, p.readErr(err)
	}
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, p.syntax(c, "in string escape code")
	}
	r, err := p.hex4()
	if err != nil || !utf16.IsSurrogate(r) {
		return r, err
	}
	// A surrogate pair is two escapes; a lone surrogate is U+FFFD, and
	// what follows it is read on its own.
	if next, err := p.r.Peek(6); err == nil && next[0] == '\\' && next[1] == 'u' {
		if r2, ok := parseHex4(next[2:]); ok {
			if pair := utf16.DecodeRune(r, r2); pair != utf8.RuneError {
				p.skip(6)
				return pair, nil
			}
		}
	}
	return utf8.RuneError, nil
}

// hex4 reads the four hex digits of a \u escape.
func (p *bodyParser) hex4() (rune, error) {
	var r rune
	for range 4 {
		c, err := p.next()
		if err != nil {
			return 0, p.readErr(err)
		}
		d, ok := hexValue(c)
		if !ok {
			return 0, p.syntax(c, `in \u hexadecimal character escape`)
		}
		r = r<<4 | d
	}
	return r, nil
}

func parseHex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b[:4] {
		d, ok := hexValue(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | d
	}
	return r, true
}

func hexValue(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}

func (p *bodyParser) peek() (byte, error) {
	b, err := p.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (p *bodyParser) next() (byte, error) {
	c, err := p.r.ReadByte()
	if err == nil {
		p.pos++
	}
	return c, err
}

// advance consumes the byte peek returned.
func (p *bodyParser) advance() { p.skip(1) }

func (p *bodyParser) skip(n int) {
	m, _ := p.r.Discard(n) // the bytes were peeked: Discard cannot fail
	p.pos += int64(m)
}

func (p *bodyParser) skipSpace() error {
	for {
		c, err := p.peek()
		switch {
		case errors.Is(err, io.EOF):
			return nil // the caller sees the end on its next read
		case err != nil:
			return p.readErr(err)
		case c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return nil
		}
		p.advance()
	}
}

// readErr maps a read failure: the body's end where a value was expected
// is a json_invalid answer (as readBody's); a limit is the limit's; any
// other failure is errReadFailed.
func (p *bodyParser) readErr(err error) error {
	switch {
	case errors.Is(err, errRawTooLarge), errors.Is(err, errOtherTooLarge):
		return err
	case errors.Is(err, io.EOF):
		return jsonInvalidAt(p.pos, "Expecting value")
	}
	return fmt.Errorf("%w: %w", errReadFailed, err)
}

// syntax is the json_invalid answer to c, just read, in context (the
// words encoding/json uses).
func (p *bodyParser) syntax(c byte, context string) error {
	return jsonInvalidAt(p.pos-1, "invalid character "+quoteChar(c)+" "+context)
}

// quoteChar formats c as encoding/json's messages do.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
