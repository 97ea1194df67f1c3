package wire

// Raw exec — POST PathContainers + "/{id}" + SuffixExecRaw, behind the epoch
// fence like every per-container route. A command whose input and output
// are byte streams of any size (the compute API's file reads and writes):
// the input is the raw request body, the output comes in frames, and no
// side ever holds a stream whole in memory.
//
// Request:
//   - the ExecRequest travels JSON-encoded in the HeaderExecRequest header
//     (a header, as for the TTY: environment values never show up in a
//     logged URL); its Stdin must be empty;
//   - the request body is the process's stdin, copied to it as it arrives
//     and closed at its end (an empty body closes stdin at once). The
//     scheduler declares the body's length when it knows it;
//   - the scheduler sends "Expect: 100-continue": the agent first reads the
//     body (which sends the 100) once the process has started, so a refusal
//     costs no upload.
//
// Errors before the answer starts (no such container, not running, stale
// epoch, bad request, a dockerd failure) are ordinary JSON Error answers
// carrying HeaderError, from the agent's one error mapper.
//
// Answer: 200, Content-Type ContentTypeExecRaw; the body is a sequence of
// frames, each an 8-byte header — the frame's kind, three zero bytes, and
// the payload's length as a big-endian uint32 (the layout of Docker's
// attach stream) — then the payload:
//   - ExecRawStdout: bytes of the process's stdout, in the order it wrote
//     them (one frame per write the agent read; HTTP/1.1 chunked, flushed
//     per frame);
//   - ExecRawEnd, always last: one JSON ExecRawResult of at most
//     ExecRawMaxEnd bytes — the exit code, whether it timed out, the first
//     ExecRawStderrLimit bytes of stderr with the count of those dropped,
//     and Error when the exec failed after the answer had started.
//
// The answer starts with the first output, or when the process ended
// without any. A body that breaks off, ends without its ExecRawEnd frame,
// or holds a frame of another kind is a failed exec whose output may be
// incomplete. (The outcome is a frame rather than an HTTP trailer: Go's
// HTTP/1 client refuses trailers longer than its 4 KiB read buffer, and a
// stderr of 64 KiB needs more.)
//
// Input that breaks off before its end (the body's connection fails, or
// it is shorter than its declared length) kills the process: a command
// never sees a cut input as complete, so `cat > file` fails instead of
// exiting 0. When the process ends before reading all its input, the agent
// reads and drops the rest of the body (for up to ExecRawDrainSeconds)
// before it answers, so that the answer reaches a client still sending.
// ExecRequest.TimeoutSeconds and the end of the request kill the process
// tree, as for /exec.
const (
	SuffixExecRaw      = "/exec/raw"
	HeaderExecRequest  = "X-Berth-Exec"
	ContentTypeRaw     = "application/octet-stream"          // the request body: the input
	ContentTypeExecRaw = "application/vnd.berth.exec-frames" // the answer body: frames

	// Frame kinds of a raw exec's answer.
	ExecRawStdout byte = 1
	ExecRawEnd    byte = 0x7f
	// ExecRawFrameHeader is the length of a frame's header.
	ExecRawFrameHeader = 8
	// ExecRawMaxEnd bounds the payload of an ExecRawEnd frame.
	ExecRawMaxEnd = 1 << 20

	// ExecRawStderrLimit is how much of a raw exec's stderr is returned.
	ExecRawStderrLimit = 64 << 10
	// ExecRawDrainSeconds bounds how long the agent reads and drops input
	// the process left unread.
	ExecRawDrainSeconds = 30
)

// ExecRawResult is how a raw exec ended: the JSON payload of its answer's
// ExecRawEnd frame.
type ExecRawResult struct {
	ExitCode int  `json:"exit_code"`
	TimedOut bool `json:"timed_out,omitempty"`
	// Stderr is the first ExecRawStderrLimit bytes the process wrote to
	// stderr; StderrDropped counts the bytes after them.
	Stderr        []byte `json:"stderr,omitempty"`
	StderrDropped int64  `json:"stderr_dropped,omitempty"`
	// Error is set when the exec failed after the answer had started,
	// with Status, the HTTP status the agent would have answered before.
	Error  *Error `json:"error,omitempty"`
	Status int    `json:"status,omitempty"`
}

// ExecRawFrame is the header of a frame of kind with a payload of n bytes.
func ExecRawFrame(kind byte, n int) [ExecRawFrameHeader]byte {
	return [ExecRawFrameHeader]byte{kind, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// ParseExecRawFrame reads a frame header: its kind and payload length.
func ParseExecRawFrame(h [ExecRawFrameHeader]byte) (kind byte, n uint32) {
	return h[0], uint32(h[4])<<24 | uint32(h[5])<<16 | uint32(h[6])<<8 | uint32(h[7])
}
