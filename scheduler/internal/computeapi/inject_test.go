package computeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestInjectDevTools(t *testing.T) {
	const s = "\x00SCRIPT\x00" // stands for the script element in want
	tests := []struct {
		name, html, want string
	}{
		{"after head", "<!DOCTYPE html><html><head><title>x</title></head><body></body></html>",
			"<!DOCTYPE html><html><head>" + s + "<title>x</title></head><body></body></html>"},
		{"head with attributes", `<html lang="en"><head data-x="1" class='a'><meta charset="utf-8"></head></html>`,
			`<html lang="en"><head data-x="1" class='a'>` + s + `<meta charset="utf-8"></head></html>`},
		{"head in upper case", "<HTML><HEAD><TITLE>x</TITLE></HEAD></HTML>", "<HTML><HEAD>" + s + "<TITLE>x</TITLE></HEAD></HTML>"},
		{"head in mixed case, attribute on a new line", "<Head\n  profile=\"x\">y", "<Head\n  profile=\"x\">" + s + "y"},
		{"a quoted > inside the head tag", `<head data-x="a>b" data-y='c>d'>z`, `<head data-x="a>b" data-y='c>d'>` + s + "z"},
		{"an unquoted value with a quote", `<head data-x=it's>z`, `<head data-x=it's>` + s + "z"},
		{"header is not head", "<html><body><header>h</header></body></html>",
			"<html><head>" + s + "</head><body><header>h</header></body></html>"},
		{"head wins over an earlier html", "<html><body></body><head></head></html>", "<html><body></body><head>" + s + "</head></html>"},
		{"a head in a comment does not count", "<!-- the <head> is below --><html><head></head></html>",
			"<!-- the <head> is below --><html><head>" + s + "</head></html>"},
		{"no head: a new head after html", "<!doctype html><html lang=\"de\"><body>hi</body></html>",
			"<!doctype html><html lang=\"de\"><head>" + s + "</head><body>hi</body></html>"},
		{"html in upper case", "<HTML><BODY></BODY></HTML>", "<HTML><head>" + s + "</head><BODY></BODY></HTML>"},
		{"htmlx is not html", "<htmlx></htmlx><p>", s + "<htmlx></htmlx><p>"},
		{"no html: after the doctype", "<!DOCTYPE html>\n<p>fragment</p>", "<!DOCTYPE html>" + s + "\n<p>fragment</p>"},
		{"a lower-case doctype with a public id", `<!doctype html PUBLIC "-//W3C//DTD XHTML 1.0//EN">x`,
			`<!doctype html PUBLIC "-//W3C//DTD XHTML 1.0//EN">` + s + "x"},
		{"nothing: prepended", "<p>just a fragment</p>", s + "<p>just a fragment</p>"},
		{"empty", "", s},
		{"a head tag that never closes: html wins", "<html><head", "<html><head>" + s + "</head><head"},
		{"already injected", `<html><head><script data-podex-devtools="true">x</script></head></html>`,
			`<html><head><script data-podex-devtools="true">x</script></head></html>`},
		{"the marker in another case", `<head><SCRIPT DATA-PODEX-DEVTOOLS>`, `<head><SCRIPT DATA-PODEX-DEVTOOLS>`},
		{"not UTF-8 bytes survive", "<html><head>\xe9t\xe9</head></html>", "<html><head>" + s + "\xe9t\xe9</head></html>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := []byte(tt.html)
			orig := bytes.Clone(in)
			got := injectDevTools(in)
			want := strings.ReplaceAll(tt.want, s, string(devtoolsScript))
			if string(got) != want {
				t.Errorf("got  %q\nwant %q", shorten(got), shorten([]byte(want)))
			}
			if !bytes.Equal(in, orig) {
				t.Error("the input was modified")
			}
			if again := injectDevTools(got); !bytes.Equal(again, got) {
				t.Error("a second injection changed the page")
			}
		})
	}
}

// shorten replaces the script in b by a placeholder, for readable failures.
func shorten(b []byte) string {
	return strings.ReplaceAll(string(b), string(devtoolsScript), "<SCRIPT…>")
}

func TestIsHTML(t *testing.T) {
	tests := []struct {
		contentType string
		want        bool
	}{
		{"text/html", true},
		{"text/html; charset=utf-8", true},
		{"TEXT/HTML", true},
		{"application/xhtml+xml", true},
		{"application/xhtml+xml; charset=iso-8859-1", true},
		{"application/json", false},
		{"text/plain", false},
		{"text/css", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := isHTML(tt.contentType); got != tt.want {
			t.Errorf("isHTML(%q): got %v, want %v", tt.contentType, got, tt.want)
		}
	}
}

func TestDevToolsScriptElement(t *testing.T) {
	js := strings.ToLower(devtoolsJS)
	for _, bad := range []string{"</script", "<!--"} {
		if strings.Contains(js, bad) {
			t.Errorf("devtools.js holds %q, which would end or change the inline script element", bad)
		}
	}
	if !bytes.HasPrefix(devtoolsScript, []byte(`<script data-podex-devtools="true">`)) || !bytes.HasSuffix(devtoolsScript, []byte("</script>")) {
		t.Errorf("script element: got %q…", devtoolsScript[:60])
	}
}

// TestDevToolsBridge runs devtools.js in node with a fake window inside an
// iframe and checks the messages it posts to the parent; skipped without
// node.
func TestDevToolsBridge(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	harness := `
const vm = require('vm');
const fs = require('fs');
const src = fs.readFileSync(process.argv[1], 'utf8'); // node -e … -- FILE
function run(inFrame) {
  const posted = [], listeners = {};
  const parent = { postMessage(msg, origin) { posted.push({ msg: JSON.parse(JSON.stringify(msg)), origin }); } };
  const logged = [];
  const fakeConsole = {};
  for (const l of ['log', 'info', 'warn', 'error', 'debug']) fakeConsole[l] = (...a) => logged.push([l, a.length]);
  const win = { addEventListener(type, fn) { listeners[type] = fn; } };
  win.parent = inFrame ? parent : win;
  const ctx = { window: win, console: fakeConsole, location: { href: 'http://preview/app/' } };
  vm.runInNewContext(src, ctx);
  vm.runInNewContext(src, ctx); // a second copy must not install twice
  const circ = { a: 1 }; circ.self = circ;
  ctx.console.log('hello', 42, circ, undefined, null, function named() {}, { nodeType: 1, tagName: 'DIV', id: 'app', className: 'c' });
  ctx.console.warn('x'.repeat(3000));
  ctx.console.error(new Error('boom'));
  if (listeners.error) listeners.error({ message: 'Uncaught TypeError: x is not a function', filename: 'http://preview/app/main.js', lineno: 3, colno: 7, error: { stack: 'TypeError: x\n  at main.js:3:7' } });
  if (listeners.unhandledrejection) listeners.unhandledrejection({ reason: 'nope' });
  return { posted, logged, listeners: Object.keys(listeners) };
}
process.stdout.write(JSON.stringify({ inFrame: run(true), top: run(false) }));
`
	dir := t.TempDir()
	script := filepath.Join(dir, "devtools.js")
	if err := os.WriteFile(script, []byte(devtoolsJS), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", harness, "--", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	type message struct {
		Msg struct {
			Source    string         `json:"source"`
			Type      string         `json:"type"`
			Payload   map[string]any `json:"payload"`
			Timestamp float64        `json:"timestamp"`
		} `json:"msg"`
		Origin string `json:"origin"`
	}
	var got struct {
		InFrame, Top struct {
			Posted    []message `json:"posted"`
			Logged    [][]any   `json:"logged"`
			Listeners []string  `json:"listeners"`
		}
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("harness output %q: %v", out, err)
	}

	// In the top window: nothing installed, nothing posted, console untouched.
	if len(got.Top.Posted) != 0 || len(got.Top.Listeners) != 0 || len(got.Top.Logged) != 3 {
		t.Errorf("top window: got %d messages, listeners %v, %d console calls; want none, none, 3",
			len(got.Top.Posted), got.Top.Listeners, len(got.Top.Logged))
	}

	// In a frame: every console call still reaches the console, once.
	if diff := cmp.Diff([][]any{{"log", 7.0}, {"warn", 1.0}, {"error", 1.0}}, got.InFrame.Logged); diff != "" {
		t.Errorf("console calls (-want +got):\n%s", diff)
	}
	var payloads []map[string]any
	for _, m := range got.InFrame.Posted {
		if m.Msg.Source != "podex-devtools" || m.Origin != "*" || m.Msg.Timestamp <= 0 {
			t.Errorf("envelope: got %+v", m)
		}
		payloads = append(payloads, map[string]any{"type": m.Msg.Type, "payload": m.Msg.Payload})
	}
	long := strings.Repeat("x", 2000) + "…"
	want := []map[string]any{
		{"type": "devtools:console", "payload": map[string]any{"level": "log", "url": "http://preview/app/", "args": []any{
			map[string]any{"type": "string", "value": "hello"},
			map[string]any{"type": "number", "value": "42"},
			map[string]any{"type": "object", "value": `{"a":1,"self":"[Circular]"}`},
			map[string]any{"type": "undefined", "value": "undefined"},
			map[string]any{"type": "object", "value": "null"},
			map[string]any{"type": "function", "value": "[Function: named]"},
			map[string]any{"type": "object", "value": `<div id="app" class="c">`},
		}}},
		{"type": "devtools:console", "payload": map[string]any{"level": "warn", "url": "http://preview/app/", "args": []any{
			map[string]any{"type": "string", "value": long},
		}}},
		{"type": "devtools:error", "payload": map[string]any{"type": "js_error", "message": "Uncaught TypeError: x is not a function",
			"filename": "http://preview/app/main.js", "lineno": 3.0, "colno": 7.0, "stack": "TypeError: x\n  at main.js:3:7"}},
		{"type": "devtools:error", "payload": map[string]any{"type": "unhandled_rejection", "message": "nope", "stack": nil}},
	}
	// The error's text holds node's stack: check its start, then drop it.
	if len(payloads) == 5 {
		args, _ := payloads[2]["payload"].(map[string]any)["args"].([]any)
		if len(args) != 1 || !strings.HasPrefix(args[0].(map[string]any)["value"].(string), "Error: boom") {
			t.Errorf("console.error(new Error): got %v", payloads[2])
		}
		payloads = append(payloads[:2], payloads[3:]...)
	}
	if diff := cmp.Diff(want, payloads); diff != "" {
		t.Errorf("messages (-want +got):\n%s", diff)
	}
}
