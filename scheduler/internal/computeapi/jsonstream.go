package computeapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Streaming JSON strings for the file routes: a file's text goes into a
// JSON string (reads) and comes out of one (writes, filebody.go) piece by
// piece, never whole in memory.

// invalidUTF8Error is a stream that is not UTF-8: Byte, at Offset in the
// stream, starts no valid sequence (or one the stream's end cut short).
type invalidUTF8Error struct {
	Offset int64
	Byte   byte
}

func (e *invalidUTF8Error) Error() string {
	return fmt.Sprintf("output is not valid UTF-8 (byte 0x%02x at offset %d)", e.Byte, e.Offset)
}

// utf8Stream validates UTF-8 text that arrives in pieces cut anywhere, even
// inside a character: the bytes of a character cut at the end of a piece
// are carried (at most 3) to the next. The zero value is ready; not safe
// for concurrent use.
type utf8Stream struct {
	carry [utf8.UTFMax]byte
	n     int   // bytes carried
	off   int64 // bytes taken so far, carried ones included
	head  [utf8.UTFMax]byte
}

// next validates p and returns what it completes: head, the carried
// character completed by p's first bytes (empty when none was carried),
// and body, the rest of p up to a character cut by p's end, which is
// carried. Both are valid UTF-8 made of whole characters and are valid
// until the next call. An invalid sequence is an *invalidUTF8Error.
func (u *utf8Stream) next(p []byte) (head, body []byte, err error) {
	if u.n > 0 {
		start := u.off - int64(u.n)
		k := 0
		for k < len(p) && u.n+k < utf8.UTFMax && !utf8.FullRune(u.carry[:u.n+k]) {
			u.carry[u.n+k] = p[k]
			k++
		}
		u.off += int64(k)
		if !utf8.FullRune(u.carry[:u.n+k]) {
			u.n += k // p ended inside the character too
			return nil, nil, nil
		}
		r, size := utf8.DecodeRune(u.carry[:u.n+k])
		if r == utf8.RuneError && size <= 1 {
			return nil, nil, &invalidUTF8Error{Offset: start, Byte: u.carry[0]}
		}
		head = u.head[:copy(u.head[:], u.carry[:size])]
		u.n, p = 0, p[k:]
	}
	cut := len(p) - incompleteTail(p)
	if !utf8.Valid(p[:cut]) {
		i := invalidUTF8At(p[:cut])
		return nil, nil, &invalidUTF8Error{Offset: u.off + int64(i), Byte: p[i]}
	}
	u.n = copy(u.carry[:], p[cut:])
	u.off += int64(len(p))
	return head, p[:cut], nil
}

// end reports a character the stream's end cut short.
func (u *utf8Stream) end() error {
	if u.n > 0 {
		return &invalidUTF8Error{Offset: u.off - int64(u.n), Byte: u.carry[0]}
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// writeJSONEscaped writes s, valid UTF-8 made of whole characters, as the
// inside of a JSON string, escaped exactly as encoding/json does with HTML
// escaping off (writeJSON's encoder): `"` and `\`, control characters
// (\b \f \n \r \t by name, the others as \u00XX), U+2028 and U+2029.
func writeJSONEscaped(w *bufio.Writer, s []byte) error {
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			_, _ = w.Write(s[start:i])
			switch b {
			case '"', '\\':
				_ = w.WriteByte('\\')
				_ = w.WriteByte(b)
			case '\b':
				_, _ = w.WriteString(`\b`)
			case '\f':
				_, _ = w.WriteString(`\f`)
			case '\n':
				_, _ = w.WriteString(`\n`)
			case '\r':
				_, _ = w.WriteString(`\r`)
			case '\t':
				_, _ = w.WriteString(`\t`)
			default: // byte by byte: a slice literal would be allocated per byte
				_, _ = w.WriteString(`\u00`)
				_ = w.WriteByte(hexDigits[b>>4])
				_ = w.WriteByte(hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are E2 80 A8 and E2 80 A9.
		if b == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
			_, _ = w.Write(s[start:i])
			_, _ = w.WriteString(`\u202`)
			_ = w.WriteByte(hexDigits[s[i+2]&0xF])
			i += 3
			start = i
			continue
		}
		i++
	}
	_, err := w.Write(s[start:])
	return err
}

// marshalString is s as a JSON string, as writeJSON writes one (invalid
// UTF-8 becomes U+FFFD, as encoding/json does).
func marshalString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}
