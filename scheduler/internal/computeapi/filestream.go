package computeapi

import (
	"bufio"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// grewPastLimitError is a file read whose content went past the limit
// while it was streamed (it grew after the check, or it is a file whose
// size says nothing, as in /proc).
type grewPastLimitError struct{ size int64 }

func (e *grewPastLimitError) Error() string {
	return fmt.Sprintf("file grew past the limit: %d bytes read", e.size)
}

// contentAnswer writes the 200 answer of GET …/files/content as the file
// streams in: {"path": <path>, "content": "<the file, escaped>"}. Write
// takes the file as cat writes it, in pieces cut anywhere (inside a
// character too); each piece is checked (UTF-8, the limit) before any of
// it is written, and the answer starts with the first good piece, so a
// file that is not text from its first piece on still gets a proper 404.
// After that, a bad piece is an error for the caller to abort the answer
// with. finish ends the string and the object. Memory is one 32 KiB
// buffer. Not safe for concurrent use.
type contentAnswer struct {
	c       echo.Context
	path    string
	limit   int64
	n       int64 // bytes of the file taken
	text    utf8Stream
	w       *bufio.Writer // over the answer, once started
	started bool
}

func (a *contentAnswer) Write(p []byte) (int, error) {
	a.n += int64(len(p))
	if a.n > a.limit {
		return 0, &grewPastLimitError{size: a.n}
	}
	head, body, err := a.text.next(p)
	if err != nil {
		return 0, err
	}
	a.start()
	if err := writeJSONEscaped(a.w, head); err != nil {
		return 0, err
	}
	if err := writeJSONEscaped(a.w, body); err != nil {
		return 0, err
	}
	return len(p), nil
}

// start writes the 200 and the answer's start, once.
func (a *contentAnswer) start() {
	if a.started {
		return
	}
	a.started = true
	a.c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
	a.c.Response().WriteHeader(http.StatusOK)
	a.w = bufio.NewWriterSize(a.c.Response(), 32<<10)
	_, _ = a.w.WriteString(`{"path":` + marshalString(a.path) + `,"content":"`)
}

// finish ends the answer (starting it for an empty file); a character the
// file's end cut short is an *invalidUTF8Error.
func (a *contentAnswer) finish() error {
	if err := a.text.end(); err != nil {
		return err
	}
	a.start()
	_, _ = a.w.WriteString(`"}`)
	return a.w.Flush()
}
