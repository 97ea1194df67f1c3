// Package homes moves workspace home directories between agents: the
// source streams a tar archive of the directory, the target extracts it into
// a staging directory, verifies it against the source's digest and only then
// puts it in place (wire/homes.go has the protocol).
//
// Archive, Extract and Digest work on plain directories and share one walk,
// so the digest the source computes while archiving and the one the target
// computes over what it wrote are the same function of the same tree.
// Extraction goes through os.Root: no entry, symbolic links included, can
// write outside the staging directory. Transfers hold one copy buffer each,
// whatever the size of the home.
//
// Service is the agent's side: export tickets, the archive route's handler
// logic and imports from a peer agent. It is safe for concurrent use.
package homes
