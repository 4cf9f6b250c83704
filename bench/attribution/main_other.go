//go:build !linux

// Command attribution is the process-attribution benchmark of exfilwatch; it
// needs Linux (network namespaces, AF_PACKET, /proc).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "bench-attribution: Linux only (network namespaces, AF_PACKET, /proc)")
	os.Exit(2)
}
