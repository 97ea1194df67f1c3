package computeapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"berth/scheduler/internal/registry"
)

// The file routes (§3.11–§3.14) run shell commands in the container as
// dev, in /home/dev, so relative paths are relative to it and absolute
// paths are allowed (the API validates paths; the compute service never
// sandboxed them). Every path goes through shellQuote.

const fileTimeout = 30 * time.Second

// exitNoSuchPath is deleteCommand's exit code for a path that does not
// exist (rm itself only exits 0 or 1).
const exitNoSuchPath = 3

// shellQuote quotes s as one bash word: s in single quotes, with each
// single quote of s closed, escaped and reopened (the four characters
// quote, backslash, quote, quote). Nothing inside single quotes is special
// to bash: $, backquotes, backslashes, newlines, spaces and globs stay
// literal.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// listCommand lists a directory as ls -la does, following symlinks, with
// the C locale so the columns are the same everywhere.
func listCommand(path string) string { return "LC_ALL=C ls -laL -- " + shellQuote(path) }

func readCommand(path string) string { return "cat -- " + shellQuote(path) }

// exitNotText is readCheckCommand's exit code for a file that is not UTF-8
// (EX_DATAERR).
const exitNotText = 65

// Details of a read check whose answer could not be read (an image whose
// tools print something else): the file is not text, or its size is
// unknown.
const (
	detailNotText = "output is not valid UTF-8"
	detailNoSize  = "the file's size could not be read"
)

// readCheckCommand checks, as dev and without sending the file anywhere,
// what a read of path will meet, so that its failures are answered before
// a 200 starts:
//   - a directory, a missing or unreadable file: cat's own error, exit 1;
//   - anything else that is not a regular file (a FIFO, a device, which
//     cat could read forever): "<path>: not a regular file", exit 1;
//   - otherwise its size on stdout (stat; wc where stat is missing) and,
//     when it is within limit, whether it is UTF-8: iconv (glibc's
//     libc-bin, in every Debian image) stops at the first invalid byte, so
//     the length of its output is that byte's offset; then exit
//     exitNotText with "<offset> <byte in hex>" on a second line. An image
//     without iconv skips the check (the stream is checked anyway).
func readCheckCommand(path string, limit int64) string {
	return "f=" + shellQuote(path) + `
if [ -d "$f" ] || [ ! -r "$f" ]; then cat -- "$f" >/dev/null || exit 1; fi
if [ ! -f "$f" ]; then printf '%s: not a regular file\n' "$f" >&2; exit 1; fi
size=$(stat -L -c %s -- "$f" 2>/dev/null || wc -c <"$f") || exit 1
echo $size
[ $size -gt ` + strconv.FormatInt(limit, 10) + ` ] && exit 0
command -v iconv >/dev/null 2>&1 || exit 0
iconv -f UTF-8 -t UTF-8 -- "$f" >/dev/null 2>&1 && exit 0
n=$(iconv -f UTF-8 -t UTF-8 -- "$f" 2>/dev/null | wc -c)
echo $n $(tail -c +$((n + 1)) -- "$f" | head -c 1 | od -An -tx1)
exit ` + strconv.Itoa(exitNotText)
}

// parseReadCheck reads readCheckCommand's answer: the file's size, or
// where it stops being UTF-8.
func parseReadCheck(out execResponse) (size int64, notText *invalidUTF8Error, err error) {
	lines := strings.Fields(out.Stdout)
	if len(lines) == 0 {
		return 0, nil, fmt.Errorf("read check: no size in %q", out.Stdout)
	}
	if size, err = strconv.ParseInt(lines[0], 10, 64); err != nil {
		return 0, nil, fmt.Errorf("read check: size: %w", err)
	}
	if out.ExitCode != exitNotText {
		return size, nil, nil
	}
	if len(lines) != 3 {
		return size, nil, fmt.Errorf("read check: want offset and byte, got %q", out.Stdout)
	}
	off, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		return size, nil, fmt.Errorf("read check: offset: %w", err)
	}
	b, err := strconv.ParseUint(lines[2], 16, 8)
	if err != nil {
		return size, nil, fmt.Errorf("read check: byte: %w", err)
	}
	return size, &invalidUTF8Error{Offset: off, Byte: byte(b)}, nil
}

// minTransferRate is the slowest a file transfer may run: its command's
// timeout is fileTimeout plus a second per minTransferRate bytes.
const minTransferRate = 1 << 20

// transferTimeout bounds the command that moves size bytes of a file.
func transferTimeout(size int64) time.Duration {
	return fileTimeout + time.Duration(size/minTransferRate)*time.Second
}

// rawBodyBound bounds the body of a file write of at most limit bytes of
// content: JSON may spend 6 bytes (\u00XX) on one byte of content, plus
// room for the path and the rest.
func rawBodyBound(limit int64) int64 { return 6*limit + 1<<20 }

// writeCommand writes stdin to path, creating its parent directories.
func writeCommand(path string) string {
	q := shellQuote(path)
	return `mkdir -p -- "$(dirname -- ` + q + `)" && cat > ` + q
}

// deleteCommand removes path recursively (a dangling symlink counts as
// existing), or exits exitNoSuchPath when there is nothing there.
func deleteCommand(path string) string {
	q := shellQuote(path)
	return "[ -e " + q + " ] || [ -L " + q + " ] || exit " + strconv.Itoa(exitNoSuchPath) + "; rm -rf -- " + q
}

// fileEntry is one item of the listing (§3.11); size is a string.
type fileEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Size string `json:"size"`
}

// parseListing reads `ls -la` output as Python did: lines of fewer than 9
// columns (the "total" line) are skipped; the name is the columns from the
// ninth on joined by single spaces, so runs of spaces in a name collapse;
// `.` and `..` stay; a mode starting with d is a directory.
func parseListing(out string) []fileEntry {
	entries := []fileEntry{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 {
			continue
		}
		typ := "file"
		if strings.HasPrefix(f[0], "d") {
			typ = "directory"
		}
		entries = append(entries, fileEntry{Name: strings.Join(f[8:], " "), Type: typ, Size: f[4]})
	}
	return entries
}

// run executes a file command as dev and returns the §3.9 outcome.
func (a *API) run(c echo.Context, ws registry.Workspace, command string, stdin []byte) (execResponse, execKind) {
	res, err := a.d.Workspaces.Exec(c.Request().Context(), ws, devExec(command, stdin, fileTimeout))
	return a.execOutcome(ws, res, err)
}

// listFiles is GET …/files?path= (§3.11). A missing directory, a failed
// command or a stopped workspace all answer 200 [].
func (a *API) listFiles(c echo.Context) error {
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	path, ok := query(c, "path")
	if !ok {
		path = "."
	}
	if strings.ContainsRune(path, 0) {
		return writeJSON(c, http.StatusOK, []fileEntry{})
	}
	out, kind := a.run(c, ws, listCommand(path), nil)
	if kind != execDone {
		return writeJSON(c, http.StatusOK, []fileEntry{})
	}
	return writeJSON(c, http.StatusOK, parseListing(out.Stdout))
}

// readFile is GET …/files/content?path= (§3.12), streamed: the file goes
// from cat in the container, through the agent and the scheduler, into
// the answer's JSON string piece by piece, never whole in memory. A cheap
// check first (readCheckCommand) finds what the contract answers with a
// 404 (no such file, unreadable, not text) and the 413 of a file above the
// limit, while an answer can still say so; after the 200 has started, a
// file that turns out not to be text, or grows past the limit, or a
// stream that breaks, aborts the answer: the caller never gets a
// different file than the one in the workspace.
func (a *API) readFile(c echo.Context) error {
	var v validator
	path := v.requiredQuery(c, "path")
	if err := v.err(); err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	if strings.ContainsRune(path, 0) {
		return fileFailure(fileRead, path, nulPath)
	}
	release, err := a.holdTransfer(c)
	if err != nil {
		return err
	}
	defer release()
	limit := a.d.FileLimit
	out, kind := a.run(c, ws, readCheckCommand(path, limit), nil)
	if kind != execDone || out.ExitCode != 0 && out.ExitCode != exitNotText {
		return fileFailure(fileRead, path, out)
	}
	size, bad, err := parseReadCheck(out)
	switch {
	case err != nil && out.ExitCode == exitNotText:
		a.log.Warn("file read check answered oddly", "workspace_id", ws.ID, "error", err)
		return fileFailure(fileRead, path, execResponse{ExitCode: 1, Stderr: detailNotText})
	case err != nil:
		a.log.Warn("file read check answered oddly", "workspace_id", ws.ID, "error", err)
		return fileFailure(fileRead, path, execResponse{ExitCode: 1, Stderr: detailNoSize})
	case bad != nil:
		return fileFailure(fileRead, path, execResponse{ExitCode: 1, Stderr: bad.Error()})
	case size > limit:
		return fileTooLarge(size, limit)
	case c.Request().Method == http.MethodHead:
		c.Response().Header().Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		return c.NoContent(http.StatusOK)
	}

	ans := &contentAnswer{c: c, path: path, limit: limit}
	res, err := a.d.Workspaces.ExecRaw(c.Request().Context(), ws, devExec(readCommand(path), nil, transferTimeout(size)), nil, 0, ans)
	var badText *invalidUTF8Error
	var tooLarge *grewPastLimitError
	if !errors.As(err, &badText) && !errors.As(err, &tooLarge) { // else the answer's own checks stopped the stream
		out, kind = a.rawOutcome(ws, res, err)
		if kind == execDone && out.ExitCode == 0 {
			if err = ans.finish(); err == nil {
				return nil
			}
			errors.As(err, &badText) // the file's end cut a character
		}
	}
	switch {
	case ans.started:
		// The 200 is out: the only honest answer left is none.
		a.log.Warn("file read aborted after its answer started", "workspace_id", ws.ID, "path", path,
			"exit_code", out.ExitCode, "stderr", out.Stderr, "error", err)
		panic(http.ErrAbortHandler)
	case badText != nil:
		return fileFailure(fileRead, path, execResponse{ExitCode: 1, Stderr: badText.Error()})
	case tooLarge != nil:
		return fileTooLarge(tooLarge.size, limit)
	}
	return fileFailure(fileRead, path, out)
}

// writeFile is PUT …/files/content (§3.13), streamed: it authenticates
// before it reads the body (guard without a body), reads the body as a
// stream with the content spooled (memory up to 1 MiB, then a temporary
// file), so that a broken or oversize body never touches the workspace's
// file, then streams the spool to the write command's stdin through the
// agent's raw exec. Order of the answers: 413 for a body longer than its
// bound, 422 for a body that is not JSON or not the model, 413 for a
// content above the limit, the owner check, 400 for a null content, then
// the write's own failures (404). A caller past BERTH_USER_TRANSFER_LIMIT
// is 429 before anything is read.
func (a *API) writeFile(c echo.Context) error {
	// The place is taken before the body is read: reading it is the
	// transfer.
	release, err := a.holdTransfer(c)
	if err != nil {
		return err
	}
	defer release()
	limit := a.d.FileLimit
	wb, err := readWriteBody(c.Request(), writeBodyLimits{
		content: limit, raw: rawBodyBound(limit), other: spoolMemory, spoolDir: a.d.SpoolDir,
	})
	if err != nil {
		return err
	}
	defer wb.close()
	var v validator
	body := v.body(wb.body)
	path := body.requiredString("path")
	content := body.nullableString("content")
	if err := v.err(); err != nil {
		return err
	}
	if wb.content != nil && wb.content.Size() > limit {
		return fileTooLarge(wb.content.Size(), limit)
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	if content == nil || wb.content == nil {
		return errContentRequired
	}
	if strings.ContainsRune(path, 0) {
		return fileFailure(fileWrite, path, nulPath)
	}
	in, err := wb.content.Reader()
	if err != nil {
		return err
	}
	size := wb.content.Size()
	res, err := a.d.Workspaces.ExecRaw(c.Request().Context(), ws, devExec(writeCommand(path), nil, transferTimeout(size)), in, size, nil)
	out, kind := a.rawOutcome(ws, res, err)
	if kind != execDone || out.ExitCode != 0 {
		return fileFailure(fileWrite, path, out)
	}
	return noContent(c)
}

// deleteFile is DELETE …/files?path= (§3.14, §14 #1): rm -rf as dev.
func (a *API) deleteFile(c echo.Context) error {
	var v validator
	path := v.requiredQuery(c, "path")
	if err := v.err(); err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	if strings.ContainsRune(path, 0) { // no file has a NUL in its name
		return fileFailure(fileDelete, path, execResponse{ExitCode: exitNoSuchPath})
	}
	out, kind := a.run(c, ws, deleteCommand(path), nil)
	if kind != execDone || out.ExitCode != 0 {
		return fileFailure(fileDelete, path, out)
	}
	return noContent(c)
}
