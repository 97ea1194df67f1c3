// Command scheduler is berth's single entry point: registry, placement,
// health, and the compute and admin APIs.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "scheduler: not yet implemented")
	os.Exit(1)
}
