package computeapi

import (
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
	return execOutcome(ws, res, err)
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

// readFile is GET …/files/content?path= (§3.12).
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
	out, kind := a.run(c, ws, readCommand(path), nil)
	if kind != execDone || out.ExitCode != 0 {
		return fileFailure(fileRead, path, out)
	}
	return writeJSON(c, http.StatusOK, map[string]string{"path": path, "content": out.Stdout})
}

// writeFile is PUT …/files/content (§3.13); the content goes in on stdin.
func (a *API) writeFile(c echo.Context) error {
	var v validator
	body := v.body(bodyOf(c))
	path := body.requiredString("path")
	content := body.nullableString("content")
	if err := v.err(); err != nil {
		return err
	}
	ws, err := a.owned(c, true)
	if err != nil {
		return err
	}
	if content == nil {
		return errContentRequired
	}
	if strings.ContainsRune(path, 0) {
		return fileFailure(fileWrite, path, nulPath)
	}
	out, kind := a.run(c, ws, writeCommand(path), []byte(*content))
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
