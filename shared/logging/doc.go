// Package logging builds the one hclog logger each binary injects into its
// components, and bridges it to the standard library logger that memberlist
// and net/http expect.
package logging
