// Package wire holds the types that cross a process boundary between the
// scheduler and the agents: the JSON bodies of the agent's mTLS API, the
// error codes it answers with, the labels every berth container carries, and
// the compact node metadata each agent gossips (NodeMeta, at most 512 bytes).
//
// Both binaries import it; it imports nothing of berth's. Changing a JSON field
// name here is a wire-protocol change between agent and scheduler versions.
package wire
