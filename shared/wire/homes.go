package wire

// Home transfer: a workspace's home directory moves agent → agent, never
// through the scheduler, over the same mTLS as everything else.
//
//  1. The scheduler registers an export on the source agent:
//     POST PathHomeExports with a HomeExport (the directory, relative to the
//     data directory, and a random token). The agent keeps it for its TTL.
//  2. The scheduler asks the target agent to import:
//     POST PathHomeImports with a HomeImport (the source's id, address and
//     token, and the target directory). The answer is NDJSON: HomeProgress
//     lines as the data arrives, then one line with Done set, and Error and
//     Code when the import failed.
//  3. The target agent fetches GET PathHomeArchive from the source with its
//     own agent certificate and the token in HeaderHomeToken: the source
//     answers only an agent or scheduler certificate of the cluster CA with
//     a live token, and streams a tar archive of the directory
//     (HeaderHomeBytes: the bytes of file content to expect) followed by the
//     trailer HeaderHomeDigest.
//  4. The target extracts into a staging directory next to the target,
//     flushes it to disk, walks what it wrote and computes the same digest
//     the source computed while archiving. Only when the two match does the
//     staging directory replace the target directory; any failure removes
//     the staging directory, so an attempt can always be restarted from the
//     start. The source copy is never touched: the scheduler removes it
//     (DELETE PathData) only after a verified import.
//
// The digest (HomeDigestPrefix + hex SHA-256) covers, in lexical path
// order, every directory, regular file and symbolic link: its path, type,
// permission bits, size, link target and content. Ownership and times are
// restored but not covered; other file types (sockets, devices, FIFOs) are
// skipped and counted, and hard links arrive as separate files.
const (
	PathHomeExports = "/v1/homes/exports"
	PathHomeImports = "/v1/homes/imports"
	PathHomeArchive = "/v1/homes/archive"

	HeaderHomeToken  = "X-Berth-Home-Token"
	HeaderHomeBytes  = "X-Berth-Home-Bytes"
	HeaderHomeDigest = "X-Berth-Home-Digest"

	HomeDigestPrefix = "sha256:"

	// CodeSourceFailed: an import failed on the source's side (it could not
	// be reached, refused the token, or its archive broke off). Retrying on
	// another target does not help.
	CodeSourceFailed = "source_failed" // 502
	// CodeVerifyFailed: the copy's digest differs from the source's.
	CodeVerifyFailed = "verify_failed" // 502
)

// HomeExport lets one import fetch Path (relative to the agent's data
// directory) with Token until TTLSeconds have passed.
type HomeExport struct {
	Path       string `json:"path"`
	Token      string `json:"token"`
	TTLSeconds int    `json:"ttl_seconds"`
}

// HomeImport asks an agent to copy the source agent's export into Path
// (relative to its own data directory), replacing what is there once the
// copy is verified.
type HomeImport struct {
	Path           string `json:"path"`
	SourceServerID string `json:"source_server_id"` // the name the source's certificate must carry
	SourceAddr     string `json:"source_addr"`      // host:port of the source's API
	Token          string `json:"token"`
}

// HomeProgress is one NDJSON line of an import's answer.
type HomeProgress struct {
	Bytes      int64  `json:"bytes"`       // file content received so far
	TotalBytes int64  `json:"total_bytes"` // file content the source announced
	Files      int64  `json:"files"`       // entries written so far
	Skipped    int64  `json:"skipped,omitempty"`
	Done       bool   `json:"done,omitempty"`
	Digest     string `json:"digest,omitempty"` // of the verified copy, on the last line
	Code       string `json:"code,omitempty"`   // on failure: a Code* of errors.go or this file
	Error      string `json:"error,omitempty"`
}
